"""gunicorn's settings for the App, and a gthread worker whose reads have deadlines.

    gunicorn -c python:github_app.web.gunicorn_config --bind 0.0.0.0:8000 'github_app:create_app()'

Options given on the command line override these. Why each value (docs/github-app.md,
"Running in production"):

* ``workers = 2``, ``threads = 8`` — what the App is measured with (benchmarks/bench_app.py);
  a request mostly waits on one SQLite commit, so threads, not processes, carry the load.
* ``timeout = 30`` — for gthread workers this is only how long the arbiter lets a worker's
  main loop go silent (it notifies every second, however busy its threads are) before it
  kills it as wedged; no request comes near it, since reads and the store have deadlines.
* ``graceful_timeout = 15`` — on SIGTERM or a reload, requests in flight get this long to
  finish: more than the longest a request can take (its read deadline, then the store's).
* ``keepalive = 5`` — an idle kept-alive connection is closed after 5 s; a reverse proxy
  reusing connections must close its idle upstream connections sooner (nginx:
  ``keepalive_timeout 4s`` in the ``upstream`` block), or it may send a request on a
  connection gunicorn is closing.

gunicorn's gthread worker reads a request's line, headers and body with blocking reads and
no timeout, once the first byte has arrived: a client that sends part of a request and
stops holds one of the threads for as long as it keeps the connection open, and 16 such
clients hold all 16 threads of the documented deployment. :class:`DeadlineThreadWorker`
gives every connection a socket whose timeouts are *deadlines*: the request line and the
headers must arrive within :data:`HEADER_TIMEOUT_SECONDS` in all (else the connection is
closed, as if the client had left), and once the App reads the body it sets the body's own
deadline (``BODY_TIMEOUT_SECONDS``, :func:`github_app.web.limits.read_body`), which a
client trickling one byte at a time cannot stretch either. A stalled client so costs a
thread for a few seconds at most, and requests queued behind it are served in order.
"""

from __future__ import annotations

import os
import socket
import time

from gunicorn.http.errors import InvalidHeader, UnsupportedTransferCoding
from gunicorn.workers.gthread import ThreadWorker

#: The request line and headers must arrive within this long after the first byte.
HEADER_TIMEOUT_SECONDS = 2.0
#: A response write may wait this long for a client that does not read.
WRITE_TIMEOUT_SECONDS = 10.0

worker_class = "github_app.web.gunicorn_config.DeadlineThreadWorker"
workers = 2
threads = 8
timeout = 30
graceful_timeout = 15
keepalive = 5
if os.path.isdir("/dev/shm"):
    # gunicorn's worker heartbeat is a file touched every second: on a RAM disk, a slow or
    # full disk cannot make the arbiter think a worker hung.
    worker_tmp_dir = "/dev/shm"


def post_worker_init(worker) -> None:
    """Leave what start-up made (the App, Flask, the store's modules) out of every later
    garbage collection: a full collection walked all of it, 30 to 70 ms with the GIL held,
    and when it fell inside a group commit every acknowledgement waited for the store's
    write lock that long (``gc.freeze``; the job worker does the same, github_app.serve)."""
    import gc

    gc.freeze()


def child_exit(server, worker) -> None:
    """Tell prometheus_client that a worker is gone (its live gauges leave the sum; its
    counters stay: they are totals)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


class DeadlineSocket(socket.socket):
    """A connection whose timeouts are deadlines for everything read after they are set.

    gunicorn calls ``setblocking(True)`` when a thread starts on a request: the request
    line and the headers then have :data:`HEADER_TIMEOUT_SECONDS` in all, and a client that
    has not sent them by then reads as closed (gunicorn drops the connection quietly).
    ``settimeout(t)`` (the App before each body read, gunicorn before draining an unread
    body) means: what follows must arrive within ``t`` seconds in all, however it trickles
    in; past it, a read raises :class:`TimeoutError`.

    Once the write side is shut down, reads never wait: gunicorn (27) closes a connection
    "gracefully" on its worker's *main loop*, lingering up to 2 s for the client to close
    first, so eight stalled clients cut at their deadline froze the whole worker for 16 s.
    What the client sent is still drained (so the kernel does not answer it with a reset);
    the client is just not waited for.
    """

    _until: float | None = None
    _closes_quietly = False
    _draining = False

    @classmethod
    def adopt(cls, sock: socket.socket) -> DeadlineSocket:
        blocking = sock.getblocking()
        new = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        socket.socket.setblocking(new, blocking)
        return new

    def setblocking(self, flag: bool) -> None:
        if flag and not self._draining:
            self._until = time.monotonic() + HEADER_TIMEOUT_SECONDS
            self._closes_quietly = True
            super().settimeout(HEADER_TIMEOUT_SECONDS)
        else:
            self._until = None
            super().setblocking(False)

    def settimeout(self, value: float | None) -> None:
        if self._draining:
            super().setblocking(False)
            return
        self._until = None if value is None else time.monotonic() + value
        self._closes_quietly = False
        super().settimeout(value)

    def shutdown(self, how: int) -> None:
        super().shutdown(how)
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self._draining = True
            self._until = None
            super().setblocking(False)

    def _left(self) -> float | None:
        if self._until is None:
            return None
        left = self._until - time.monotonic()
        if left <= 0:
            raise TimeoutError("read deadline passed")
        super().settimeout(left)
        return left

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        try:
            self._left()
            return super().recv(bufsize, flags)
        except TimeoutError:
            if self._closes_quietly:
                return b""
            raise

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        try:
            self._left()
            return super().recv_into(buffer, nbytes, flags)
        except TimeoutError:
            if self._closes_quietly:
                return 0
            raise

    def send(self, data, flags: int = 0) -> int:
        super().settimeout(WRITE_TIMEOUT_SECONDS)
        return super().send(data, flags)

    def sendall(self, data, flags: int = 0) -> None:
        super().settimeout(WRITE_TIMEOUT_SECONDS)
        return super().sendall(data, flags)


class DeadlineThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, its connections' reads bounded by :class:`DeadlineSocket`."""

    def enqueue_req(self, conn) -> None:
        if not isinstance(conn.sock, DeadlineSocket):
            conn.sock = DeadlineSocket.adopt(conn.sock)
        super().enqueue_req(conn)

    def handle_error(self, req, client, addr, exc) -> None:
        # gunicorn answers a Transfer-Encoding it does not know with 501 (RFC 9112 allows
        # it); the mistake is the client's, and a 5xx would page whoever watches the App.
        if isinstance(exc, UnsupportedTransferCoding):
            exc = InvalidHeader(f"Transfer-Encoding {exc.hdr!r} (only chunked is understood)", req=req)
        super().handle_error(req, client, addr, exc)
