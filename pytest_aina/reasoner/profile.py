"""The workload profile: where the GPU time goes, by kernel, variant, shape, dtype, device,
and how that changes over time.

Shapes are grouped into *domains*: each dim rounded down to its power-of-two octave
([2^k, 2^(k+1) - 1]), with the dtype and the device architecture. An octave is coarse
enough that a domain gathers the shapes one specialised variant would serve (decode batch
sizes 33..64, say) and fine enough that a variant specialised for it is worth having; it
is also stable from one day's telemetry to the next, so a hypothesis about a domain keeps
its identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pytest_aina.telemetry.window import Window

DAY_S = 86400.0


def octave(n: int) -> tuple[int, int]:
    """The power-of-two range holding n: 1 -> (1, 1), 5 -> (4, 7), 4096 -> (4096, 8191); 0 -> (0, 0)."""
    if n <= 0:
        return (0, 0)
    k = n.bit_length() - 1
    return (1 << k, (1 << (k + 1)) - 1)


@dataclass
class Agg:
    """Calls and GPU time of a set of windows, and which windows they were."""

    calls: int = 0
    time_s: float = 0.0
    windows: int = 0
    first: float = math.inf
    last: float = -math.inf
    refs: list = field(default_factory=list)  # (time_s, ref, start) of each window

    def add(self, w: Window) -> None:
        self.calls += w.calls
        self.time_s += w.time_s
        self.windows += 1
        if w.start < self.first:
            self.first = w.start
        if w.end > self.last:
            self.last = w.end
        self.refs.append((w.time_s, w.ref, w.start))

    def merge(self, other: Agg) -> None:
        self.calls += other.calls
        self.time_s += other.time_s
        self.windows += other.windows
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        self.refs += other.refs

    @property
    def mean_s(self) -> float:
        return self.time_s / self.calls if self.calls else 0.0

    def top_refs(self, n: int = 10, *, since: float = -math.inf) -> list[str]:
        """The windows that carry most of the time, most first (ties by ref, for determinism);
        only those starting at ``since`` or later when it is given."""
        kept = [tr for tr in self.refs if tr[2] >= since]
        return [tr[1] for tr in sorted(kept, key=lambda tr: (-tr[0], tr[1]))[:n]]


GroupKey = tuple  # (kernel, variant, dims, dtype, device, arch)
DomainKey = tuple  # (kernel, ((dim, (lo, hi)), ...), dtype, arch)


@dataclass
class Domain:
    key: DomainKey
    agg: Agg = field(default_factory=Agg)
    by_variant: dict = field(default_factory=dict)  # variant -> time_s
    groups: set = field(default_factory=set)  # GroupKeys in the domain
    hull: dict = field(default_factory=dict)  # dim -> [min seen, max seen]

    @property
    def kernel(self) -> str:
        return self.key[0]

    @property
    def dims(self) -> dict:
        return dict(self.key[1])

    @property
    def dtype(self) -> str:
        return self.key[2]

    @property
    def arch(self) -> str:
        return self.key[3]

    def as_dict(self) -> dict:
        return domain_dict(self.key)

    def label(self) -> str:
        return domain_label(self.key)


def domain_dict(key: DomainKey) -> dict:
    """A domain as hypotheses carry it: {"dims": {name: [lo, hi]}, "dtype": ..., "arch": ...}."""
    return {"dims": {k: [lo, hi] for k, (lo, hi) in key[1]}, "dtype": key[2], "arch": key[3]}


def domain_label(key: DomainKey) -> str:
    """A domain for a person: "M=16..31 N=4096..8191 bfloat16 sm_90"."""
    dims = " ".join(f"{k}={lo}" if lo == hi else f"{k}={lo}..{hi}" for k, (lo, hi) in key[1])
    return f"{dims} {key[2]} {key[3]}"


@dataclass
class Profile:
    t0: float
    t1: float
    total_time_s: float
    windows: int
    groups: dict[GroupKey, Agg]
    domains: dict[DomainKey, Domain]
    kernels: dict[str, Agg]
    services: dict[str, Agg]
    devices: dict[str, Agg]
    variants: dict[tuple, Agg]  # (kernel, variant) -> Agg
    bin_s: float
    # kernel -> (domain dims, dtype, arch) -> GPU time per time bin: the shape mix over time
    mix: dict[str, dict[tuple, list[float]]]

    @property
    def span_s(self) -> float:
        return max(self.t1 - self.t0, 1e-9)

    @property
    def per_day(self) -> float:
        """Multiply a total over the telemetry by this to get a figure per day."""
        return DAY_S / self.span_s

    def share(self, time_s: float) -> float:
        return time_s / self.total_time_s if self.total_time_s else 0.0

    def kernel_time_between(self, kernel: str, start: float, end: float) -> float:
        """The kernel's GPU time in the bins between two times (bin resolution)."""
        i0, i1 = self.bin_of(start), self.bin_of(end)
        return sum(sum(series[i0:i1]) for series in self.mix.get(kernel, {}).values())

    def bin_of(self, t: float) -> int:
        return min(max(int((t - self.t0) / self.bin_s), 0), self.nbins)

    @property
    def nbins(self) -> int:
        return max(1, math.ceil(self.span_s / self.bin_s))


