"""``aina reason`` says why a hot kernel got no hypothesis: telemetry files written here to a
known answer, read by the command as a user runs it; the reason is computed from the data,
so the same kernel with other figures gets another reason, or a hypothesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_aina.cli import main
from pytest_aina.telemetry.wire import encode_line

ROOT = Path(__file__).resolve().parents[2]
SQUARE = (("M", 4096), ("N", 4096))
DECODE = (("M", 16), ("N", 4096))


def write(tmp_path: Path, windows, name: str = "telemetry.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(encode_line(w) + "\n" for w in windows))
    return path


def reason(capsys, path: Path, table_dir: Path | None = None, *extra) -> tuple[dict, str]:
    """The command's JSON report and its table, for one telemetry file."""
    base = ["reason", "--telemetry", path, "--specs", ROOT / "specs", "--variants", table_dir or path.parent / "none"]
    assert main([str(a) for a in [*base, "--json", "report", *extra]]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main([str(a) for a in [*base, *extra]]) == 0
    return report, capsys.readouterr().out


def test_a_hot_kernel_at_its_roofline_is_left_alone_and_says_so(synth, tmp_path, capsys):
    bound = synth.roofline_s("softmax", SQUARE)
    path = write(tmp_path, synth.hours(kernel="softmax", dims=SQUARE, mean_s=1.1 * bound))
    report, table = reason(capsys, path)
    assert report["hypotheses"] == []
    # the sample's other left-alone kernel (attention, spread thin) has its own reason
    by_kernel = {x["kernel"]: x for x in report["left_alone"]}
    x = by_kernel["softmax"]
    assert x["reason"] == "at_limit" and x["share_of_gpu_time"] == 1.0
    assert x["gpu_s_per_day"] == pytest.approx(24 * 1000 * 1.1 * bound, abs=1e-3)  # JSON figures: 3 decimals
    [row] = x["domains"]
    assert row["efficiency"] == pytest.approx(1 / 1.1, abs=1e-4) and row["device_key"] == "h100-sxm"
    assert row["bound"] == "memory" and row["gain_at_target_gpu_s_per_day"] == 0
    assert "at_limit: 100% of its time in 1 domain(s) at 91%-91% of their roofline (target 80%)" in x["detail"]
    assert "hot kernels left alone, and why (1):" in table and "at_limit" in table
    # the same kernel slower: now there is something to win, and a hypothesis instead
    path = write(tmp_path, synth.hours(kernel="softmax", dims=SQUARE, mean_s=5 * bound), "slow.jsonl")
    report, table = reason(capsys, path)
    assert report["left_alone"] == [] and report["hypotheses"][0]["kernel"] == "softmax"
    assert "left alone" not in table


def test_time_spread_over_domains_below_the_hot_share(synth, tmp_path, capsys):
    shapes = [(("M", m), ("N", 4096)) for m in (1024, 2048, 4096)]
    ws = []
    for dims in shapes:  # each a third of the time, each at 60% of its roofline
        bound = synth.roofline_s("softmax", dims)
        ws += synth.hours(kernel="softmax", dims=dims, mean_s=bound / 0.6, calls=int(4096 * 1000 / dims[0][1]))
    report, _ = reason(capsys, write(tmp_path, ws), None, "--min-share", "0.5")
    assert report["hypotheses"] == []  # 60% is above far_from_limit's 50%, no domain reaches 50% of the time
    [x] = report["left_alone"]
    assert x["reason"] == "below_threshold" and len(x["domains"]) == 3
    total = sum(w.time_s for w in ws)
    to_gain = total * (1 - 0.6 / 0.8)
    assert sum(r["gain_at_target_gpu_s_per_day"] for r in x["domains"]) == pytest.approx(to_gain, abs=3e-3)
    assert f"{to_gain:,.0f} GPU-s/day to gain at 80% across them" in x["detail"]
    assert "each under 50% of GPU time" in x["detail"] and "runs at 60% of its roofline" in x["detail"]
    # at the default hot share every domain counts: a hypothesis for each, nothing left alone
    report, _ = reason(capsys, write(tmp_path, ws, "again.jsonl"))
    assert report["left_alone"] == [] and report["hypotheses"]


def test_a_domain_served_by_a_variant_that_keeps_its_promise(synth, tmp_path, capsys):
    # 2.3 us: near the 2 us launch floor, so nothing is far from the limit either
    ws = [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=2.3e-6, hour=h, variant="decode", calls=1000)
        for h in range(24)
    ]
    report, _ = reason(
        capsys, write(tmp_path, ws), synth.write_variants(tmp_path, synth.rms_norm_table(latency_s=2.2e-6))
    )
    [x] = report["left_alone"]
    assert x["reason"] == "specialised" and x["domains"][0]["variant"] == "decode"
    assert x["domains"][0]["variants"] == {"decode": 1.0}
    assert "production 1.05x its evidence's latency, within the rollback tolerance" in x["detail"]


