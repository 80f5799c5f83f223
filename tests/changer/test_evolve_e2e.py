"""The loop end to end on a CPU: from the committed sample telemetry to a branch on the
local forge, whose spec tests then pass.

The repository is a copy of this one whose launcher heuristic is deliberately untuned
(row blocks of 256 columns, one row per program), so that a better configuration exists
for certain and the whole path, change included, is exercised."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNTUNE = '''

# --- deliberately untuned, for the end-to-end test of the evolution loop ---------------
_tuned_default_config = default_config


def default_config(rows, element_size, *, interpreted, looped_block=4096):
    cfg = _tuned_default_config(rows, element_size, interpreted=interpreted, looped_block=looped_block)
    return cfg | {"BLOCK_N": min(cfg["BLOCK_N"], 256), "ROWS_PER_PROGRAM": 1}
'''


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    repo = tmp_path_factory.mktemp("fleet") / "repo"
    repo.mkdir()
    os.chmod(repo.parent, 0o755)   # the sandbox's own uid reads the kernels from here
    for name in ("kernels", "specs"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "evolved"))
    (repo / "telemetry").mkdir()
    shutil.copy(REPO / "telemetry" / "sample-fleet-day.jsonl", repo / "telemetry")
    shutil.copy(REPO / "pyproject.toml", repo)
    with open(repo / "kernels" / "rowwise.py", "a") as fh:
        fh.write(UNTUNE)
    for dirpath, dirs, files in os.walk(repo):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fleet")
    head = git(repo, "rev-parse", "HEAD")
    env = dict(os.environ, PYTHONPATH=str(repo))
    out = subprocess.run([sys.executable, "-m", "pytest_aina.cli", "evolve", "--telemetry",
                          "telemetry/sample-fleet-day.jsonl", "--repo", str(repo), "--budget-evals", "4",
                          "--seed", "0", "--json"], cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-4000:]
    return repo, head, json.loads(out.stdout), out.stderr


def test_the_loop_opens_a_branch_with_one_commit(evolved):
    repo, head, result, log = evolved
    branch = result["branch"]
    assert branch.startswith("aina/rms_norm-"), log[-3000:]
    assert git(repo, "rev-parse", f"{branch}~1") == head                    # exactly one commit on top
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""
    files = git(repo, "diff", "--name-only", head, branch).splitlines()
    assert "kernels/variants/rms_norm.yaml" in files and "specs/rms_norm.yaml" in files
    assert any(f.startswith("tests/evolved/test_") for f in files)
    assert any(f.startswith("provenance/rms_norm/") and f.endswith(".intoto.json") for f in files)
    body = Path(result["body_path"]).read_text()
    assert "not GPU evidence" in body


def test_the_spec_tests_pass_on_the_branch(evolved, tmp_path):
    repo, _, result, _ = evolved
    tree = tmp_path / "branch"
    git(repo, "worktree", "add", "-q", str(tree), result["branch"])
    env = dict(os.environ, PYTHONPATH=str(tree), TRITON_INTERPRET="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "--aina", "specs/rms_norm.yaml", "tests/evolved", "-q",
                          "-p", "no:cacheprovider"], cwd=tree, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout.splitlines()[-1]
