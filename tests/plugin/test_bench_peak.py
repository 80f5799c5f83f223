"""The new kernels' ``flops`` objectives, on a GPU, come out as a share of the device's
peak: the tensor-core rate for float16/bfloat16, the FP32 rate for float32, a causal
attention's FLOPs halved. Checked here on a CPU by naming a known device (the H100 of the
shipped table) where the benchmark would ask CUDA for its name; without a GPU the
benchmarks themselves are skipped, and the skip says why."""

from pathlib import Path

import pytest

from pytest_aina import devices
from pytest_aina.plugin import bench
from pytest_aina.spec.model import load_spec

REPO = Path(__file__).resolve().parents[2]
H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture
def on_h100(monkeypatch):
    monkeypatch.setattr(bench, "device_name", lambda device: H100)
    limits = devices.lookup(H100)
    assert limits is not None and limits.flops["bfloat16"] > 10 * limits.flops["float32"]
    return limits


def _bench(spec, **want):
    return next(b for b in spec.benchmarks if all(getattr(b, k) == v for k, v in want.items()))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_matmul_reports_the_share_of_the_peak_for_its_dtype(on_h100, dtype):
    spec = load_spec(REPO / "specs" / "matmul.yaml")
    b = _bench(spec, dims=(("M", 4096), ("N", 4096), ("K", 4096)), dtype=dtype)
    flops = 2 * 4096**3
    seconds = flops / (0.4 * on_h100.flops[dtype])  # a kernel at 40% of the peak
    out = bench.throughput(spec, b, seconds, "cuda")
    assert out["flops"] == flops
    assert out["pct_of_flops"] == pytest.approx(40.0)
    assert out["limit_source"] == on_h100.source
    # each operand read once, C written once
    assert out["bytes"] == 3 * 4096 * 4096 * {"float32": 4}.get(dtype, 2)


def test_causal_attention_counts_half_the_flops(on_h100):
    spec = load_spec(REPO / "specs" / "attention.yaml")
    dims = (("B", 4), ("H", 32), ("S", 4096), ("D", 128))
    full, causal = _bench(spec, dims=dims, args=()), _bench(spec, dims=dims, args=(("causal", True),))
    seconds = 5e-3  # about 280 TFLOP/s without the mask: plausible, under the peak
    a, c = bench.throughput(spec, full, seconds, "cuda"), bench.throughput(spec, causal, seconds, "cuda")
    assert a["flops"] == 4 * 4 * 32 * 4096 * 4096 * 128 and c["flops"] == a["flops"] / 2
    assert a["pct_of_flops"] == pytest.approx(100 * a["flops"] / seconds / on_h100.flops["bfloat16"])
    assert c["pct_of_flops"] == pytest.approx(a["pct_of_flops"] / 2)


def test_a_time_faster_than_the_peak_is_a_measurement_error(on_h100):
    spec = load_spec(REPO / "specs" / "matmul.yaml")
    b = _bench(spec, dims=(("M", 4096), ("N", 4096), ("K", 4096)), dtype="bfloat16")
    with pytest.raises(RuntimeError, match="measurement error"):
        bench.throughput(spec, b, 2 * 4096**3 / (2 * on_h100.flops["bfloat16"]), "cuda")


def test_without_a_gpu_the_gpu_benchmarks_skip_and_say_why(pytester):
    """The declared GPU benchmarks of matmul are collected and skipped with the reason
    (the CPU one would run; it is deselected here to keep the test quick)."""
    pytester.syspathinsert(REPO)
    res = pytester.runpytest(
        str(REPO / "specs" / "matmul.yaml"),
        "--aina",
        "--aina-bench",
        "-p",
        "no:cacheprovider",
        "--no-aina-isolate",
        "-m",
        "aina_bench and gpu",
        "-rs",
        "-o",
        "addopts=",
    )
    out = res.stdout.str()
    res.assert_outcomes(skipped=14)  # 7 GPU cases, each timed for the implementation and the reference
    assert "needs a CUDA GPU" in out and "this machine has none" in out