def build_profile(windows: list[Window], *, bin_s: float | None = None) -> Profile:
    """Aggregate windows; ``bin_s`` (default: 1/48 of the span, at least 60 s) is the time
    resolution of the shape mix."""
    if not windows:
        return Profile(0.0, 0.0, 0.0, 0, {}, {}, {}, {}, {}, {}, 60.0, {})
    t0 = min(w.start for w in windows)
    t1 = max(w.end for w in windows)
    span = max(t1 - t0, 1e-9)
    bin_s = bin_s or max(60.0, span / 48)
    nbins = max(1, math.ceil(span / bin_s))
    groups: dict = {}
    domains: dict = {}
    kernels: dict = {}
    services: dict = {}
    devices: dict = {}
    variants: dict = {}
    mix: dict = {}
    octaves: dict = {}  # dims -> bucketed dims: few distinct shapes, many windows
    total = 0.0
    for w in windows:
        total += w.time_s
        gkey = (w.kernel, w.variant, w.dims, w.dtype, w.device, w.arch)
        g = groups.get(gkey)
        if g is None:
            g = groups[gkey] = Agg()
        g.add(w)
        bdims = octaves.get(w.dims)
        if bdims is None:
            bdims = octaves[w.dims] = tuple((k, octave(v)) for k, v in w.dims)
        dkey = (w.kernel, bdims, w.dtype, w.arch)
        d = domains.get(dkey)
        if d is None:
            d = domains[dkey] = Domain(dkey)
        d.by_variant[w.variant] = d.by_variant.get(w.variant, 0.0) + w.time_s
        d.groups.add(gkey)
        series = mix.setdefault(w.kernel, {}).get((bdims, w.dtype, w.arch))
        if series is None:
            series = mix[w.kernel][(bdims, w.dtype, w.arch)] = [0.0] * nbins
        mid = (w.start + w.end) / 2
        series[min(int((mid - t0) / bin_s), nbins - 1)] += w.time_s
    # the per-key aggregates are sums of the group aggregates: no second pass over windows
    for gkey, g in groups.items():
        kernel, variant, dims, dtype, device, arch = gkey
        for table, key in ((kernels, kernel), (devices, device), (variants, (kernel, variant))):
            a = table.get(key)
            if a is None:
                a = table[key] = Agg()
            a.merge(g)
        d = domains[(kernel, octaves[dims], dtype, arch)]
        d.agg.merge(g)
        for k, v in dims:
            lo_hi = d.hull.setdefault(k, [v, v])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], v), max(lo_hi[1], v)
    for w in windows:  # services are not part of the group key
        a = services.get(w.service)
        if a is None:
            a = services[w.service] = Agg()
        a.add(w)
    return Profile(t0, t1, total, len(windows), groups, domains, kernels, services, devices, variants, bin_s, mix)
