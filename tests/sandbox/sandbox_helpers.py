"""Helpers shared by the sandbox tests (a module with a unique name, not conftest, so that
importing it can never pick up another folder's conftest)."""

from __future__ import annotations

import os

import pytest


def need(caps, *layers: str) -> None:
    """Skip, saying why, where this machine lacks a layer a test is about."""
    have = {
        "pid": "pid" in caps.namespaces,
        "net": "net" in caps.namespaces,
        "landlock": caps.landlock_abi > 0,
        "landlock_net": caps.landlock_abi >= 4,
        "root": caps.root,
    }
    for layer in layers:
        if not have[layer]:
            pytest.skip(f"this machine lacks the {layer} layer ({'; '.join(caps.notes) or 'see probe()'})")


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (any namespace, any uid)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{d}/status") as f:
                zombie = any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
        except OSError:
            continue
        if marker.encode() in cmd and not zombie:
            found.append(int(d))
    return found
