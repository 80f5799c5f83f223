"""Synthetic telemetry for the Reasoner's tests: windows built to a known answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aina.devices import load_table
from pytest_aina.reasoner.inputs import load_specs
from pytest_aina.telemetry.window import Latency, Window, parse_time

ROOT = Path(__file__).resolve().parents[2]
H100 = ("NVIDIA H100 80GB HBM3", "sm_90")
L4 = ("NVIDIA L4", "sm_89")
DAY0 = parse_time("2025-06-02T00:00:00Z")


def window(
    kernel="softmax",
    dims=(("M", 4096), ("N", 4096)),
    *,
    mean_s=1e-4,
    calls=1000,
    hour=0.0,
    minutes=60,
    variant="generic",
    dtype="bfloat16",
    device=H100,
    service="svc",
    ref="",
) -> Window:
    """One window of ``calls`` calls at ``mean_s`` each, starting ``hour`` hours into the day."""
    start = DAY0 + hour * 3600
    lat = Latency(mean_s * 0.9, mean_s, mean_s * 1.05, mean_s * 1.2, mean_s * 2)
    return Window(
        start=start,
        end=start + minutes * 60,
        service=service,
        kernel=kernel,
        variant=variant,
        dims=tuple(dims),
        dtype=dtype,
        device=device[0],
        arch=device[1],
        calls=calls,
        time_s=mean_s * calls,
        latency=lat,
        timing="cuda_event",
        ref=ref or f"synthetic:{hour:g}",
    )


def hours(n=24, **kw) -> list[Window]:
    """The same window every hour of a day."""
    return [window(hour=h, **kw) for h in range(n)]


@pytest.fixture(scope="session")
def specs():
    found, problems = load_specs(ROOT / "specs")
    assert not problems, problems
    return found


@pytest.fixture(scope="session")
def devices():
    return load_table()


def roofline_s(specs, devices, kernel, dims, dtype="bfloat16", device=H100[0]) -> float:
    """The bandwidth bound of one call: what efficiency 1.0 means for these tests."""
    spec = specs[kernel]
    return spec.bytes_for(dict(dims), dtype) / devices.lookup(device).hbm_bytes_per_s


class Synth:
    """The helpers above, handed to tests as a fixture (conftest modules are not imported by name)."""

    H100, L4, DAY0, ROOT = H100, L4, DAY0, ROOT
    window = staticmethod(window)
    hours = staticmethod(hours)

    def __init__(self, specs, devices):
        self.specs, self.devices = specs, devices

    def roofline_s(self, kernel, dims, dtype="bfloat16", device=H100[0]) -> float:
        return roofline_s(self.specs, self.devices, kernel, dims, dtype, device)


@pytest.fixture(scope="session")
def synth(specs, devices):
    return Synth(specs, devices)
