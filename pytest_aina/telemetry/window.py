"""A telemetry window: what one kernel did, for one shape, on one device, over a time span.

A window is the unit of telemetry everywhere: the recorder emits them, the wire format
carries them, a JSONL file stores them one per line, the Reasoner reads them. Its key is
kernel × variant × dims × dtype × device (plus the service that made the calls); its
figures are the number of calls, their total time and latency quantiles.

This module only converts between the wire dict and :class:`Window`; checking that a dict
*is* a valid window is :mod:`pytest_aina.telemetry.validate`'s job. Stdlib only: the
recorder imports it in production processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Version of the window format; every window and every batch carries it.
FORMAT_VERSION = 1

QUANTILES = ("min", "p50", "p90", "p99", "max")
TIMINGS = ("wall", "cuda_event")


@dataclass(frozen=True, slots=True)
class Latency:
    """Per-call latency in seconds over a window. min and max are exact; the quantiles
    come from the recorder's log histogram (within about 2% of the true value)."""

    min: float
    p50: float
    p90: float
    p99: float
    max: float

    def as_dict(self) -> dict:
        return {"min": self.min, "p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max}


@dataclass(frozen=True, slots=True)
class Window:
    start: float  # seconds since the epoch, UTC
    end: float
    service: str
    kernel: str
    variant: str
    dims: tuple[tuple[str, int], ...]
    dtype: str
    device: str  # the device's name as its driver reports it, e.g. "NVIDIA H100 80GB HBM3"
    arch: str  # sm_90, gfx942, cpu
    calls: int
    time_s: float
    latency: Latency
    timing: str = "wall"
    instance: str = ""
    versions: tuple[tuple[str, str], ...] = ()
    # Where the window came from ("telemetry/day.jsonl:12", or a store's row id). Not part
    # of the wire format: evidence cites it so a reader can find the raw data.
    ref: str = field(default="", compare=False)

    @property
    def dim_map(self) -> dict[str, int]:
        return dict(self.dims)

    @property
    def mean_s(self) -> float:
        return self.time_s / self.calls

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def as_dict(self) -> dict:
        """The wire form (see :mod:`pytest_aina.telemetry.wire`)."""
        d = {
            "aina_telemetry": FORMAT_VERSION,
            "start": format_time(self.start),
            "end": format_time(self.end),
            "service": self.service,
            "kernel": self.kernel,
            "variant": self.variant,
            "dims": dict(self.dims),
            "dtype": self.dtype,
            "device": {"name": self.device, "arch": self.arch},
            "calls": self.calls,
            "time_s": self.time_s,
            "latency_s": self.latency.as_dict(),
            "timing": self.timing,
        }
        if self.instance:
            d["instance"] = self.instance
        if self.versions:
            d["versions"] = dict(self.versions)
        return d

    @classmethod
    def from_dict(cls, d: dict, ref: str = "") -> Window:
        """Build from a wire dict that has already passed validation."""
        lat = d["latency_s"]
        return cls(
            start=parse_time(d["start"]),
            end=parse_time(d["end"]),
            service=d["service"],
            kernel=d["kernel"],
            variant=d["variant"],
            dims=tuple((k, int(v)) for k, v in d["dims"].items()),  # the schema allows 1.0
            dtype=d["dtype"],
            device=d["device"]["name"],
            arch=d["device"]["arch"],
            calls=int(d["calls"]),
            time_s=float(d["time_s"]),
            latency=Latency(
                float(lat["min"]), float(lat["p50"]), float(lat["p90"]), float(lat["p99"]), float(lat["max"])
            ),
            timing=d.get("timing", "wall"),
            instance=d.get("instance", ""),
            versions=tuple(d.get("versions", {}).items()),
            ref=ref,
        )


def format_time(epoch: float) -> str:
    """RFC 3339 in UTC with a Z, to the millisecond when the time is not whole."""
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Seconds since the epoch from an RFC 3339 time that states its offset; ValueError otherwise."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; write it as ...Z or ...+00:00")
    return dt.timestamp()
