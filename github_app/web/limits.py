"""Reading what a client sends, so that no bytes it chooses can crash a view or hold a thread.

* :func:`read_body`: the raw body with a size limit (whether or not the client said its
  length) and a deadline (a client that sends headers and part of a body, then stops, gets
  a 408 instead of keeping a thread);
* :func:`parse_json`: JSON that answers :class:`BadJSON` (a 4xx saying what is wrong) for
  what :func:`json.loads` would raise, nesting too deep for the parser included;
* :func:`scrub_surrogates`: lone UTF-16 surrogates (``"\\ud800"`` is valid JSON, but not
  Unicode: UTF-8 cannot encode it, so no database can store it) replaced by U+FFFD.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest, ClientDisconnected, RequestEntityTooLarge, RequestTimeout

_CHUNK = 64 * 1024
# A JSON escape of a UTF-16 surrogate; most bodies have none, and then nothing is walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJSON(ValueError):
    """A body that is not the JSON a view expects; the message says what to fix."""


def read_body(limit: int, seconds: float) -> bytes | None:
    """The raw body, or None when it is longer than ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before anything is read. A
    chunked body has no length to check, and werkzeug then *truncates* at the limit instead
    of refusing; reading one byte past it tells a body of exactly ``limit`` bytes from a
    longer one.

    The whole body must arrive within ``seconds``: before each read the server's socket
    (``gunicorn.socket`` or ``werkzeug.socket`` in the WSGI environ) gets the time that is
    left as its timeout, so a stalled client costs a thread that long at most. Raises
    :class:`~werkzeug.exceptions.RequestTimeout` (408) when it does not.
    """
    request.max_content_length = limit + 1
    end = time.monotonic() + seconds
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    prior = sock.gettimeout() if sock is not None else None
    chunks: list[bytes] = []
    size = 0
    try:
        stream = request.stream
        while size <= limit:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if sock is not None:
                sock.settimeout(left)
            chunk = stream.read(min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except RequestEntityTooLarge:
        return None
    except (TimeoutError, ClientDisconnected) as exc:
        # werkzeug reports a socket timeout as a disconnect; the clock tells them apart.
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError) or time.monotonic() >= end:
            raise RequestTimeout(
                f"the body did not arrive within {seconds:g} s; send it at once, with a correct Content-Length"
            ) from None
        raise ClientDisconnected("the client closed the connection before the body ended") from None
    finally:
        if sock is not None:
            try:
                sock.settimeout(prior)
            except OSError:  # the connection is gone already
                pass
    if size > limit:
        return None
    if request.content_length is not None and size < request.content_length:
        raise BadRequest(f"the body ended after {size} of its {request.content_length} bytes (Content-Length)")
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """``json.loads`` for a body; :class:`BadJSON` for anything it cannot read.

    The C parser recurses once per nesting level, so ``[[[[...`` a hundred thousand deep
    raises :class:`RecursionError`; that is a client's mistake like any other.
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise BadJSON("body is not JSON we accept: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BadJSON(f"body is not JSON: {exc}") from None


def has_surrogate_escape(body: bytes) -> bool:
    """Whether ``body`` may hold a lone surrogate (a cheap scan; pairs match too)."""
    return _SURROGATE_ESCAPE.search(body) is not None


def scrub_surrogates(value: Any) -> tuple[Any, int]:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD,
    and how many strings changed.

    U+FFFD is what decoding bad bytes with ``errors="replace"`` gives, so a service name
    read from a non-UTF-8 environment variable (Python keeps such bytes as lone surrogates)
    is stored the way other tools show it, with the same length, so what the schema
    allowed it still allows. Iterative: a deep document must not recurse.
    """
    changed = 0

    def fix(s):
        nonlocal changed
        if isinstance(s, str) and _LONE_SURROGATE.search(s):
            changed += 1
            return _LONE_SURROGATE.sub("\ufffd", s)
        return s

    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        item = parent[key]
        if isinstance(item, dict):
            if any(isinstance(k, str) and _LONE_SURROGATE.search(k) for k in item):
                item = {fix(k): v for k, v in item.items()}
                parent[key] = item
            stack.extend((item, k) for k in item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
        else:
            parent[key] = fix(item)
    return root[0], changed
