"""How the App answers when a request does not end well: always JSON, never an HTML page.

* a client's mistake is a 4xx whose ``error`` says what to fix (werkzeug's HTTP errors:
  404, 405, 408, 411, 413, a malformed request...);
* a fault the client can retry (the store locked or busy past its deadline, a full disk) is
  a 503 with ``Retry-After``, answered as soon as the store gives up;
* anything else is a bug of ours: a JSON 500, logged with its traceback and counted in
  ``aina_requests_failed_total``. The fuzzing test (``tests/github_app/test_app_fuzz.py``)
  holds that no bytes a client sends reach it.
"""

from __future__ import annotations

import errno
import logging
import sqlite3

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from github_app.store import StoreUnavailable

log = logging.getLogger(__name__)

#: What a 503 asks a client to wait. GitHub does not retry a failed delivery by itself (the
#: App asks it to, see github/redelivery.py), so this is for the other clients.
RETRY_AFTER_SECONDS = 5


def retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault of the store that may pass: the client should try again.

    ``StoreUnavailable`` is the store's word for it. Until every store raises it, SQLite's
    own errors of that kind are recognised here too: ``OperationalError`` is what SQLite
    raises for a lock or busy timeout, a full disk, an I/O error or a file it cannot open
    (corruption is a ``DatabaseError``, not retried).
    """
    if isinstance(exc, (StoreUnavailable, sqlite3.OperationalError)):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)


def unavailable(cause: str, message: str):
    """A 503 with ``Retry-After``, counted by route and cause."""
    _count_failure(cause)
    response = jsonify(error=message, retry_after=RETRY_AFTER_SECONDS)
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _count_failure(cause: str) -> None:
    services = current_app.extensions.get("aina")
    if services is not None:
        route = request.endpoint.split(".")[0] if request.endpoint else "none"
        services.metrics.inc("aina_requests_failed_total", route=route, cause=cause)


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = jsonify(error=exc.description)
        response.status_code = exc.code or 500
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        if exc.code == 408:
            # Where the next request would start is unknown: werkzeug's server closes on
            # this header (gunicorn closes by itself after a failed body read).
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if retryable(exc):
            log.warning(
                "%s %s: the store is unavailable: %s: %s", request.method, request.path, type(exc).__name__, exc
            )
            return unavailable("store", "the App cannot store this now; retry later")
        log.exception("%s %s failed", request.method, request.path)
        _count_failure("bug")
        return jsonify(error="internal error; the App logged it"), 500
