"""Benchmarks at a spec's benchmark cases, through pytest-benchmark.

On a GPU a round is timed with CUDA events on the current stream, after a warm-up, with
the L2 cache flushed and fresh inputs made before every round (outside the timed region),
so neither a warm cache nor an answer left over from the previous round can flatter the
kernel. Every round's output is checked against the reference after it was timed. A
figure above the device's limit is reported as a measurement error, never as a result.

On a CPU the kernel runs in Triton's interpreter and the clock is the wall clock: the
figures are labelled as such and are not GPU evidence.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_aina import devices
from pytest_aina.checking.cases import call, make_inputs
from pytest_aina.checking.checks import CaseFailure, Kernel, prepare_backward
from pytest_aina.checking.compare import compare
from pytest_aina.spec.model import BenchCase, Case, Spec

L2_FLUSH_BYTES = 256 << 20  # larger than any current GPU's L2 (H100: 50 MB, B200: 126 MB)
CPU_CLOCK = "wall clock, Triton interpreter on CPU (not GPU evidence)"
GPU_CLOCK = "CUDA events, L2 flushed, fresh inputs each round"


class CudaEventClock:
    """A pytest-benchmark timer reading GPU time: each call records an event on the
    current stream, waits for it, and returns seconds since an origin event. The
    difference of two readings is the GPU time between them."""

    def __init__(self):
        import torch

        self._torch = torch
        self.origin = torch.cuda.Event(enable_timing=True)
        self.origin.record()
        torch.cuda.synchronize()

    def __call__(self) -> float:
        e = self._torch.cuda.Event(enable_timing=True)
        e.record()
        e.synchronize()
        return self.origin.elapsed_time(e) / 1e3


@dataclass
class _Round:
    case: Case
    inputs: Any
    out: Any = None
    backward: Any = None  # phase backward: the prepared pass (checks.Backward)


def run(
    benchmark,
    spec: Spec,
    fn: Callable,
    reference: Callable,
    bcase: BenchCase,
    device: str,
    *,
    which: str,
    rounds: int | None = None,
) -> dict:
    """Benchmark ``fn`` at ``bcase``; returns the extra info stored with the result."""
    import torch

    case = bcase.as_case()
    seeds = iter(range(1, 1 << 30))
    flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device) if device == "cuda" else None

    backward = bcase.phase == "backward"

    def setup():
        # fresh inputs each round: a kernel cannot return an answer cached from the last one
        c = Case(case.dims, case.dtype, seed=next(seeds), args=case.args)
        if backward:  # the forward (and the reference's, for the check) before the clock starts
            b = prepare_backward(spec, Kernel(fn, reference, device), c)
            r = _Round(c, b.impl.inputs, backward=b)
        else:
            r = _Round(c, make_inputs(spec, c, device))
        if flush is not None:
            flush.zero_()
        return (r,), {}

    def target(r: _Round):
        r.out = r.backward.run() if backward else call(fn, spec, r.inputs, r.case)

    def teardown(r: _Round):
        # checked after timing, every round: a fast wrong answer is not a result
        if backward:
            try:
                r.backward.check(r.out)
            except CaseFailure as exc:
                raise CaseFailure(
                    spec, r.case, f"benchmark {exc.what} check ({which})", exc.detail, exc.mismatch
                ) from None
            return
        ref = call(reference, spec, r.inputs, r.case)
        m = compare(r.out, ref, spec.tolerance[case.dtype])
        if m:
            raise CaseFailure(spec, r.case, f"benchmark output check ({which})", m.describe(), m)

    if device == "cuda":
        benchmark._timer = CudaEventClock()  # pytest-benchmark has no public per-test timer hook
        rounds = rounds or 50
        warmup = 5
    else:
        rounds = rounds or 5
        warmup = 1
    if benchmark.disabled:
        # pytest-benchmark switches itself off under xdist (and --benchmark-disable): one
        # round would be timed while other workers load the machine, a figure worth nothing
        pytest.skip(
            "pytest-benchmark is disabled in this session (xdist workers or --benchmark-disable): "
            "benchmarks need a pytest process of their own; run them without -n"
        )
    benchmark.group = f"{spec.name} {bcase.label()}"
    info = {
        "spec": spec.name,
        "which": which,
        "case": bcase.label(),
        "device": device_name(device),
        "clock": GPU_CLOCK if device == "cuda" else CPU_CLOCK,
    }
    benchmark.extra_info.update(info)
    benchmark.pedantic(target, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=warmup)
    stats = benchmark.stats.stats
    if backward:
        info["phase"] = "backward"  # bytes and flops model the forward call: no figure for this phase
    else:
        info.update(throughput(spec, bcase, stats.median, device))
    benchmark.extra_info.update(info)
    return info


def throughput(spec: Spec, bcase: BenchCase, seconds: float, device: str) -> dict:
    """Bytes/s and FLOP/s at the median, and % of the device's limit when it is known."""
    out: dict = {}
    nbytes = spec.bytes_for(bcase.dim_map, bcase.dtype, dict(bcase.args))
    flops = spec.flops_for(bcase.dim_map, bcase.dtype, dict(bcase.args))
    if seconds <= 0:
        raise RuntimeError(f"measurement error: median time {seconds} s is not positive")
    limits = device_limits(device)
    if nbytes is not None:
        out["bytes"] = nbytes
        out["bytes_per_s"] = nbytes / seconds
        peak = limits.get("hbm_bytes_per_s")
        if peak:
            out["pct_of_hbm"] = 100.0 * out["bytes_per_s"] / peak
    if flops is not None:
        out["flops"] = flops
        out["flop_per_s"] = flops / seconds
        peak = limits.get("flops", {}).get(bcase.dtype)
        if peak:
            out["pct_of_flops"] = 100.0 * out["flop_per_s"] / peak
    out["limit_source"] = limits.get("source")
    # Faster than the hardware allows means the measurement is broken (a kernel that did
    # not run, a clock that was not synchronised), not that the kernel is great.
    for key in ("pct_of_hbm", "pct_of_flops"):
        if out.get(key, 0) > 105.0:
            raise RuntimeError(
                f"measurement error: {out[key]:.0f}% of the device's {key[7:]} limit "
                f"({out['limit_source']}); the timing cannot be trusted"
            )
    return out


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}), Triton interpreter"


def device_limits(device: str) -> dict:
    """Peak figures for the device, from the device table; empty on a CPU."""
    if device != "cuda":
        return {}
    lim = devices.lookup(device_name(device))
    if lim is None:
        return {}
    return {"hbm_bytes_per_s": lim.hbm_bytes_per_s, "flops": dict(lim.flops), "source": lim.source}
