"""One key's calls in one window, summed up, and the windows they become.

A key is (kernel, variant, dims as ((name, value), ...), dtype, device name, arch, timing).
Per key the recorder keeps a count, a sum, min, max and a log histogram (``SUB`` buckets per
octave) from which the quantiles are read when the window closes, within about 2% of the
true value: memory per key is bounded however many calls arrive.

Latencies known only later (CUDA events) wait as ``pending`` resolvers; they are resolved
here, on the recorder's ticker thread, never on the thread of the call.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pytest_aina.telemetry.window import Latency, Window

# A key: (kernel, variant, dims as ((name, value), ...), dtype, device name, arch, timing).
Key = tuple

SUB = 16  # histogram buckets per octave: quantiles to within 2**(1/32) - 1, about 2.2%
ZERO = -(1 << 30)  # bucket of a 0 s latency (a coarse clock)
MAX_PENDING = 4096  # unresolved latencies kept per key and window; beyond, the mean stands in


class Aggregate:
    __slots__ = ("calls", "total", "min", "max", "hist", "pending", "unresolved")

    def __init__(self):
        self.calls = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0
        self.hist: dict[int, int] = {}
        self.pending: list[Callable[[], float | None]] = []
        self.unresolved = 0  # calls counted whose latency was never known (see Recorder.add_pending)

    def add(self, s: float) -> None:
        # Recorder.add writes the same update out inline: it runs on every recorded call
        self.calls += 1
        self.total += s
        if s < self.min:
            self.min = s
        if s > self.max:
            self.max = s
        b = math.floor(math.log2(s) * SUB) if s > 0 else ZERO
        self.hist[b] = self.hist.get(b, 0) + 1


def _quantile(hist: list[tuple[int, int]], n: int, q: float, lo: float, hi: float) -> float:
    rank = max(1, math.ceil(q * n))
    seen = 0
    for b, count in hist:
        seen += count
        if seen >= rank:
            value = 0.0 if b == ZERO else 2.0 ** ((b + 0.5) / SUB)
            return min(max(value, lo), hi)
    return hi


def to_windows(
    current: dict[Key, Aggregate],
    *,
    start: float,
    end: float,
    service: str,
    instance: str,
    versions: tuple,
    on_error: Callable[[BaseException], None],
) -> tuple[list[Window], int]:
    """The windows of one closed window's aggregates, and how many calls' latencies never
    resolved. A key with no measured call at all yields no window: there is no honest
    latency to report."""
    windows = []
    unresolved = 0
    for key, agg in current.items():
        for resolve in agg.pending:
            try:
                s = resolve()
            except Exception as exc:  # a broken timer costs its sample, nothing else
                on_error(exc)
                s = None
            if s is None or not s >= 0:
                agg.unresolved += 1
            else:
                agg.add(float(s))
        if agg.unresolved:
            unresolved += agg.unresolved
            if agg.calls == 0:
                continue
            mean = agg.total / agg.calls
            agg.calls += agg.unresolved
            agg.total += mean * agg.unresolved
        if agg.calls == 0:
            continue
        kernel, variant, dims, dtype, device, arch, timing = key
        hist = sorted(agg.hist.items())
        n = sum(c for _, c in hist)
        lat = Latency(agg.min, *(_quantile(hist, n, q, agg.min, agg.max) for q in (0.5, 0.9, 0.99)), agg.max)
        windows.append(
            Window(
                start=start,
                end=end,
                service=service,
                kernel=kernel,
                variant=variant,
                dims=dims,
                dtype=dtype,
                device=device,
                arch=arch,
                calls=agg.calls,
                time_s=agg.total,
                latency=lat,
                timing=timing,
                instance=instance,
                versions=versions,
            )
        )
    windows.sort(key=lambda w: (w.kernel, w.variant, w.dims, w.dtype, w.device))
    return windows, unresolved
