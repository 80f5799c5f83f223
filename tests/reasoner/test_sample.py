"""The committed sample: a day of a fleet, remade by its script, in which the Reasoner finds the shift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_aina.reasoner import reason_about_file
from pytest_aina.telemetry.window import parse_time

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "telemetry" / "sample-fleet-day.jsonl"


def test_the_sample_is_what_its_script_makes(tmp_path):
    out = tmp_path / "remade.jsonl"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_telemetry.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == SAMPLE.read_bytes()
    assert SAMPLE.stat().st_size < 5e6


def test_the_reasoner_finds_the_shift_in_the_sample():
    report = reason_about_file(SAMPLE, specs=ROOT / "specs", variants=ROOT / "kernels" / "variants")
    assert report.issues == [] and report.notes == []
    p = report.profile
    kernels = {"softmax", "rms_norm", "layer_norm", "matmul", "attention", "cross_entropy"}
    assert len(p.services) == 4 and len(p.devices) == 3 and set(p.kernels) == kernels
    assert {w for (_, _, _, w, _, _) in p.groups} == {"bfloat16", "float16"}
    # a shift is merged into the hypothesis about the same domain it made hot (test_merge.py)
    shifts = [m for h in report.hypotheses for m in h.members if m.kind == "shape_shift"]
    assert shifts, [h.title for h in report.hypotheses]
    # the script changes the chat services' configuration at 12:00 UTC
    noon = parse_time("2025-06-02T12:00:00Z")
    for h in shifts:
        assert abs(parse_time(h.evidence["changed_at"]) - noon) <= p.bin_s
    rms = next(h for h in shifts if h.kernel == "rms_norm")
    # after the change decode batches are 8..48 rows: the domain that grew is one of theirs
    assert rms.domain["dims"]["M"][1] <= 63 and rms.domain["arch"] == "sm_90"
    assert rms.evidence["total_variation"] > 0.5
