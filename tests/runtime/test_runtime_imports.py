"""What a production process pays to import the runtime, checked in a fresh interpreter: no
test tool, no heavy package, nothing of pytest-aina beyond the runtime and the telemetry format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"pytest", "_pytest", "hypothesis", "jsonschema", "torch", "triton"}
PRODUCTION = ("pytest_aina.runtime", "pytest_aina.telemetry")


def imported_by(statement: str) -> list[str]:
    """The modules that ``statement`` adds to ``sys.modules`` in a fresh interpreter."""
    code = (
        "import json, sys\nbefore = set(sys.modules)\n"
        + statement
        + "\nprint(json.dumps(sorted(set(sys.modules) - before)))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def ours(modules: list[str]) -> list[str]:
    """pytest-aina's modules outside what production may import."""
    return [m for m in modules if m.startswith("pytest_aina.") and not m.startswith(PRODUCTION)]


def test_importing_the_runtime_imports_no_test_tool_and_no_torch():
    new = imported_by(
        "import pytest_aina.runtime\nfrom pytest_aina.runtime.dispatch import add_variant, load_table, validate_table"
    )
    assert {"pytest_aina.runtime.recorder", "pytest_aina.runtime.dispatch.routing"} <= set(new)  # it did import
    assert sorted(m for m in new if m.split(".")[0] in HEAVY) == []
    assert ours(new) == []


def test_the_kernels_import_nothing_of_pytest_aina_but_the_runtime():
    new = imported_by("import kernels.softmax, kernels.rms_norm, kernels.layer_norm")
    assert "kernels.softmax" in new and "pytest_aina.runtime" in new
    assert ours(new) == []
    assert sorted(m for m in new if m.split(".")[0] in HEAVY - {"torch", "triton"}) == []
