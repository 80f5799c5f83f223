"""Real git repositories for the gate's tests: stand-in kernels (plain torch, fast on a CPU)
with specs, a dispatch table, a shared helper, docs and tests, and ways to make the changes
the proofs need (a bot's change with its in-toto attestation, made by the Changer's own
statement writer)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from pytest_aina.changer.change import attestation as att

ROOT = Path(__file__).resolve().parents[2]

# The shared helper: `work` does the kernels' arithmetic plus `waste` passes that reach no
# output (a stand-in for a poor tiling: a meta-parameter that changes speed, not results).
COMMON = '''"""Helpers the kernels share."""
import torch


def work(x, waste=200):
    for _ in range(waste):
        torch.tanh(x)
    return torch.tanh(x)


def bias(y):
    return y + 1.0
'''

SCALE = '''"""scale: y = 2 tanh(x), dispatched."""
import torch

from kernels.common import work
from pytest_aina.runtime.dispatch import dispatcher


def scale_generic(x, *, waste=200):
    return work(x, waste) * 2.0


def scale_dims(x):
    return {"M": x.shape[0], "N": x.shape[-1]}


_dispatch = dispatcher("scale", scale_dims, scale_generic, dims_from_first=True)


def scale(x):
    return _dispatch(x)


def scale_reference(x):
    return torch.tanh(x.float()) * 2.0
'''

SHIFT = '''"""shift: y = tanh(x) + 1."""
import torch

from kernels import common


def shift(x):
    return common.bias(common.work(x))


def shift_reference(x):
    return torch.tanh(x.float()) + 1.0
'''

TABLE = """# Dispatch table of scale
aina_dispatch: 1
kernel: scale
variants:
  - name: generic
    function: kernels.scale:scale_generic
"""


def spec(name: str, atol: str = "1.0e-6") -> str:
    return f"""aina: 1
name: {name}
implementation: kernels.{name}:{name}
reference: kernels.{name}:{name}_reference
inputs:
  x: {{shape: [M, N]}}
dims:
  M: {{min: 1, max: 4096}}
  N: {{min: 1, max: 4096}}
dtypes: [float32]
tolerance:
  float32: {{atol: {atol}, rtol: 1.0e-5}}
invariants:
  - close_to_reference
  - finite
  - shape_preserved
  - no_input_mutation
examples:
  - {{dims: {{M: 3, N: 5}}}}
  - {{dims: {{M: 16, N: 33}}}}
benchmarks:
  - {{dims: {{M: 64, N: 1024}}, dtype: float32, devices: [cpu, cuda]}}
objectives:
  latency: {{direction: minimize, weight: 1.0}}
"""


POLICY = """# the gate's settings for these tests: small batches, a budget a test can afford
gate:
  review: [high]
  coverage: 80
  noise: 0.05
  pairs: 16
  max_pairs: 96
  budget_s: 600
"""

TEST_SCALE = """from kernels.scale import scale, scale_reference
import torch


def test_scale_matches_its_reference():
    x = torch.randn(4, 8)
    assert torch.allclose(scale(x), scale_reference(x))
