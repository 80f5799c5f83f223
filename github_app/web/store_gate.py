"""Writes to the store from request threads, failed fast while the store is stuck.

A locked database (another process holding its write lock past every deadline) makes each
write wait as long as the store lets it. Requests keep arriving meanwhile, so without a
gate every thread ends up waiting on the store, the queue behind them grows past GitHub's
10 s, and even ``/healthz`` is not answered. The gate watches the writes in flight in this
process: while one of them has waited longer than ``stuck_after`` seconds, a new write is
refused at once with :class:`~github_app.store.StoreUnavailable` (a 503 with
``Retry-After``, :mod:`.errors`) instead of queueing behind it. When the stuck writes end,
whichever way, writes go through again. Reads are not gated: SQLite's readers do not wait
for its writers (WAL).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from github_app.store import StoreUnavailable


class StoreGate:
    def __init__(self, stuck_after: float):
        self.stuck_after = stuck_after
        self._lock = threading.Lock()
        self._in_flight: dict[int, float] = {}
        self._ids = itertools.count()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Around one write to the store; raises StoreUnavailable while another is stuck."""
        now = time.monotonic()
        with self._lock:
            oldest = min(self._in_flight.values(), default=now)
            if now - oldest > self.stuck_after:
                raise StoreUnavailable(
                    f"a write to the store has waited {now - oldest:.1f} s "
                    "and is not done; not queueing another behind it"
                )
            token = next(self._ids)
            self._in_flight[token] = now
        try:
            yield
        finally:
            with self._lock:
                del self._in_flight[token]
