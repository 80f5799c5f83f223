"""``phase: backward`` benchmark cases time the gradients alone and check them after every
round against the reference's autograd, so a backward that is fast because it is wrong
fails the benchmark, not only the checks (torch kernels on a CPU: fast)."""

import shutil
from pathlib import Path

import format_specs as S
import pytest

from pytest_aina.spec.model import parse_spec
from pytest_aina.spec.reader import SpecError

HERE = Path(__file__).parent
BENCH = """\
benchmarks:
  - {dims: {M: 8, N: 64}, dtype: float32, devices: [cpu]}
  - {dims: {M: 8, N: 64}, dtype: float32, devices: [cpu], phase: backward}
"""


@pytest.fixture
def project(pytester):
    shutil.copy(HERE / "format_kernels.py", pytester.path / "format_kernels.py")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "kernel.yaml").write_text(S.LAYER_NORM + BENCH)
    pytester.syspathinsert()
    return pytester


def bench(project, impl: str | None = None):
    extra = ["--aina-impl", f"format_kernels:{impl}"] if impl else []
    # in process: torch kernels, nothing a crash could take down with it
    return project.runpytest(
        "--aina", "--aina-bench", "--no-aina-isolate", "-m", "aina_bench", "-p", "no:cacheprovider", *extra
    )


def test_forward_and_backward_are_timed_as_two_cases(project):
    result = bench(project)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    result.assert_outcomes(passed=4)  # each phase for the implementation and the reference
    assert "M=8,N=64,float32,phase=backward" in out and "bench[M=8,N=64,float32]" in out


def test_a_wrong_backward_fails_its_benchmark(project):
    # LNIgnoresUpstream: the forward is right, the gradients ignore the upstream gradient
    result = bench(project, "LNIgnoresUpstream")
    out = result.stdout.str()
    result.assert_outcomes(passed=3, failed=1)
    assert "benchmark gradient of x check (implementation) failed" in out, out


def test_phase_backward_needs_gradients():
    text = S.SOFTMAX + "benchmarks:\n  - {dims: {M: 8, N: 64}, dtype: float32, phase: backward}\n"
    with pytest.raises(SpecError, match="phase backward needs gradients"):
        parse_spec(text, "softmax.yaml")
    with pytest.raises(SpecError):
        parse_spec(text.replace("phase: backward", "phase: both"), "softmax.yaml")
