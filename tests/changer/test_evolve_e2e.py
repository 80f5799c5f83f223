"""The loop end to end on a CPU: from the committed sample telemetry to a branch on the
local forge, whose spec tests then pass.

The repository is a copy of this one whose launcher heuristic is deliberately untuned
(row blocks of 256 columns, one row per program), so that a better configuration exists
for certain and the whole path, change included, is exercised."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# minutes on a 2-core machine: `-m "not slow"` leaves the module out of a quick run
pytestmark = pytest.mark.slow


def _demo():
    """scripts/demo.py: the README's main job builds its scratch repository the same way."""
    spec = importlib.util.spec_from_file_location("aina_demo", REPO / "scripts" / "demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    repo = _demo().make_scratch_repo(tmp_path_factory.mktemp("fleet") / "repo")
    head = git(repo, "rev-parse", "HEAD")
    env = dict(os.environ, PYTHONPATH=str(repo))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_aina.cli",
            "evolve",
            "--telemetry",
            "telemetry/sample-fleet-day.jsonl",
            "--repo",
            str(repo),
            "--budget-evals",
            "4",
            "--seed",
            "0",
            "--json",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return repo, head, json.loads(out.stdout), out.stderr


def _no_branch(result: dict, log: str) -> str:
    """What the search found when it wrote no change: every attempt's verdict and figures,
    and the side-by-side timing the decision was made on."""
    record = result.get("record") or {}
    lines = [log[-3000:]]
    for a in record.get("attempts") or []:
        v = a["verdict"]
        samples = [[round(x * 1e3, 1) for x in t.get("samples_s") or []] for t in v.get("timings") or []]
        lines.append(f"{a['candidate'].get('config')}: passed={v['passed']} {v.get('reason')} ms={samples}")
    lines.append(json.dumps(record.get("side_by_side"), default=str)[:4000])
    return "\n".join(lines)


def test_the_loop_opens_a_branch_with_one_commit(evolved):
    repo, head, result, log = evolved
    assert "branch" in result, _no_branch(result, log)
    branch = result["branch"]
    assert branch.startswith("aina/rms_norm-"), log[-3000:]
    assert git(repo, "rev-parse", f"{branch}~1") == head  # exactly one commit on top
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""
    files = git(repo, "diff", "--name-only", head, branch).splitlines()
    assert "kernels/variants/rms_norm.yaml" in files and "specs/rms_norm.yaml" in files
    assert any(f.startswith("tests/evolved/test_") for f in files)
    assert any(f.startswith("provenance/rms_norm/") and f.endswith(".intoto.json") for f in files)
    body = Path(result["body_path"]).read_text()
    assert "not GPU evidence" in body
    # decided on the baseline and the best candidates timed again side by side, and the body says so
    assert "The winner was decided on a second timing" in body and "side by side" in log


def test_the_spec_tests_pass_on_the_branch(evolved, tmp_path):
    repo, _, result, log = evolved
    assert "branch" in result, _no_branch(result, log)
    tree = tmp_path / "branch"
    git(repo, "worktree", "add", "-q", str(tree), result["branch"])
    env = dict(os.environ, PYTHONPATH=str(tree), TRITON_INTERPRET="1")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--aina",
            "specs/rms_norm.yaml",
            "tests/evolved",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout.splitlines()[-1]
