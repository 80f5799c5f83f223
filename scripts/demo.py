#!/usr/bin/env python3
"""The main job on a fresh machine: the evolution loop, end to end, on the embedded defaults.

1. ``aina reason`` over the committed sample telemetry (a day of an LLM-serving fleet).
2. ``aina evolve`` on it, in a scratch copy of this repository whose launcher heuristic is
   deliberately untuned (row blocks of at most 256 columns, one row per program).

Why a scratch copy with an untuned launcher: on a CPU the kernels run in Triton's
interpreter, and the real launcher's heuristic is already the best configuration for the
interpreter, so the search would (rightly) find nothing to change and the demonstration
would stop before the change. Untuning it in a copy gives the loop something real to find
while your repository and its branches stay untouched. On your own kernels, run
``aina evolve --telemetry FILE`` in the repository itself; on a GPU the timings are GPU
evidence, here they are interpreter wall-clock figures and the PR says so.

    python3 dev.py demo [--budget-evals N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "telemetry/sample-fleet-day.jsonl"

UNTUNE = """

# --- deliberately untuned (scripts/demo.py): gives the evolution loop something to find --
_tuned_default_config = default_config


def default_config(rows, element_size, **kwargs):
    cfg = _tuned_default_config(rows, element_size, **kwargs)
    return cfg | {"BLOCK_N": min(cfg["BLOCK_N"], 256)}
"""
# Only the row block is capped (wide rows take the looped path, 256 at a time). Rows per
# program stay as tuned: one row per program multiplies the interpreter's programs, and the
# spec checks of such a baseline outran the sandbox's checks limit (240 s), so nothing
# could be compared with it.


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=aina-demo", "-c", "user.email=aina@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_scratch_repo(dest: Path) -> Path:
    """A git repository at ``dest`` with this project's kernels, specs and sample
    telemetry, its launcher heuristic untuned, readable by the sandbox's own user."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("kernels", "specs"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "evolved"))
    (dest / "telemetry").mkdir(exist_ok=True)
    shutil.copy(ROOT / SAMPLE, dest / SAMPLE)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    # what any repository keeps out of git (bytecode caches, .aina/, .hypothesis/): the loop
    # imports the kernels from the working tree, and a clean tree is part of what it promises
    shutil.copy(ROOT / ".gitignore", dest / ".gitignore")
    with open(dest / "kernels" / "rowwise.py", "a") as fh:
        fh.write(UNTUNE)
    for p in [dest, *dest.parents][:-1]:
        if p.stat().st_mode & 0o005 != 0o005 and str(p).startswith(tempfile.gettempdir()):
            os.chmod(p, p.stat().st_mode | 0o755)  # the sandbox runs candidates as another user
    for dirpath, _, files in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-qm", "Demo fleet: kernels, specs and a day of telemetry (launcher deliberately untuned)")
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-evals", type=int, default=6)
    ap.add_argument("--keep", metavar="DIR", help="build the scratch repository here and keep it (default: a temp dir)")
    args, rest = ap.parse_known_args()
    aina = [sys.executable, "-m", "pytest_aina.cli"]
    print("== 1. aina reason: what is worth improving in this fleet? ==", flush=True)
    code = subprocess.call(aina + ["reason", "--telemetry", SAMPLE], cwd=ROOT)
    if code != 0:
        return code
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="aina-demo-"))
    repo = make_scratch_repo(base / "fleet")
    print(f"\n== 2. aina evolve, in a scratch copy with a deliberately untuned launcher: {repo} ==", flush=True)
    env = dict(os.environ, PYTHONPATH=str(repo))
    code = subprocess.call(
        aina + ["evolve", "--telemetry", SAMPLE, "--repo", str(repo), "--budget-evals", str(args.budget_evals), *rest],
        cwd=repo,
        env=env,
    )
    if code == 0:
        branches = _git(repo, "branch", "--list", "aina/*")
        print(
            f"\nThe local forge, {repo}:\n{branches}\n"
            f"  git -C {repo} log --stat -1 {branches.split()[-1] if branches else 'main'}"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
