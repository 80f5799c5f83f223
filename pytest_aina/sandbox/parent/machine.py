"""What isolation this machine allows, found out once per process by trying it."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass

from pytest_aina.sandbox.child import landlock


@dataclass(frozen=True)
class Capabilities:
    system: str
    root: bool
    unshare: tuple[str, ...] | None  # the command prefix that worked, or None
    namespaces: tuple[str, ...]  # of "pid", "mount", "net", "ipc", "user"
    landlock_abi: int
    notes: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "system": self.system,
            "root": self.root,
            "unshare": list(self.unshare or ()),
            "namespaces": list(self.namespaces),
            "landlock_abi": self.landlock_abi,
            "notes": list(self.notes),
        }


_FULL = ("--fork", "--kill-child", "--pid", "--mount", "--mount-proc", "--net", "--ipc", "--propagation", "private")


@functools.lru_cache(maxsize=1)
def probe() -> Capabilities:
    system = platform.system()
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    notes: list[str] = []
    if system != "Linux":
        return Capabilities(
            system, root, None, (), 0, (f"{system}: only the in-process audit hook and resource limits are available",)
        )
    abi = landlock.abi_version()
    if abi == 0:
        notes.append("Landlock unavailable (kernel < 5.13 or not enabled in the LSM list)")
    exe = shutil.which("unshare")
    attempts = []
    if exe:
        if root:
            attempts.append(((exe, *_FULL), ("pid", "mount", "net", "ipc")))
        # without root, a user namespace gives the rights the other namespaces need
        attempts.append(((exe, "--map-root-user", *_FULL), ("user", "pid", "mount", "net", "ipc")))
        attempts.append(((exe, "--map-root-user", "--net"), ("user", "net")))
    else:
        notes.append("no 'unshare' program (util-linux): no namespaces")
    for prefix, spaces in attempts:
        try:
            r = subprocess.run(
                [*prefix, "true"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            notes.append(f"{' '.join(prefix[1:])}: {e}")
            continue
        if r.returncode == 0:
            return Capabilities(system, root, prefix, spaces, abi, tuple(notes))
        notes.append(f"unshare {' '.join(prefix[1:])}: {r.stderr.decode(errors='replace').strip()[:200]}")
    return Capabilities(system, root, None, (), abi, tuple(notes))
