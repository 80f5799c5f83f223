"""``aina reason`` and ``aina telemetry`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_aina.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "telemetry" / "sample-fleet-day.jsonl"
REQUIRED = {"id", "kind", "kernel", "evidence", "expected_gain"}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_reason_json(capsys):
    code, out, _ = run(
        capsys,
        "reason",
        "--telemetry",
        SAMPLE,
        "--json",
        "--specs",
        ROOT / "specs",
        "--variants",
        ROOT / "kernels" / "variants",
    )
    assert code == 0
    hyps = json.loads(out)
    assert isinstance(hyps, list) and hyps
    for h in hyps:
        assert REQUIRED <= set(h)
        assert h["id"].startswith("hyp-") and h["expected_gain_unit"] == "gpu_s_per_day"
        assert set(h["domain"]) == {"dims", "dtype", "arch"}
        assert all(len(r) == 2 for r in h["domain"]["dims"].values())


def test_reason_table(capsys):
    code, out, _ = run(capsys, "reason", "--telemetry", SAMPLE, "--specs", ROOT / "specs")
    assert code == 0
    assert "where the GPU time goes" in out and "hypotheses, most valuable first" in out
    assert "shape_shift" in out and "windows read, 0 refused" in out


def test_reason_reports_refused_lines_and_goes_on(capsys, tmp_path):
    path = tmp_path / "t.jsonl"
    lines = SAMPLE.read_text().splitlines()[:300]
    lines.insert(5, "not json")
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "reason", "--telemetry", path, "--specs", ROOT / "specs", "--json")
    assert code == 0 and json.loads(out) is not None
    assert f"refused: {path}:6: not JSON" in err
    code, out, _ = run(capsys, "reason", "--telemetry", path, "--specs", ROOT / "specs")
    assert "1 refused" in out and f"{path}:6: not JSON" in out


def test_reason_usage_errors(capsys, tmp_path):
    code, _, err = run(capsys, "reason", "--telemetry", tmp_path / "missing.jsonl")
    assert code == 2 and "cannot read" in err
    bad = tmp_path / "devices.json"
    bad.write_text('{"aina_devices": 1, "devices": [{"key": "h100-sxm", "hbm_bytes_per_s": -1}]}')
    code, _, err = run(capsys, "reason", "--telemetry", SAMPLE, "--devices", bad)
    assert code == 2 and "devices[0].hbm_bytes_per_s: expected a positive number" in err
    with pytest.raises(SystemExit):
        main(["reason", "--telemetry", str(SAMPLE), "--min-share", "2"])
    assert "expected a number between 0 and 1" in capsys.readouterr().err


def test_telemetry_check(capsys, tmp_path):
    code, out, _ = run(capsys, "telemetry", "check", SAMPLE)
    assert code == 0 and out.strip().endswith("4536 valid window(s), 0 invalid line(s)")
    bad = tmp_path / "bad.jsonl"
    first = json.loads(SAMPLE.read_text().splitlines()[0])
    bad.write_text(json.dumps(first) + "\n" + json.dumps(first | {"calls": "many"}) + "\n{\n")
    code, out, _ = run(capsys, "telemetry", "check", bad)
    assert code == 1
    assert f"{bad}:2: calls: expected integer, got str 'many'" in out
    assert f"{bad}:3: not JSON" in out
    assert "1 valid window(s), 2 invalid line(s)" in out
    code, _, err = run(capsys, "telemetry", "check", tmp_path / "nope.jsonl")
    assert code == 2 and "cannot read" in err


def test_telemetry_schema(capsys):
    code, out, _ = run(capsys, "telemetry", "schema")
    schema = json.loads(out)
    assert code == 0 and schema["$id"].endswith("telemetry-v1.json") and "batch" in schema["$defs"]
