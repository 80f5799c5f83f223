"""The Reasoner on synthetic telemetry built to a known answer: one case per hypothesis kind,
and the case next to it that must stay quiet."""

from __future__ import annotations

import pytest

from pytest_aina.reasoner import KINDS, ReasonerConfig, reason
from pytest_aina.runtime.dispatch import parse_table

SQUARE = (("M", 4096), ("N", 4096))
DECODE = (("M", 16), ("N", 4096))


def kinds(report):
    """The detectors' kinds, counting those merged into another hypothesis (test_merge.py)."""
    return [m.kind for h in report.hypotheses for m in h.members]


def only(report, kind):
    """The one hypothesis of ``kind`` a detector made, whether or not it was merged."""
    found = [m for h in report.hypotheses for m in h.members if m.kind == kind]
    assert len(found) == 1, [h.title for h in report.hypotheses]
    return found[0]


def table(text: str, kernel: str = "rms_norm"):
    return {kernel: parse_table(text, f"{kernel}.yaml", kernel=kernel)}


# --- far from the limit ----------------------------------------------------------------------


def test_far_from_limit(synth, specs, devices):
    bound = synth.roofline_s("softmax", SQUARE)  # 20 us on an H100
    report = reason(synth.hours(kernel="softmax", dims=SQUARE, mean_s=5 * bound), specs, devices=devices)
    h = only(report, "far_from_limit")
    assert h.kernel == "softmax" and h.evidence["efficiency"] == pytest.approx(0.2, abs=1e-3)
    gpu_s_per_day = 24 * 1000 * 5 * bound
    assert h.expected_gain == pytest.approx(gpu_s_per_day * (1 - 0.2 / 0.8), rel=1e-3)
    assert h.domain == {"dims": {"M": [4096, 8191], "N": [4096, 8191]}, "dtype": "bfloat16", "arch": "sm_90"}
    row = h.evidence["groups"][0]
    assert row["pct_of_bandwidth"] == pytest.approx(20, abs=0.1) and row["bound"] == "memory"
    assert row["limit_bytes_per_s"] == 3.35e12 and "H100" in h.evidence["limits_source"]
    assert h.evidence["windows"]["count"] == 24 and len(h.evidence["windows"]["refs"]) == 10


def test_near_the_limit_is_quiet(synth, specs, devices):
    bound = synth.roofline_s("softmax", SQUARE)
    report = reason(synth.hours(kernel="softmax", dims=SQUARE, mean_s=1.1 * bound), specs, devices=devices)
    assert report.hypotheses == []  # hot and unspecialised, but already at 91% of the roofline


def test_a_small_share_is_not_worth_it(synth, specs, devices):
    bound = synth.roofline_s("softmax", SQUARE)
    slow = synth.hours(kernel="softmax", dims=SQUARE, mean_s=5 * bound, calls=10)  # 1% of the time
    fast = synth.hours(
        kernel="layer_norm",
        dims=(("M", 8192), ("N", 1024)),
        calls=100_000,
        mean_s=1.05 * synth.roofline_s("layer_norm", (("M", 8192), ("N", 1024))),
    )
    report = reason(slow + fast, specs, devices=devices)
    assert "far_from_limit" not in kinds(report) and "hot_unspecialised" not in kinds(report)


def test_tiny_kernels_are_measured_against_the_launch_floor(synth, specs, devices):
    # 16 rows of 4096: 0.08 us of traffic, but no single kernel finishes in under 2 us
    report = reason(synth.hours(kernel="rms_norm", dims=DECODE, mean_s=2.2e-6), specs, devices=devices)
    assert report.hypotheses == []
    report = reason(synth.hours(kernel="rms_norm", dims=DECODE, mean_s=8e-6), specs, devices=devices)
    h = only(report, "far_from_limit")
    assert h.evidence["efficiency"] == pytest.approx(0.25, abs=1e-3)
    assert h.evidence["groups"][0]["bound"] == "launch"


# --- hot and unspecialised -------------------------------------------------------------------


def decode_and_prefill(synth, decode_variant="generic", decode_mean=8e-6, hours=range(24)):
    prefill = (("M", 8192), ("N", 4096))
    return [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=decode_mean, calls=40_000, hour=h, variant=decode_variant)
        for h in hours
    ] + synth.hours(kernel="rms_norm", dims=prefill, calls=4000, mean_s=1.1 * synth.roofline_s("rms_norm", prefill))


def test_hot_unspecialised(synth, specs, devices):
    report = reason(decode_and_prefill(synth), specs, devices=devices)
    h = only(report, "hot_unspecialised")
    assert h.domain == {"dims": {"M": [16, 31], "N": [4096, 8191]}, "dtype": "bfloat16", "arch": "sm_90"}
    assert h.evidence["generic_share"] == 1.0 and h.evidence["observed_dims"] == {"M": [16, 16], "N": [4096, 4096]}
    decode_s = 24 * 40_000 * 8e-6
    assert h.evidence["share_of_gpu_time"] == pytest.approx(decode_s / report.profile.total_time_s, abs=1e-5)
    assert h.expected_gain == pytest.approx(decode_s * (1 - 0.25 / 0.8), rel=1e-3)  # roofline 2 us of 8 us


