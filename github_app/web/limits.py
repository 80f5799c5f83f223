"""Reading a request body with a size limit, whether or not the client said its length."""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge


def read_body(limit: int) -> bytes | None:
    """The raw body, or None when it is longer than ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before anything is read. A
    chunked body has no length to check, and werkzeug then *truncates* at the limit instead
    of refusing; reading one byte past it tells a body of exactly ``limit`` bytes from a
    longer one.
    """
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return None
    return None if len(body) > limit else body
