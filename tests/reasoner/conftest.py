"""Synthetic telemetry for the Reasoner's tests: windows built to a known answer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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


def rms_norm_table(*, device=H100[0], latency_s=1.0e-5, baseline_latency_s=None, pr=None) -> str:
    """The dispatch table the tests give rms_norm: generic, and a 'decode' variant for M in
    [1, 64], bfloat16, sm_90, whose evidence is one timing at M=16, N=4096. Each test sets the
    evidence its detector reads (the device, the latency claimed, the baseline, the PR) and
    leaves the rest out, so that what it checks follows from what it wrote."""
    evidence = {"device": device, "dims": {"M": 16, "N": 4096}, "dtype": "bfloat16", "latency_s": latency_s}
    if baseline_latency_s is not None:
        evidence["baseline_latency_s"] = baseline_latency_s
    if pr is not None:
        evidence["pr"] = pr
    decode = {
        "name": "decode",
        "function": "kernels.rms_norm:rms_norm_generic",
        "config": {"ROWS_PER_PROGRAM": 1},
        "domain": {"dims": {"M": [1, 64]}, "dtypes": ["bfloat16"], "arch": ["sm_90"]},
        "evidence": evidence,
    }
    generic = {"name": "generic", "function": "kernels.rms_norm:rms_norm_generic"}
    table = {"aina_dispatch": 1, "kernel": "rms_norm", "variants": [generic, decode]}
    return yaml.safe_dump(table, sort_keys=False)


def write_variants(tmp_path: Path, table: str) -> Path:
    """A ``--variants`` folder under ``tmp_path`` holding ``table`` as rms_norm's."""
    folder = tmp_path / "variants"
    folder.mkdir(exist_ok=True)
    (folder / "rms_norm.yaml").write_text(table)
    return folder


class Synth:
    """The helpers above, handed to tests as a fixture (conftest modules are not imported by name)."""

    H100, L4, DAY0, ROOT = H100, L4, DAY0, ROOT
    window = staticmethod(window)
    hours = staticmethod(hours)
    rms_norm_table = staticmethod(rms_norm_table)
    write_variants = staticmethod(write_variants)

    def __init__(self, specs, devices):
        self.specs, self.devices = specs, devices

    def roofline_s(self, kernel, dims, dtype="bfloat16", device=H100[0]) -> float:
        return roofline_s(self.specs, self.devices, kernel, dims, dtype, device)


@pytest.fixture(scope="session")
def synth(specs, devices):
    return Synth(specs, devices)
