"""The sandbox every candidate kernel runs in: a fresh process per run with a wall-clock
limit, a memory limit, no credentials, no network, a folder of its own and no process
left behind; plus the parent-side timing protocol for benchmarks.

    from pytest_aina.sandbox import run, time_calls, Limits
    r = run("candidates/cand_7.py:softmax", args=[...], limits=Limits(wall_s=30))
    r.status, r.reason, r.value, r.protections
    t = time_calls("cand_7.py:softmax", make_inputs="h.py:make_inputs", reference="h.py:reference",
                   check="h.py:check", params={...}, calls=20, seed=0)
    t.status, t.reason, t.times_s, t.median_s, t.floor, t.calls

The names below are the public face; everything else is the sandbox's own. Layout:
``parent/`` runs in the caller's process (launch, watchdog, timing), ``child/`` inside the
sandbox (boot, confinement, the serving loop), and the modules here (frames, messages,
result, redact) are what both sides share. ``child`` never imports ``parent``.

The names are loaded on first use: the child's bootstrap imports this package (for the
shared modules) and must not load the parent's modules with it. See docs/sandbox.md for
what is enforced, how, and what is not.
"""

from __future__ import annotations

import importlib

__all__ = [
    "run",
    "time_calls",
    "Limits",
    "Isolation",
    "SandboxResult",
    "TimingResult",
    "Call",
    "SandboxError",
    "EnvError",
    "probe",
    "Template",
]

_WHERE = {
    "run": "pytest_aina.sandbox.parent.oneshot",
    "time_calls": "pytest_aina.sandbox.parent.timing",
    "Limits": "pytest_aina.sandbox.result",
    "Isolation": "pytest_aina.sandbox.result",
    "SandboxResult": "pytest_aina.sandbox.result",
    "TimingResult": "pytest_aina.sandbox.result",
    "Call": "pytest_aina.sandbox.result",
    "SandboxError": "pytest_aina.sandbox.parent.launch",
    "EnvError": "pytest_aina.sandbox.parent.childenv",
    "probe": "pytest_aina.sandbox.parent.machine",
    "Template": "pytest_aina.sandbox.parent.warm",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pytest_aina.sandbox' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