def test_a_domain_with_a_variant_is_not_unspecialised(synth, specs, devices):
    tables = table(synth.rms_norm_table(baseline_latency_s=1.5e-5))
    report = reason(decode_and_prefill(synth), specs, devices=devices, tables=tables)
    assert "hot_unspecialised" not in kinds(report)  # 'decode' covers it (not deployed yet, apparently)
    served = reason(decode_and_prefill(synth, decode_variant="decode", decode_mean=1e-5), specs, devices=devices)
    assert "hot_unspecialised" not in kinds(served)  # served by a variant in production


# --- shape shift -----------------------------------------------------------------------------


def test_shape_shift_found_where_it_happened(synth, specs, devices):
    before = [synth.window(kernel="rms_norm", dims=(("M", 4096), ("N", 4096)), mean_s=3e-5, hour=h) for h in range(14)]
    after = [synth.window(kernel="rms_norm", dims=DECODE, mean_s=8e-6, calls=3750, hour=h) for h in range(14, 24)]
    h = only(reason(before + after, specs, devices=devices), "shape_shift")
    assert h.evidence["changed_at"] == "2025-06-02T14:00:00Z"
    assert h.evidence["total_variation"] == pytest.approx(1.0)
    assert h.domain["dims"] == {"M": [16, 31], "N": [4096, 8191]}
    assert h.evidence["grew"][0]["share_after"] == 1.0 and h.evidence["shrank"][0]["share_before"] == 1.0
    assert h.evidence["groups"][0]["dims"] == {"M": 16, "N": 4096}  # the hot shape of the grown domain
    # the grown domain's time per day at the new mix, times its roofline gap
    per_day_after = 10 * 3750 * 8e-6 * 24 / 10
    assert h.expected_gain == pytest.approx(per_day_after * (1 - 0.25 / 0.8), rel=1e-3)


def test_a_steady_mix_is_not_a_shift(synth, specs, devices):
    ws = []
    for hr in range(24):  # two shapes every hour, the load going up and down
        load = 1 + (hr % 6)
        ws.append(
            synth.window(kernel="rms_norm", dims=(("M", 4096), ("N", 4096)), mean_s=3e-5, calls=100 * load, hour=hr)
        )
        ws.append(synth.window(kernel="rms_norm", dims=DECODE, mean_s=8e-6, calls=375 * load, hour=hr))
    assert "shape_shift" not in kinds(reason(ws, specs, devices=devices))


# --- rollback --------------------------------------------------------------------------------


def test_rollback_against_the_merged_evidence(synth, specs, devices):
    ws = [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=2e-5, calls=1000, hour=h, variant="decode")
        for h in range(24)
    ]
    h = only(
        reason(ws, specs, devices=devices, tables=table(synth.rms_norm_table(baseline_latency_s=1.5e-5))), "rollback"
    )
    assert h.variant == "decode" and h.evidence["slowdown"] == pytest.approx(2.0)
    # the variant claimed 1.5x over generic; production lost 2x: going back saves 1 - 1.5/2 of its time
    assert h.expected_gain == pytest.approx(24 * 1000 * 2e-5 * 0.25, rel=1e-6)
    assert h.domain == {"dims": {"M": [1, 64]}, "dtype": "bfloat16", "arch": "sm_90"}
    assert "evidence's own shape" in h.evidence["comparison"]


def test_rollback_measured_against_generic_in_production(synth, specs, devices):
    ws = [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=2e-5, calls=1000, hour=h, variant="decode")
        for h in range(24)
    ]
    ws += [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=1.2e-5, calls=50, hour=h, service="canary")
        for h in range(24)
    ]
    h = only(
        reason(ws, specs, devices=devices, tables=table(synth.rms_norm_table(baseline_latency_s=1.5e-5))), "rollback"
    )
    assert h.expected_gain == pytest.approx(24 * 1000 * (2e-5 - 1.2e-5), rel=1e-6)
    assert h.gain_basis.startswith("measured")


def test_rollback_by_bandwidth_at_other_shapes(synth, specs, devices):
    m32 = (("M", 32), ("N", 4096))
    spec = specs["rms_norm"]
    claimed_bw = spec.bytes_for(dict(DECODE), "bfloat16") / 1e-5
    slow = 3 * spec.bytes_for(dict(m32), "bfloat16") / claimed_bw  # a third of the claimed bandwidth
    ws = [synth.window(kernel="rms_norm", dims=m32, mean_s=slow, hour=h, variant="decode") for h in range(24)]
    h = only(
        reason(ws, specs, devices=devices, tables=table(synth.rms_norm_table(baseline_latency_s=1.5e-5))), "rollback"
    )
    assert h.evidence["slowdown"] == pytest.approx(3.0) and "bandwidth" in h.evidence["comparison"]


