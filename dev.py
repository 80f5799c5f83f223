#!/usr/bin/env python3
"""Set up and run pytest-aina on a fresh machine that has nothing but Python 3.11+.

    python3 dev.py demo    # the main job: the evolution loop on the committed sample telemetry
    python3 dev.py test    # the whole test suite (after the lint: layers, ruff), on every core
    python3 dev.py lint    # the lint alone

Both create ``.venv`` on first use and install what the project declares: torch pinned to
the CPU build first (an unpinned torch would pull gigabytes of CUDA packages), then the
project with its test extras. The install is skipped while pyproject.toml is unchanged.
Extra arguments after the command go to the tool it runs (pytest or aina).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
TORCH = "torch==2.13.0"  # the CPU build; CI and this machine install it from a local file or the CPU index
STAMP = VENV / ".aina-installed"


def sh(*cmd: str | os.PathLike, **kw) -> int:
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"pytest-aina needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want and PY.exists():
        return
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    steps = [
        (PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip"),
        (PY, "-m", "pip", "install", "--quiet", TORCH),
        (PY, "-m", "pip", "install", "--quiet", "-e", ".[test]"),
    ]
    for step in steps:
        if sh(*step) != 0:
            sys.exit(f"set-up failed at: {' '.join(map(str, step))}")
    STAMP.write_text(want)


def env() -> dict:
    e = dict(os.environ)
    # keep Triton's cache inside the checkout (litellm's offline settings are the LLM
    # proposer's own business: pytest_aina/changer/proposers/llm.py sets them before importing it)
    e.setdefault("TRITON_CACHE_DIR", str(ROOT / ".aina" / "triton-cache"))
    # the suite starts hundreds of Python processes (pytester sessions, sandboxed stages, the
    # App's workers): without bytecode caches each one compiles the package and pytest
    # rewrites its asserts again (~2.4 s of CPU each), so an environment's
    # PYTHONDONTWRITEBYTECODE is not passed on (the caches are ignored by git)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    return e


def demo(args: list[str]) -> int:
    # the evolution loop on the committed sample telemetry: reason, search (sandboxed,
    # meta-parameters only: no LLM key needed), and a branch aina/... on the local forge
    # of a scratch copy (scripts/demo.py says why a copy)
    return sh(PY, "scripts/demo.py", *args, env=env())


def lint(args: list[str]) -> int:
    # the habits that keep the house in order: the layers (import-linter's contracts in
    # pyproject.toml, docs/architecture.md), then ruff's lint and format check
    for step in (
        (BIN / "lint-imports", "--no-cache"),
        (BIN / "ruff", "check", "--no-cache", "."),
        (BIN / "ruff", "format", "--no-cache", "--check", "."),
    ):
        if (rc := sh(*step)) != 0:
            print(f"lint failed at: {' '.join(map(str, step))}", file=sys.stderr)
            return rc
    return 0


def test(args: list[str]) -> int:
    # lint first (seconds), then the project's own tests and, with --aina, the spec tests
    # of the kernels in specs/
    if (rc := lint([])) != 0:
        return rc
    return sh(PY, "-m", "pytest", "--aina", *parallel(args), *args, env=env())


def parallel(args: list[str]) -> list[str]:
    """pytest-xdist's options for the whole suite: a worker per core (up to 4), each file
    whole on one worker (module fixtures such as an evolution run are built once), files in
    collection order (tests/conftest.py puts the slow modules first). Left out when the
    arguments choose for themselves (-n, -p no:xdist) or name what to run: a single file
    or test is quicker without starting workers."""
    if any(a == "-n" or a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in args):
        return []
    if any(not a.startswith("-") and ("/" in a or a.endswith(".py") or "::" in a) for a in args):
        return []
    return ["-n", "auto", "--maxprocesses", "4", "--dist", "loadfile", "--no-loadscope-reorder"]


COMMANDS = {"demo": demo, "test": test, "lint": lint}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    setup()
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