"""


def base_files() -> dict[str, str]:
    return {
        "README.md": "# stand-in kernels\n",
        "docs/guide.md": "# Guide\n\nHow to use the kernels.\n",
        ".github/aina.yml": POLICY,
        "kernels/__init__.py": "",
        "kernels/common.py": COMMON,
        "kernels/scale.py": SCALE,
        "kernels/shift.py": SHIFT,
        "kernels/variants/scale.yaml": TABLE,
        "specs/scale.yaml": spec("scale"),
        "specs/shift.yaml": spec("shift"),
        "tests/test_scale.py": TEST_SCALE,
        "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider"\n',
    }


class GitRepo:
    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dev@example.com")
        self.git("config", "user.name", "Dev")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    def write(self, files: dict[str, str | None]) -> None:
        for rel, text in files.items():
            p = self.path / rel
            if text is None:
                p.unlink(missing_ok=True)
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def commit(self, message: str, files: dict[str, str | None] | None = None) -> str:
        if files:
            self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def branch(self, name: str, start: str = "main") -> None:
        self.git("checkout", "-q", "-B", name, start)


def make_repo(path: Path) -> GitRepo:
    repo = GitRepo(path)
    repo.commit("stand-in kernels", base_files())
    return repo


def bot_change(
    repo: GitRepo,
    files: dict[str, str | None],
    *,
    kernel: str = "scale",
    variant: dict | None = None,
    measurements: list[dict] | None = None,
    device: dict | None = None,
    base: str | None = None,
    attestation: str = "provenance/scale/scale_c1.intoto.json",
    declare: dict | None = None,
) -> dict:
    """The files of a bot's change with its attestation (made by the Changer's statement
    writer). ``declare`` overrides what the statement declares (default: ``files``)."""
    base = base or repo.git("rev-parse", "main")
    telemetry = b'{"kernel": "scale", "calls": 1}\n'
    predicate = {
        "kernel": kernel,
        "attestation": attestation,
        "variant": variant
        or {
            "name": "scale_c1",
            "kind": "config",
            "config": {"waste": 0},
            "domain": {"dims": {"M": [64, 64]}, "dtypes": ["float32"]},
        },
        "hypothesis": {"id": "h-1234", "kind": "hot_shape", "kernel": kernel},
        "trigger": {
            "hypothesis_kind": "hot_shape",
            "telemetry": {
                "path": "telemetry/sample.jsonl",
                "sha256": hashlib.sha256(telemetry).hexdigest(),
                "bytes": len(telemetry),
            },
        },
        "device": device
        or {
            "kind": "cpu",
            "name": "cpu",
            "gpu_evidence": False,
            "note": "timings from Triton's interpreter on a CPU: not GPU evidence",
        },
        "measurements": measurements if measurements is not None else [],
        "base": {"commit": base, "dirty": False},
        "coverage": {"percent": 100.0, "tests_passed": True},
    }
    stmt = att.statement(
        files=declare if declare is not None else files, attestation_path=attestation, predicate=predicate
    )
    return dict(files, **{attestation: att.dumps(stmt)})


def config_variant_files(repo: GitRepo, config: dict) -> dict[str, str]:
    """A dispatch entry for the benchmark case's shape with ``config``, a pinned example for
    it, and a generated-style test: what the Changer writes for a config winner."""
    table = repo.read("kernels/variants/scale.yaml") + (
        "  # added by pytest-aina for hypothesis h-1234 (hot_shape)\n"
        "  - name: scale_c1\n"
        "    function: kernels.scale:scale_generic\n"
        f"    config: {json.dumps(config)}\n"
        "    domain:\n"
        "      dims: {M: [64, 64]}\n"
        "      dtypes: [float32]\n"
    )
    spec_text = repo.read("specs/scale.yaml").replace(
        "  - {dims: {M: 16, N: 33}}\n", "  - {dims: {M: 16, N: 33}}\n  - {dims: {M: 64, N: 1024}}  # hot shape\n"
    )
    test = (
        '"""Generated for hypothesis h-1234."""\nimport torch\n\nfrom kernels.scale import scale, scale_reference\n\n\n'
        "def test_hot_shape():\n    x = torch.randn(64, 1024)\n"
        "    assert torch.allclose(scale(x), scale_reference(x), atol=1e-6, rtol=1e-5)\n"
    )
    return {"kernels/variants/scale.yaml": table, "specs/scale.yaml": spec_text, "tests/evolved/test_scale_c1.py": test}


def gate(
    repo: GitRepo,
    *args: str,
    head: str = "HEAD",
    base: str = "main",
    approvals: dict | None = None,
    tmp: Path | None = None,
    env: dict | None = None,
    timeout: float = 1500,
) -> tuple[subprocess.CompletedProcess, dict]:
    """``aina gate`` in a subprocess, as CI runs it; returns (process, the JSON verdict)."""
    tmp = tmp or repo.path.parent
    out = tmp / f"verdict-{os.getpid()}.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest_aina",
        "gate",
        "--repo",
        str(repo.path),
        "--base",
        base,
        "--head",
        head,
        "--json",
        str(out),
        "--annotations",
        "github",
        *args,
    ]
    if approvals is not None:
        path = tmp / "approvals.json"
        path.write_text(json.dumps(approvals))
        cmd += ["--approvals", str(path)]
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p])
    e.pop("GITHUB_HEAD_REF", None)
    e.pop("GITHUB_ACTIONS", None)
    e.update(env or {})
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=e, timeout=timeout)
    verdict = json.loads(out.read_text()) if out.exists() else {}
    if out.exists():
        out.unlink()
    return done, verdict


def checks(verdict: dict) -> dict[str, dict]:
    return {c["name"]: c for c in verdict.get("checks", [])}


def failing(verdict: dict) -> set[str]:
    return {c["name"] for c in verdict.get("checks", []) if c["status"] == "fail"}
