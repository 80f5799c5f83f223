"""The plugin's behaviour around the checks: collection, options, skips, reports, cost."""

import json
import subprocess
import sys

import pytest


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=300)


def test_specs_are_collected_only_with_aina(spec_dir):
    spec_dir.makeini("[pytest]\ntestpaths = tests\n")
    (spec_dir.path / "tests").mkdir()
    (spec_dir.path / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    without = run(spec_dir, "--collect-only", "-q")
    assert "softmax.yaml" not in without.stdout.str()
    with_aina = run(spec_dir, "--aina", "--collect-only", "-q")
    # testpaths names only tests/, yet --aina with no paths also collects specs/
    with_aina.stdout.fnmatch_lines(
        [
            "tests/test_x.py::test_x",
            "specs/softmax.yaml::example[[]M=4,N=1000,float32[]]",
            "specs/softmax.yaml::property[[]float16[]]",
            "specs/softmax.yaml::invariant[[]no_input_mutation[]]",
        ]
    )


def test_invalid_spec_names_file_key_and_line(spec_dir):
    bad = (
        (spec_dir.path / "specs" / "softmax.yaml")
        .read_text()
        .replace("layouts: [contiguous, sliced, transposed]", "layouts: [contiguous, diagonal]")
    )
    (spec_dir.path / "specs" / "softmax.yaml").write_text(bad)
    result = run(spec_dir, "--aina")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*invalid spec:*",
            "*specs/softmax.yaml:6: inputs.x.layouts[[]1[]]: 'diagonal' is not allowed; "
            "expected one of: contiguous, sliced, transposed*",
        ]
    )


def test_gpu_benchmarks_skip_with_reason_and_cpu_benchmarks_are_labelled(spec_dir):
    report = spec_dir.path / "report.json"
    result = run(spec_dir, "--aina", "--aina-bench", "-m", "aina_bench", "-rs", "--aina-report", str(report))
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*softmax M=8,N=300,float32 (implementation)*wall clock, Triton interpreter on CPU*",
            "SKIPPED [[]2[]] specs/softmax.yaml*needs a CUDA GPU*",
        ]
    )
    doc = json.loads(report.read_text())
    assert doc["environment"]["device"]["kind"] == "cpu"
    assert doc["environment"]["packages"]["torch"].startswith("2.")
    assert {"python", "git", "platform"} <= doc["environment"].keys()
    benched = [i for i in doc["items"] if "benchmark" in i]
    assert {i["kind"] for i in benched} == {"bench", "bench-reference"}
    for item in benched:
        stats = item["benchmark"]["stats"]
        assert stats["rounds"] >= 5 and 0 < stats["min"] <= stats["median"] <= stats["max"]
        assert item["benchmark"]["extra_info"]["bytes"] == 2 * 8 * 300 * 4
        assert "not GPU evidence" in item["benchmark"]["extra_info"]["clock"]
    skipped = [i for i in doc["items"] if i["outcome"] == "skipped"]
    assert skipped and all("CUDA GPU" in i["reason"] for i in skipped)


def test_report_records_failures_with_case(spec_dir):
    report = spec_dir.path / "report.json"
    run(spec_dir, "--aina", "--aina-impl", "bugs:pad_zero", "-k", "example", "--aina-report", str(report))
    doc = json.loads(report.read_text())
    failed = [i for i in doc["items"] if i["outcome"] == "failed"]
    assert failed and failed[0]["case"]["dims"] == {"M": 4, "N": 1000}
    assert "largest error" in failed[0]["message"]
    assert doc["summary"]["failed"] == len(failed)


def test_example_beyond_the_profile_s_budget_runs_on_cpu(spec_dir):
    # 800 rows: past what profile ci lets Hypothesis draw (48 rows), and past the 16x slack
    # pinned examples once had before they were skipped. A pinned example is a boundary of
    # the spec: it runs, and a kernel wrong there fails on it. The correct kernel and a
    # broken one (pad_zero: wrong when N is not a power of two) are two specs of one run:
    # one pytest start-up and interpreter warm-up, not two.
    spec = spec_dir.path / "specs" / "softmax.yaml"
    text = spec.read_text().replace("  - {dims: {M: 4, N: 1000}}", "  - {dims: {M: 800, N: 17}, dtype: float32}")
    spec.write_text(text)
    broken = text.replace("name: softmax", "name: softmax_pad_zero").replace("bugs:good", "bugs:pad_zero")
    (spec_dir.path / "specs" / "softmax_pad_zero.yaml").write_text(broken)
    result = run(spec_dir, "--aina", "-k", "example and 800", "-v", "-rs")
    result.stdout.fnmatch_lines_random(
        [
            "specs/softmax.yaml::example[[]M=800,N=17,float32[]] PASSED*",
            "specs/softmax_pad_zero.yaml::example[[]M=800,N=17,float32[]] FAILED*",
        ]
    )
    result.assert_outcomes(passed=1, failed=1)
    assert "skipped" not in result.stdout.str().lower()


def test_bad_option_values_are_explained(spec_dir):
    result = run(spec_dir, "--aina", "--aina-profile", "fast")
    assert "unknown profile 'fast'; expected one of: ci, dev, thorough" in result.stderr.str()
    result = run(spec_dir, "--aina", "--aina-case", "M=3,N=4")
    assert "--aina-case: needs dtype=..." in result.stderr.str()


@pytest.mark.parametrize(
    "args", [["--aina", "--help"], ["--aina", "--collect-only", "-q", "specs"]], ids=["help", "collect-only"]
)
def test_heavy_modules_are_not_imported(spec_dir, args):
    code = (
        "import sys, pytest; pytest.main(%r);"
        "print('HEAVY', sorted(m for m in ('torch', 'triton', 'litellm', 'numpy') if m in sys.modules))" % args
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=spec_dir.path, capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
