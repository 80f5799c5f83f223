"""The sandbox every candidate kernel runs in: a fresh process per run with a wall-clock
limit, a memory limit, no credentials, no network, a folder of its own and no process
left behind; plus the parent-side timing protocol for benchmarks.

    from pytest_aina.sandbox import run, time_calls, Limits
    r = run("candidates/cand_7.py:softmax", args=[...], limits=Limits(wall_s=30))
    r.status, r.reason, r.value, r.protections

See docs/sandbox.md for what is enforced, how, and what is not. The names below are
loaded on first use, so that the child's bootstrap (which imports this package) stays
small.
"""

from __future__ import annotations

import importlib

__all__ = ["run", "time_calls", "Limits", "Isolation", "SandboxResult", "TimingResult", "SandboxError",
           "probe"]

_WHERE = {
    "run": "pytest_aina.sandbox.parent.oneshot",
    "time_calls": "pytest_aina.sandbox.parent.timing",
    "TimingResult": "pytest_aina.sandbox.parent.timing",
    "Limits": "pytest_aina.sandbox.result",
    "Isolation": "pytest_aina.sandbox.result",
    "SandboxResult": "pytest_aina.sandbox.result",
    "SandboxError": "pytest_aina.sandbox.parent.launch",
    "probe": "pytest_aina.sandbox.parent.machine",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pytest_aina.sandbox' has no attribute {name!r}")
