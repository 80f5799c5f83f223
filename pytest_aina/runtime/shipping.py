"""Shipping closed windows: a bounded queue and a sender thread.

The sender appends each batch to a JSONL file and/or posts it as a signed batch
(:mod:`pytest_aina.telemetry.wire`). Whoever submits never waits: a full queue (a slow or
dead endpoint) drops the batch and counts it, and the sender never retries: a slow endpoint
costs batches, never a stalled kernel.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pytest_aina import __version__
from pytest_aina.telemetry import wire
from pytest_aina.telemetry.window import Window


class Shipper:
    """Sends batches of windows on its own thread; see the module docstring.

    ``on_error`` receives a line describing each failed delivery (the recorder's
    ``last_error``)."""

    def __init__(
        self,
        *,
        url: str | None,
        secret: str | bytes | None,
        path: Path | None,
        timeout_s: float,
        batch_windows: int,
        max_queued_batches: int,
        on_error: Callable[[str], None],
    ):
        self.url = url
        self.path = path
        self.timeout_s = timeout_s
        self.batch_windows = batch_windows
        self._secret = secret
        self._on_error = on_error
        self._lock = threading.Lock()
        self._counts = dict(sent_batches=0, sent_windows=0, dropped_batches=0, dropped_windows=0)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued_batches)
        self._thread = threading.Thread(target=self._send_loop, name="aina-telemetry-sender", daemon=True)
        self._thread.start()

    def submit(self, windows: list[Window]) -> None:
        """Queue ``windows`` in batches of ``batch_windows``; drop (and count) what does not fit."""
        for i in range(0, len(windows), self.batch_windows):
            batch = windows[i : i + self.batch_windows]
            try:
                self._queue.put_nowait(batch)
            except queue.Full:  # the sender is behind (a slow endpoint): drop, never wait
                with self._lock:
                    self._counts["dropped_batches"] += 1
                    self._counts["dropped_windows"] += len(batch)

    def drain(self, timeout_s: float) -> bool:
        """Wait (up to ``timeout_s``) until every queued batch was sent or dropped."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        """Let the sender finish what is queued and end."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # the sender is stuck on a dead endpoint; it is a daemon and dies with us
        self._thread.join(timeout=0.1)

    def counts(self) -> dict:
        """sent/dropped batches and windows."""
        with self._lock:
            return dict(self._counts)

    def queued(self) -> int:
        return self._queue.qsize()

    def _send_loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                self._deliver(batch)
            finally:
                self._queue.task_done()

    def _deliver(self, batch: list[Window]) -> None:
        ok = True
        if self.path is not None:
            try:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write("".join(wire.encode_line(w) + "\n" for w in batch))
            except OSError as exc:
                ok = False
                self._on_error(f"{self.path}: {exc}")
        if self.url:
            import urllib.error  # here, on the sender thread: importing it costs a process ~10 ms
            import urllib.request

            body = wire.encode_batch(batch)
            req = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": f"pytest-aina/{__version__}",
                    wire.SIGNATURE_HEADER: wire.sign(self._secret, body),
                },
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    resp.read()
            except (urllib.error.URLError, OSError, ValueError) as exc:
                # HTTPError (non-2xx) is a URLError; a timeout is an OSError
                ok = False
                self._on_error(f"{self.url}: {exc}")
        with self._lock:
            if ok:
                self._counts["sent_batches"] += 1
                self._counts["sent_windows"] += len(batch)
            else:
                self._counts["dropped_batches"] += 1
                self._counts["dropped_windows"] += len(batch)
