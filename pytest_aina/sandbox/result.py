"""Limits going in, results coming out, and the names of every way a run can end."""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field
from typing import Any

# Statuses, each paired with a reason string that says what exactly happened.
OK = "ok"
TIMEOUT = "timeout"
MEMORY = "memory limit"
CPU = "cpu limit"
FILE_SIZE = "file size limit"
SIGNAL = "crash by signal"
SYNTAX = "syntax error"
IMPORT = "import error"
EXCEPTION = "exception"
EXIT_CODE = "exit code"
FORK_BOMB = "fork bomb"
LEFTOVER = "leftover processes"
WRITE_OUTSIDE = "write outside sandbox"
NETWORK = "network attempt"
NO_RESULT = "no result"
PROTOCOL = "protocol error"
SANDBOX_ERROR = "sandbox error"
# the timing protocol adds
WRONG = "wrong answer"
STALE = "stale result"
PARTIAL = "partial result"
ALIASED = "aliased output"
MUTATED = "input mutated"
TAMPERED_CLOCK = "tampered clock"
MEASUREMENT = "measurement error"
DEFERRED = "deferred work"


@dataclass(frozen=True)
class Limits:
    """Per run. ``cpu_s`` None: twice the wall limit (threads may use several cores);
    ``memory_bytes`` applies to each process (RLIMIT_DATA) and to the sum of the sandbox's
    resident memory (watched by the parent); ``max_processes`` counts processes, the
    kernel's RLIMIT_NPROC (which also counts threads) is set to ``max_tasks``."""

    wall_s: float = 60.0
    memory_bytes: int = 4 << 30
    cpu_s: float | None = None
    file_bytes: int = 256 << 20
    max_processes: int = 32
    max_tasks: int = 512
    open_files: int = 1024

    def __post_init__(self):
        for name in ("wall_s", "memory_bytes", "file_bytes", "max_processes", "max_tasks", "open_files"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {v!r}")
        if self.cpu_s is not None and self.cpu_s <= 0:
            raise ValueError(f"Limits.cpu_s must be positive, got {self.cpu_s!r}")

    def rlimits(self) -> dict[str, int]:
        cpu = self.cpu_s if self.cpu_s is not None else 2 * self.wall_s + 1
        return {"data": int(self.memory_bytes), "cpu": max(1, int(cpu + 0.999)), "fsize": int(self.file_bytes),
                "core": 0, "nproc": int(self.max_tasks), "nofile": int(self.open_files)}


@dataclass(frozen=True)
class Isolation:
    """Which layers to use when the machine allows them. ``require`` names layers that must
    be in force (``"pid_namespace"``, ``"net_namespace"``, ``"uid"``, ``"landlock"``,
    ``"audit_hook"``): the run fails with a "sandbox error" instead of running weaker."""

    namespaces: bool = True
    drop_uid: bool = True
    landlock: bool = True
    restrict_reads: bool = True
    audit_hook: bool = True
    require: tuple[str, ...] = ()


@dataclass
class Exit:
    code: int | None = None  # exit status, or None
    signal: str | None = None  # e.g. "SIGSEGV"
    killed_by_sandbox: str | None = None  # why the parent killed it


@dataclass
class SandboxResult:
    status: str
    reason: str
    value: Any = None
    exit: Exit = field(default_factory=Exit)
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""
    violations: list[dict] = field(default_factory=list)
    leftover: int = 0
    cleanup: str = ""
    protections: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict:
        return asdict(self)


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"
