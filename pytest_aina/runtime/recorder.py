"""The recorder: what production code runs to tell the repository how its kernels are used.

    from pytest_aina.runtime import Recorder

    recorder = Recorder("chat-decode", url="https://aina.example/telemetry", secret=SECRET)
    recorder.install()          # every call through kernels' dispatch is now recorded

    @recorder.measure("my_op", dims=lambda x: {"M": x.shape[0], "N": x.shape[1]})
    def my_op(x): ...           # a function outside dispatch, recorded too

    with recorder.span("my_op", dims={"M": 8, "N": 64}, dtype="float16", device="NVIDIA L4", arch="sm_89"):
        ...                     # one call, timed as a block

Calls are aggregated in memory per window (``window_s``, aligned to the wall clock) and
key (kernel, variant, dims, dtype, device, arch, timing): a count, a sum, min, max and a
log histogram for the quantiles (:mod:`.aggregate`). A ticker thread closes each window and
hands its windows to a sender thread (:mod:`.shipping`), which posts them as signed batches
(:mod:`pytest_aina.telemetry.wire`) and/or appends them to a JSONL file.

What it promises the call it measures:

* never blocks it: a call takes one uncontended lock and updates a dict; posting happens on
  the sender thread, behind a bounded queue. A slow or dead endpoint costs dropped batches,
  counted in :meth:`Recorder.stats`, never a stalled kernel.
* never breaks it: an error while recording (a ``dims`` function that raises, too many
  distinct keys) is counted and the call's result is returned as if nothing happened.
* disabled, costs next to nothing: no recorder installed is one attribute read in dispatch;
  ``enabled=False`` is one attribute test in ``measure``.
* thread-safe.

No torch or triton import of its own: devices are described (:mod:`.device`) through
``sys.modules``, from the torch the caller already imported.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from pytest_aina import __version__
from pytest_aina.runtime.aggregate import MAX_PENDING, SUB, ZERO, Aggregate, Key, to_windows
from pytest_aina.runtime.device import describe_tensor
from pytest_aina.runtime.shipping import Shipper
from pytest_aina.telemetry.window import Window

#: The recorder that kernels' dispatch reports to; None when telemetry is off. Read on
#: every dispatched call, so it is a plain module attribute.
ACTIVE: Recorder | None = None

_floor, _log2 = math.floor, math.log2


def install(recorder: Recorder) -> None:
    """Make ``recorder`` the one dispatch reports to (replacing any other)."""
    global ACTIVE
    ACTIVE = recorder


def uninstall(recorder: Recorder | None = None) -> None:
    """Stop reporting to ``recorder`` (or to whichever is installed)."""
    global ACTIVE
    if recorder is None or ACTIVE is recorder:
        ACTIVE = None


class Recorder:
    """Aggregates kernel calls into windows and ships them; see the module docstring.

    Give ``url`` (with ``secret``) to post batches, ``path`` to append JSONL, or both.
    """

    def __init__(
        self,
        service: str,
        *,
        url: str | None = None,
        secret: str | bytes | None = None,
        path: str | Path | None = None,
        window_s: float = 60.0,
        timeout_s: float = 2.0,
        max_keys: int = 10_000,
        max_queued_batches: int = 16,
        batch_windows: int = 500,
        instance: str | None = None,
        versions: dict | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ):
        if not service:
            raise ValueError("Recorder: service must name the production service, e.g. 'chat-decode'")
        if url and not secret:
            raise ValueError("Recorder: a url needs a secret; the receiver refuses unsigned batches")
        if not url and path is None:
            raise ValueError("Recorder: give a url (with secret) to post batches, or a path to append JSONL")
        if window_s <= 0:
            raise ValueError(f"Recorder: window_s must be positive, got {window_s}")
        self.service = service
        self.url = url
        self.path = Path(path) if path is not None else None
        self.window_s = float(window_s)
        self.timeout_s = timeout_s
        self.max_keys = max_keys
        self.batch_windows = batch_windows
        self.instance = instance if instance is not None else f"{socket.gethostname()}/{os.getpid()}"
        self.enabled = enabled
        self._extra_versions = dict(versions or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._current: dict[Key, Aggregate] = {}
        self._start = clock()
        self._counts = dict(dropped_calls=0, record_errors=0, unresolved_calls=0)
        self._last_error = ""
        self._shipper = Shipper(
            url=url,
            secret=secret,
            path=self.path,
            timeout_s=timeout_s,
            batch_windows=batch_windows,
            max_queued_batches=max_queued_batches,
            on_error=self._set_last_error,
        )
        self._stop = threading.Event()
        self._closed = False
        self._ticker = threading.Thread(target=self._tick_loop, name="aina-telemetry-ticker", daemon=True)
        self._ticker.start()

    # -- configuration from the environment ----------------------------------------------

    @classmethod
    def from_env(cls, service: str | None = None, environ: dict | None = None) -> Recorder | None:
        """A recorder configured by ``AINA_TELEMETRY_URL`` / ``_SECRET`` / ``_FILE`` /
        ``_WINDOW_S`` and ``AINA_SERVICE``; None when neither a URL nor a file is set or
        ``AINA_TELEMETRY=0``."""
        env = os.environ if environ is None else environ
        if env.get("AINA_TELEMETRY", "1") == "0":
            return None
        url, path = env.get("AINA_TELEMETRY_URL"), env.get("AINA_TELEMETRY_FILE")
        if not url and not path:
            return None
        return cls(
            service or env.get("AINA_SERVICE") or "unnamed",
            url=url,
            path=path,
            secret=env.get("AINA_TELEMETRY_SECRET"),
            window_s=float(env.get("AINA_TELEMETRY_WINDOW_S", "60")),
        )

    # -- the hot path ---------------------------------------------------------------------

    def add(self, key: Key, seconds: float) -> None:
        """Count one call of ``key`` that took ``seconds``. The fast path dispatch uses;
        the aggregate update is written out here rather than in a method: it runs on
        every recorded call."""
        with self._lock:
            agg = self._current.get(key)
            if agg is None:
                if len(self._current) >= self.max_keys:
                    self._counts["dropped_calls"] += 1
                    return
                agg = self._current[key] = Aggregate()
            agg.calls += 1
            agg.total += seconds
            if seconds < agg.min:
                agg.min = seconds
            if seconds > agg.max:
                agg.max = seconds
            b = _floor(_log2(seconds) * SUB) if seconds > 0 else ZERO
            hist = agg.hist
            hist[b] = hist.get(b, 0) + 1

    def add_pending(self, key: Key, resolve: Callable[[], float | None]) -> None:
        """Count one call whose latency is known later (CUDA events): ``resolve()`` is called
        on the ticker thread when the window closes and returns seconds, or None if unknown.
        At most MAX_PENDING (4096) are kept per key and window; beyond that the call is counted and its
        time estimated from the mean of the resolved ones."""
        with self._lock:
            agg = self._current.get(key)
            if agg is None:
                if len(self._current) >= self.max_keys:
                    self._counts["dropped_calls"] += 1
                    return
                agg = self._current[key] = Aggregate()
            if len(agg.pending) < MAX_PENDING:
                agg.pending.append(resolve)
            else:
                agg.unresolved += 1

    def record(
        self,
        kernel: str,
        seconds: float,
        *,
        dims: dict,
        dtype: str,
        device: str,
        arch: str,
        variant: str = "generic",
        timing: str = "wall",
    ) -> None:
        """Count one call, naming its parts (the readable form of :meth:`add`)."""
        self.add((kernel, variant, tuple(dims.items()), dtype, device, arch, timing), seconds)

    def measure(
        self,
        kernel: str,
        *,
        dims: Callable[..., dict] | dict,
        variant: str = "generic",
        dtype: str | None = None,
        device: str | None = None,
        arch: str | None = None,
    ):
        """Decorator: record every call of the function as a call of ``kernel``.

        ``dims`` is a dict, or a function of the call's arguments returning one. dtype,
        device and arch default to those of the first argument (a tensor).
        """

        fixed = (dtype, device, arch) if None not in (dtype, device, arch) else None
        described: dict = {}  # (torch dtype, torch device) -> (dtype, device name, arch)

        def decorate(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                if not self.enabled:
                    return fn(*args, **kwargs)
                t0 = time.perf_counter()
                out = fn(*args, **kwargs)
                elapsed = time.perf_counter() - t0
                try:
                    d = dims(*args, **kwargs) if callable(dims) else dims
                    if fixed is not None:
                        where = fixed
                    else:
                        x = args[0]
                        where = described.get((x.dtype, x.device))
                        if where is None:
                            t_dtype, t_device, t_arch = describe_tensor(x)
                            where = described[(x.dtype, x.device)] = (
                                dtype or t_dtype,
                                device or t_device,
                                arch or t_arch,
                            )
                    self.add((kernel, variant, tuple(d.items()), *where, "wall"), elapsed)
                except Exception as exc:  # recording must never break the call
                    self._note_error(exc)
                return out

            return wrapper

        return decorate

    @contextmanager
    def span(self, kernel: str, *, dims: dict, dtype: str, device: str, arch: str, variant: str = "generic"):
        """Context manager: the block is one call of ``kernel``; recorded when it ends
        without an exception."""
        if not self.enabled:
            yield
            return
        t0 = time.perf_counter()
        yield
        self.add((kernel, variant, tuple(dims.items()), dtype, device, arch, "wall"), time.perf_counter() - t0)

    def _note_error(self, exc: BaseException) -> None:
        with self._lock:
            self._counts["record_errors"] += 1
            self._last_error = f"{type(exc).__name__}: {exc}"

    def _set_last_error(self, text: str) -> None:
        self._last_error = text

    # -- activation -----------------------------------------------------------------------

    def install(self) -> Recorder:
        """Make this the recorder dispatch reports to; it is flushed at interpreter exit."""
        install(self)
        atexit.register(self.close)
        return self

    def __enter__(self) -> Recorder:
        install(self)
        return self

    def __exit__(self, *exc) -> None:
        uninstall(self)
        self.close()

    # -- windows --------------------------------------------------------------------------

    def _versions(self) -> tuple[tuple[str, str], ...]:
        v = {"aina": __version__, "python": ".".join(map(str, sys.version_info[:3]))}
        for mod in ("torch", "triton"):
            ver = getattr(sys.modules.get(mod), "__version__", None)
            if ver:
                v[mod] = str(ver)
        v.update(self._extra_versions)
        return tuple(sorted(v.items()))

    def _roll(self) -> list[Window]:
        """Close the current window: swap the aggregates out under the lock, build windows outside it."""
        now = self._clock()
        with self._lock:
            current, start = self._current, self._start
            self._current, self._start = {}, now
        if not current:
            return []
        end = max(now, start + 1e-3)  # a window has a positive length even on a coarse clock
        windows, unresolved = to_windows(
            current,
            start=start,
            end=end,
            service=self.service,
            instance=self.instance,
            versions=self._versions(),
            on_error=self._note_error,
        )
        if unresolved:
            with self._lock:
                self._counts["unresolved_calls"] += unresolved
        return windows

    def _enqueue(self, windows: list[Window]) -> None:
        self._shipper.submit(windows)

    def _tick_loop(self) -> None:
        while True:
            now = self._clock()
            next_tick = (math.floor(now / self.window_s) + 1) * self.window_s
            if self._stop.wait(max(0.0, next_tick - now)):
                return
            self._enqueue(self._roll())

    # -- control --------------------------------------------------------------------------

    def flush(self, timeout_s: float | None = None) -> bool:
        """Close the current window now and wait (up to ``timeout_s``) until every queued
        batch was sent or dropped. True when the queue drained in time."""
        self._enqueue(self._roll())
        return self._shipper.drain(timeout_s if timeout_s is not None else self.timeout_s * 2 + 1)

    def close(self, timeout_s: float | None = None) -> None:
        """Uninstall, flush, then stop both threads. Idempotent. ``measure`` and ``span``
        stop recording; nothing is shipped after this."""
        if self._closed:
            return
        self._closed = True
        self.enabled = False
        uninstall(self)
        self._stop.set()
        self._ticker.join()
        self.flush(timeout_s)
        self._shipper.stop()

    def stats(self) -> dict:
        """Counters: sent/dropped batches and windows, dropped calls (too many keys),
        record errors, calls whose latency never resolved, and the last error seen."""
        out = self._shipper.counts()
        with self._lock:
            out.update(self._counts)
            out["open_keys"] = len(self._current)
        out["queued_batches"] = self._shipper.queued()
        out["last_error"] = self._last_error
        return out
