"""One hypothesis per domain, gains in one unit, and what the App's revert and retire jobs
read from ``rollback`` and ``retire``: telemetry files written here, read by ``aina reason``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_aina.cli import main
from pytest_aina.reasoner import Hypothesis, hypothesis_id
from pytest_aina.reasoner.merge import hull, overlaps
from pytest_aina.telemetry.window import parse_time
from pytest_aina.telemetry.wire import encode_line

ROOT = Path(__file__).resolve().parents[2]
DECODE = (("M", 16), ("N", 4096))
PREFILL = (("M", 4096), ("N", 4096))


def run(capsys, tmp_path: Path, windows, *extra, variants: Path | None = None) -> tuple[list[dict], str, Path]:
    """``aina reason --json`` and the table on a telemetry file made of ``windows``, with the
    dispatch tables in ``variants`` (none: a folder that does not exist, so no tables)."""
    path = tmp_path / "telemetry.jsonl"
    path.write_text("".join(encode_line(w) + "\n" for w in windows))
    folder = variants or tmp_path / "none"
    base = ["reason", "--telemetry", str(path), "--specs", str(ROOT / "specs"), "--variants", str(folder), *extra]
    assert main([*base, "--json"]) == 0
    hyps = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    return hyps, capsys.readouterr().out, path


def shift_to_decode(synth):
    """rms_norm: prefill shapes until 14:00, decode shapes after; decode is hot, generic, far
    from its launch floor, and the shape that grew."""
    before = [synth.window(kernel="rms_norm", dims=PREFILL, mean_s=3e-5, hour=h) for h in range(14)]
    after = [synth.window(kernel="rms_norm", dims=DECODE, mean_s=8e-6, calls=3750, hour=h) for h in range(14, 24)]
    return before + after


def test_hypotheses_over_one_domain_become_one(synth, tmp_path, capsys):
    hyps, table, _ = run(capsys, tmp_path, shift_to_decode(synth))
    decode_domain = {"dims": {"M": [16, 31], "N": [4096, 8191]}, "dtype": "bfloat16", "arch": "sm_90"}
    [h] = [h for h in hyps if h["kernel"] == "rms_norm" and overlaps(h["domain"], decode_domain)]
    members = Hypothesis.from_json(h).members
    kinds = [m.kind for m in members]
    # three detectors saw the decode domain; one hypothesis says so, led by the most lasting kind
    assert set(kinds) >= {"hot_unspecialised", "shape_shift"} and len(kinds) == len(set(kinds)) >= 2
    assert h["kind"] == kinds[0] == "hot_unspecialised" and h["id"] == members[0].id
    assert h["id"] == hypothesis_id(h["kind"], "rms_norm", h["domain"])
    # the largest estimate, not the sum: they are estimates of the same saving
    assert h["expected_gain"] == pytest.approx(max(m.expected_gain for m in members), abs=1e-3)
    assert h["expected_gain"] < sum(m.expected_gain for m in members)
    assert all(overlaps(m.domain, h["domain"]) for m in members)
    # the hot shapes the Changer specialises for are all there, the hottest first
    assert h["evidence"]["groups"][0]["dims"] == {"M": 16, "N": 4096}
    assert "merged: " in table and all(m.id in table for m in members)


def test_hypotheses_over_separate_domains_stay_apart(synth, tmp_path, capsys):
    ws = [synth.window(kernel="rms_norm", dims=DECODE, mean_s=8e-6, calls=40_000, hour=h) for h in range(24)]
    bound = synth.roofline_s("rms_norm", PREFILL)
    ws += synth.hours(kernel="rms_norm", dims=PREFILL, mean_s=bound / 0.6, calls=4000)
    hyps, _, _ = run(capsys, tmp_path, ws)
    actionable = [h for h in hyps if h["kind"] in ("far_from_limit", "hot_unspecialised", "shape_shift")]
    assert len(actionable) == 2
    assert not overlaps(actionable[0]["domain"], actionable[1]["domain"])
    assert {h["domain"]["dims"]["M"][0] for h in actionable} == {16, 4096}


def test_domains_overlap_and_join():
    a = {"dims": {"M": [1, 64], "N": [4096, 8191]}, "dtype": "bfloat16", "arch": "sm_90"}
    assert overlaps(a, {"dims": {"M": [64, 127]}, "dtype": None, "arch": "sm_90"})
    assert not overlaps(a, {"dims": {"M": [65, 127]}, "dtype": "bfloat16", "arch": "sm_90"})
    assert not overlaps(a, {"dims": {"M": [16, 31]}, "dtype": "float16", "arch": "sm_90"})
    assert not overlaps(a, {"dims": {"M": [16, 31]}, "dtype": "bfloat16", "arch": "sm_80"})
    assert overlaps(a, {"dims": {"M": [32, None]}, "dtype": "bfloat16", "arch": "sm_90"})  # open above
    joined = hull([a, {"dims": {"M": [32, None], "N": [8192, 16383]}, "dtype": "bfloat16", "arch": "sm_80"}])
    assert joined == {"dims": {"M": [1, None], "N": [4096, 16383]}, "dtype": "bfloat16", "arch": None}


def test_every_gain_is_in_gpu_seconds_per_day_with_its_share(capsys, tmp_path):
    sample = ROOT / "telemetry" / "sample-fleet-day.jsonl"
    base = ["reason", "--telemetry", str(sample), "--specs", str(ROOT / "specs")]
    assert main([*base, "--json", "report"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    table = capsys.readouterr().out
    fleet = report["fleet_gpu_s_per_day"]
    assert report["gain_unit"] == "gpu_s_per_day" and fleet > 0
    for h in report["hypotheses"]:
        assert h["expected_gain_unit"] == "gpu_s_per_day"
        assert h["expected_gain_share"] == pytest.approx(h["expected_gain"] / fleet, abs=1e-6)
        assert f"{h['expected_gain']:,.0f} GPU-s/day" in table and f"{h['expected_gain_share']:.2%}" in table
    assert not re.search(r"GPU-(h|min)/day", table)
    # `--json` alone is the list it always was
    assert main([*base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == report["hypotheses"]


def test_rollback_carries_claimed_and_measured_for_a_revert(synth, tmp_path, capsys):
    ws = [
        synth.window(kernel="rms_norm", dims=DECODE, mean_s=2e-5, calls=1000, hour=h, variant="decode")
        for h in range(24)
    ]
    hyps, _, path = run(
        capsys,
        tmp_path,
        ws,
        variants=synth.write_variants(tmp_path, synth.rms_norm_table(baseline_latency_s=1.5e-5, pr=17)),
    )
    [h] = [h for h in hyps if h["kind"] == "rollback"]
    assert (h["kernel"], h["variant"]) == ("rms_norm", "decode")
    ev = h["evidence"]
    assert ev["claimed"] == {
        "latency_s": 1e-5,
        "dims": {"M": 16, "N": 4096},
        "dtype": "bfloat16",
        "device": "NVIDIA H100 80GB HBM3",
        "pr": 17,
    }
    assert ev["measured"]["method"] == "same_shape" and ev["measured"]["calls"] == 24_000
    assert ev["measured"]["latency_s"] == pytest.approx(2e-5)
    assert (ev["measured"]["from"], ev["measured"]["to"]) == ("2025-06-02T00:00:00Z", "2025-06-03T00:00:00Z")
    # the windows it cites are lines of the file, each a window of the variant
    lines = path.read_text().splitlines()
    for ref in ev["windows"]["refs"]:
        file, _, line = ref.rpartition(":")
        assert file == str(path) and json.loads(lines[int(line) - 1])["variant"] == "decode"


def test_retire_carries_the_idle_stretch_and_the_kernels_windows_in_it(synth, tmp_path, capsys):
    ws = [synth.window(kernel="rms_norm", dims=DECODE, mean_s=1e-5, hour=h, variant="decode") for h in range(6)]
    ws += synth.hours(kernel="rms_norm", dims=(("M", 8192), ("N", 4096)), mean_s=3e-5)
    hyps, _, path = run(
        capsys,
        tmp_path,
        ws,
        variants=synth.write_variants(tmp_path, synth.rms_norm_table(baseline_latency_s=1.5e-5, pr=17)),
    )
    [h] = [h for h in hyps if h["kind"] == "retire"]
    ev = h["evidence"]
    assert (h["variant"], ev["last_call"]) == ("decode", "2025-06-02T06:00:00Z")
    assert (ev["idle_from"], ev["idle_to"]) == ("2025-06-02T18:00:00Z", "2025-06-03T00:00:00Z")
    assert ev["telemetry_from"] == "2025-06-02T00:00:00Z"
    seen = ev["kernel_windows_while_idle"]
    assert seen["count"] == 6 and len(seen["refs"]) == 6
    lines = path.read_text().splitlines()
    for ref in seen["refs"]:
        w = json.loads(lines[int(ref.rpartition(":")[2]) - 1])
        assert w["kernel"] == "rms_norm" and w["variant"] == "generic"
        assert parse_time(w["start"]) >= parse_time(ev["idle_from"])
