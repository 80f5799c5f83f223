"""What a result was measured on: device, driver, software versions, commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _run(*cmd: str, cwd: str | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(cwd: str | None = None) -> dict:
    commit = _run("git", "rev-parse", "HEAD", cwd=cwd)
    dirty = _run("git", "status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {"commit": commit, "dirty": bool(dirty) if commit else None}


def collect(*, with_torch: bool = True, cwd: str | None = None) -> dict:
    """The environment as a JSON-able dict. ``with_torch`` imports torch to ask for the GPU."""
    env = {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": {
            d: _version(d)
            for d in ("pytest-aina", "torch", "triton", "pytest", "hypothesis", "pytest-benchmark", "numpy")
        },
        "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
        "git": git_commit(cwd),
    }
    if with_torch:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            env["device"] = {
                "kind": "cuda",
                "name": torch.cuda.get_device_name(0),
                "capability": f"sm_{props.major}{props.minor}",
                "memory_bytes": props.total_memory,
                "cuda": torch.version.cuda,
                "driver": _run("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"),
            }
        else:
            env["device"] = {
                "kind": "cpu",
                "name": platform.processor() or platform.machine(),
                "note": "no GPU: kernels ran in Triton's interpreter; timings are not GPU evidence",
            }
    return env