def test_a_variant_that_keeps_its_promise_is_not_rolled_back(synth, specs, devices):
    ws = [synth.window(kernel="rms_norm", dims=DECODE, mean_s=1.05e-5, hour=h, variant="decode") for h in range(24)]
    assert "rollback" not in kinds(
        reason(ws, specs, devices=devices, tables=table(synth.rms_norm_table(baseline_latency_s=1.5e-5)))
    )


# --- retire ----------------------------------------------------------------------------------


def test_retire_a_variant_nobody_calls(synth, specs, devices):
    ws = [synth.window(kernel="rms_norm", dims=DECODE, mean_s=1e-5, hour=h, variant="decode") for h in range(6)]
    ws += synth.hours(kernel="rms_norm", dims=(("M", 8192), ("N", 4096)), mean_s=3e-5)
    h = only(
        reason(ws, specs, devices=devices, tables=table(synth.rms_norm_table(baseline_latency_s=1.5e-5))), "retire"
    )
    assert h.variant == "decode" and h.expected_gain == 0
    assert h.evidence["last_call"] == "2025-06-02T06:00:00Z" and h.evidence["calls_before"] == 6000
    assert h.evidence["idle_s"] == 6 * 3600


def test_a_variant_called_lately_or_an_idle_kernel_is_not_retired(synth, specs, devices):
    recent = [synth.window(kernel="rms_norm", dims=DECODE, mean_s=1e-5, hour=20, variant="decode")]
    recent += synth.hours(kernel="rms_norm", dims=(("M", 8192), ("N", 4096)), mean_s=3e-5)
    assert "retire" not in kinds(
        reason(recent, specs, devices=devices, tables=table(synth.rms_norm_table(baseline_latency_s=1.5e-5)))
    )
    # the kernel itself has been idle since 10:00: the variant's silence says nothing
    idle = [synth.window(kernel="rms_norm", dims=DECODE, mean_s=1e-5, hour=h, variant="decode") for h in range(4)]
    idle += [synth.window(kernel="rms_norm", dims=(("M", 8192), ("N", 4096)), mean_s=3e-5, hour=h) for h in range(10)]
    idle += synth.hours(kernel="softmax", dims=SQUARE, mean_s=2.2e-5)
    assert "retire" not in kinds(
        reason(idle, specs, devices=devices, tables=table(synth.rms_norm_table(baseline_latency_s=1.5e-5)))
    )


# --- ranking and identity ----------------------------------------------------------------------


def everything(synth):
    ws = decode_and_prefill(synth)
    ws += [
        synth.window(kernel="rms_norm", dims=(("M", 48), ("N", 4096)), mean_s=1e-4, hour=h, variant="decode")
        for h in range(3)
    ]
    bound = synth.roofline_s("softmax", SQUARE)
    ws += [synth.window(kernel="softmax", dims=SQUARE, mean_s=4 * bound, calls=2000, hour=h) for h in range(12)]
    ws += [
        synth.window(kernel="softmax", dims=(("M", 8), ("N", 131072)), mean_s=4e-5, calls=3000, hour=h)
        for h in range(12, 24)
    ]
    return ws


def test_ranking_is_deterministic_and_ids_are_stable(synth, specs, devices):
    import random

    ws = everything(synth)
    tables = table(synth.rms_norm_table(baseline_latency_s=1.5e-5))
    report = reason(ws, specs, devices=devices, tables=tables)
    first = report.as_json()
    assert set(kinds(report)) == set(KINDS)  # every kind at once (some merged into another)
    gains = [h["expected_gain"] for h in first]
    assert gains == sorted(gains, reverse=True)
    for seed in range(3):
        shuffled = list(ws)
        random.Random(seed).shuffle(shuffled)
        assert reason(shuffled, specs, devices=devices, tables=tables).as_json() == first
    # more traffic changes the figures, not the identities
    import dataclasses

    doubled = [dataclasses.replace(w, calls=w.calls * 2, time_s=w.time_s * 2) for w in ws]
    again = reason(doubled, specs, devices=devices, tables=tables).as_json()
    assert sorted(h["id"] for h in again) == sorted(h["id"] for h in first)
    assert len({h["id"] for h in first}) == len(first)


def test_config_thresholds_are_honoured(synth, specs, devices):
    ws = decode_and_prefill(synth)
    strict = ReasonerConfig(min_domain_share=0.99, min_kernel_share=0.99)
    assert "hot_unspecialised" not in kinds(reason(ws, specs, devices=devices, config=strict))
