"""Bad telemetry is reported line by line and skipped; it never crashes the Reasoner or
changes its figures."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_aina.reasoner import reason_about_file
from pytest_aina.telemetry.wire import encode_line

ROOT = Path(__file__).resolve().parents[2]

SQUARE = (("M", 4096), ("N", 4096))


def good_lines(synth) -> list[str]:
    bound = synth.roofline_s("softmax", SQUARE)
    ws = synth.hours(kernel="softmax", dims=SQUARE, mean_s=5 * bound)
    ws += [
        synth.window(kernel="rms_norm", dims=(("M", 16), ("N", 4096)), mean_s=8e-6, calls=50_000, hour=h)
        for h in range(12, 24)
    ]
    return [encode_line(w) for w in ws]


def bad_lines(synth) -> dict[str, str]:
    """Each kind of bad window, and the words its issue must contain."""
    base = json.loads(good_lines(synth)[0])

    def v(**kw):
        return json.dumps(base | kw)

    bound = synth.roofline_s("softmax", SQUARE)
    return {
        '{"aina_telemetry": 1, "kernel": ': "not JSON",
        v(kernel="paged_decode"): "'paged_decode' has no spec",
        v(dims={"M": 4096, "K": 4096}): "are not softmax's dims",
        v(dtype="float64"): "is not a dtype of softmax",
        v(calls=-5): "below the minimum 1",
        # 10x faster than moving the bytes at the HBM peak: the timing is not kernel time
        v(
            start="2025-06-02T00:30:00Z",
            end="2025-06-02T01:30:00Z",  # not a duplicate of line 1
            time_s=bound / 10 * base["calls"],
            latency_s={"min": bound / 20, "p50": bound / 10, "p90": bound / 10, "p99": bound / 10, "max": bound / 5},
        ): "below the roofline",
        good_lines(synth)[3]: "duplicate of",
        v(latency_s={"min": 1, "p50": 2, "p90": 1, "p99": 3, "max": 4}): "must not decrease",
    }


def test_bad_windows_are_reported_by_line_and_change_nothing(synth, tmp_path):
    good = good_lines(synth)
    bad = bad_lines(synth)
    lines, expected = [], {}
    for i, text in enumerate(good):
        lines.append(text)
        if i % 4 == 1 and bad:
            text_bad, words = bad.popitem()
            lines.append(text_bad)
            expected[len(lines)] = words
    assert not bad, "every kind of bad line is in the file"
    path = tmp_path / "day.jsonl"
    path.write_text("\n".join(lines) + "\n")
    dirty = reason_about_file(path, specs=synth.ROOT / "specs", variants=synth.ROOT / "kernels" / "variants")

    by_line = {}
    for issue in dirty.issues:
        by_line.setdefault(issue.line, []).append(str(issue))
    assert set(by_line) == set(expected)
    for line, words in expected.items():
        assert any(s.startswith(f"{path}:{line}: ") and words in s for s in by_line[line]), by_line[line]
    assert dirty.windows_read == len(lines)

    # the same file without its bad lines (blank lines keep the numbering): the same answer
    path.write_text("\n".join("" if n in expected else t for n, t in enumerate(lines, 1)) + "\n")
    clean = reason_about_file(path, specs=synth.ROOT / "specs", variants=synth.ROOT / "kernels" / "variants")
    assert clean.issues == []
    assert dirty.as_json() == clean.as_json() and len(clean.hypotheses) >= 2
    assert dirty.profile.total_time_s == clean.profile.total_time_s


def test_nothing_usable_is_not_a_crash(synth, tmp_path):
    path = tmp_path / "junk.jsonl"
    path.write_text("garbage\n[]\n{}\n")
    report = reason_about_file(path, specs=synth.ROOT / "specs")
    assert report.hypotheses == [] and report.profile.windows == 0 and len({i.line for i in report.issues}) == 3


def test_missing_specs_and_broken_tables_are_notes(synth, tmp_path):
    path = tmp_path / "day.jsonl"
    path.write_text("\n".join(good_lines(synth)) + "\n")
    (tmp_path / "variants").mkdir()
    (tmp_path / "variants" / "softmax.yaml").write_text("aina_dispatch: 1\nkernel: softmax\nvariants: []\n")
    report = reason_about_file(path, specs=tmp_path / "nospecs", variants=tmp_path / "variants")
    assert any("no such folder" in n for n in report.notes)
    assert report.hypotheses == [] and all("has no spec" in i.message for i in report.issues)
    assert any("softmax.yaml" in n and "non-empty list" in n for n in report.notes)


def test_a_repositorys_own_dispatch_module_never_runs(synth, tmp_path):
    # tables are data: the App reads repositories it is installed on, and must run none of
    # their code while it holds its private key
    path = tmp_path / "day.jsonl"
    path.write_text("\n".join(good_lines(synth)) + "\n")
    (tmp_path / "kernels" / "variants").mkdir(parents=True)
    (tmp_path / "kernels" / "dispatch.py").write_text(
        f"open({str(tmp_path / 'RAN')!r}, 'w').write('x')\nraise SystemExit('repository code ran')\n"
    )
    (tmp_path / "kernels" / "variants" / "softmax.yaml").write_text(
        (ROOT / "kernels" / "variants" / "softmax.yaml").read_text()
    )
    report = reason_about_file(path, specs=ROOT / "specs", variants=tmp_path / "kernels" / "variants")
    assert not (tmp_path / "RAN").exists()
    assert not any("dispatch" in n for n in report.notes), report.notes