def test_a_variant_slower_than_claimed_but_faster_than_generic(synth, tmp_path, capsys):
    ws = [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=2.3e-6, hour=h, variant="decode", calls=1000)
        for h in range(24)
    ]  # 1.53x its claim of 1.5 us...
    ws += [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=2.5e-6, hour=h, calls=50, service="canary")
        for h in range(24)
    ]  # ...and generic, measured beside it, slower still: going back would lose time
    report, _ = reason(
        capsys, write(tmp_path, ws), synth.write_variants(tmp_path, synth.rms_norm_table(latency_s=1.5e-6))
    )
    assert report["hypotheses"] == []
    [x] = report["left_alone"]
    assert x["reason"] == "specialised"
    assert "production 1.53x slower than its evidence, but no slower than going back to generic" in x["detail"]


def test_a_variant_with_interpreter_evidence_cannot_be_compared(synth, tmp_path, capsys):
    # production is 10x slower than the claim, but the claim was timed by Triton's interpreter
    ws = [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=2.3e-6, hour=h, variant="decode", calls=1000)
        for h in range(24)
    ]
    table_dir = synth.write_variants(
        tmp_path,
        synth.rms_norm_table(device="cpu, Triton interpreter (x86_64)", latency_s=2.3e-7),
    )
    report, _ = reason(capsys, write(tmp_path, ws), table_dir)
    assert [h["kind"] for h in report["hypotheses"]] == []
    [x] = report["left_alone"]
    assert x["reason"] == "specialised" and "its evidence is interpreter timings" in x["detail"]


def test_a_variant_in_the_table_that_production_does_not_call(synth, tmp_path, capsys):
    ws = synth.hours(kernel="rms_norm", dims=DECODE, mean_s=2.2e-6)
    report, _ = reason(
        capsys,
        write(tmp_path, ws),
        synth.write_variants(tmp_path, synth.rms_norm_table()),
    )
    [x] = report["left_alone"]
    assert x["reason"] == "variant_not_deployed" and x["domains"][0]["variant"] == "decode"
    assert "production still calls generic" in x["detail"]


def test_too_few_calls_to_say_anything(synth, tmp_path, capsys):
    bound = synth.roofline_s("softmax", SQUARE)
    few = synth.hours(kernel="softmax", dims=SQUARE, mean_s=5 * bound, calls=3)  # 72 calls in the day
    report, _ = reason(capsys, write(tmp_path, few))
    assert report["hypotheses"] == []
    [x] = report["left_alone"]
    assert x["reason"] == "few_calls" and "72 calls (under 100)" in x["detail"]
    many = synth.hours(kernel="softmax", dims=SQUARE, mean_s=5 * bound, calls=5)  # 120 calls
    report, _ = reason(capsys, write(tmp_path, many, "more.jsonl"))
    assert report["left_alone"] == [] and report["hypotheses"]


def test_a_hot_kernel_without_a_spec(synth, tmp_path, capsys):
    ws = synth.hours(kernel="softmax", dims=SQUARE, mean_s=1.1 * synth.roofline_s("softmax", SQUARE), calls=100)
    ws += synth.hours(kernel="fp8_gemm", dims=(("M", 4096), ("N", 4096), ("K", 4096)), mean_s=1e-3, calls=100)
    report, table = reason(capsys, write(tmp_path, ws))
    spec_less = [x for x in report["left_alone"] if x["reason"] == "no_spec"]
    assert [x["kernel"] for x in spec_less] == ["fp8_gemm"]
    softmax_s = sum(w.time_s for w in ws if w.kernel == "softmax")
    assert spec_less[0]["share_of_gpu_time"] == pytest.approx(2.4 / (2.4 + softmax_s), abs=1e-5)
    assert "add specs/fp8_gemm.yaml" in spec_less[0]["detail"] and "no_spec" in table


def test_the_sample_says_why_softmax_is_left_alone(capsys):
    report, table = reason(
        capsys, ROOT / "telemetry" / "sample-fleet-day.jsonl", ROOT / "kernels" / "variants", "--min-share", "0.05"
    )
    kernels_with = {h["kernel"] for h in report["hypotheses"] if h["expected_gain"] > 0}
    # the sample's other left-alone kernel (attention, spread thin) has its own reason
    by_kernel = {x["kernel"]: x for x in report["left_alone"]}
    x = by_kernel["softmax"]
    assert "softmax" not in kernels_with and x["share_of_gpu_time"] > 0.5
    # most of its time is in two L4 domains already at 80% or more of the memory roofline
    at = [r for r in x["domains"] if r["reason"] == "at_limit"]
    assert x["reason"] == "at_limit" and at and all(r["efficiency"] >= 0.8 for r in at)
    assert sum(r["gpu_s_per_day"] for r in at) > 0.5 * x["gpu_s_per_day"]
    assert all(r["share_of_gpu_time"] >= 0.05 for r in at)
    # the rest is spread thin: each domain under the hot share
    assert all(r["share_of_gpu_time"] < 0.05 for r in x["domains"] if r["reason"] == "below_threshold")
    assert "softmax" in table.split("hot kernels left alone")[1]
