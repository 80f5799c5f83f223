"""``aina eval`` as a kernel author runs it: each step announced as it starts, the candidate
timed beside the implementation it would replace, and a plain copy of a repository kernel
evaluated like any other candidate."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def aina_eval(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pytest_aina.cli", "eval", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def progress_lines(stderr: str) -> list[str]:
    return [line.split("] ", 1)[1] for line in stderr.splitlines() if line.startswith("[") and "s] " in line]


def test_each_step_is_announced_on_stderr_and_json_stays_on_stdout(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def not_softmax(x):\n    return x\n")
    done = aina_eval("specs/softmax.yaml", str(wrong), "--json")
    assert done.returncode == 1, done.stderr
    verdict = json.loads(done.stdout)  # nothing but the verdict on stdout
    assert verdict["failed_stage"] == "import" and verdict["reason"] == "missing function"
    steps = progress_lines(done.stderr)
    assert steps[0] == "import: compiling the candidate's source"
    assert steps[1].startswith("examples, properties: pytest --aina on softmax.yaml in the sandbox (profile ci)")
    assert not any(s.startswith("benchmarks") for s in steps)  # it stopped at its failure


@pytest.mark.slow  # the spec's checks in Triton's interpreter: 1-3 minutes on 2 cores, with the load
def test_a_plain_copy_of_a_repository_kernel_passes_and_is_timed_beside_it(tmp_path):
    copy = tmp_path / "x.py"
    shutil.copy(REPO / "kernels" / "softmax.py", copy)
    done = aina_eval("specs/softmax.yaml", str(copy), "--calls", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DispatchTableError" not in done.stdout + done.stderr
    steps = progress_lines(done.stderr)
    benches = [s for s in steps if s.startswith("benchmarks 1/1 ")]
    assert [b.split(": ", 1)[1] for b in benches] == [
        "the candidate, 3 calls",
        "the spec's reference",
        "the current implementation kernels.softmax:softmax",
    ]
    case = next(line for line in done.stdout.splitlines() if line.startswith("  M="))
    assert "candidate " in case and ", current " in case and ", reference " in case
    assert "over the current kernels.softmax:softmax, " in done.stdout.splitlines()[-1]
