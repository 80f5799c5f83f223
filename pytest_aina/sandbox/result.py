"""Limits going in, results coming out, and the names of every way a run can end.

Shared by both sides: the child reports statuses by these names, the parent returns
:class:`SandboxResult` (from ``run``) and :class:`TimingResult` (from ``time_calls``).
"""

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
        return {
            "data": int(self.memory_bytes),
            "cpu": max(1, int(cpu + 0.999)),
            "fsize": int(self.file_bytes),
            "core": 0,
            "nproc": int(self.max_tasks),
            "nofile": int(self.open_files),
        }


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
    phases: dict = field(default_factory=dict)  # seconds per phase of the run (Child.phases)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Call:
    """One call of a ``time_calls`` session (warm-up or timed)."""

    index: int
    seed: int
    warmup: bool
    parent_s: float  # go -> done, on the parent's clock: the figure that counts
    child_s: float  # the call on a clock the child captured before the candidate loaded
    live_s: float  # the call on the child's time.perf_counter as the candidate left it
    problem: str | None = None
    cycle_s: float = 0.0  # the whole round: inputs, call, output back, the parent's checks
    offcall_cpu_s: float | None = None  # CPU of other threads/processes from its return to the next call
    # CPU of every thread and process of the sandbox from go to done, from the kernel's
    # clocks read by the parent (None: not readable here); see TimingResult.cpu_times_s
    cpu_s: float | None = None


@dataclass
class TimingResult:
    """What ``time_calls`` returns: the verdict, the timed figures, and the sandbox's record."""

    status: str
    reason: str
    times_s: list[float] = field(default_factory=list)  # timed calls, parent's clock
    median_s: float | None = None
    net_median_s: float | None = None  # median minus the protocol floor's median
    # the timed calls' CPU time (Call.cpu_s): on a CPU device, the work a call did, which a
    # busy machine barely changes (2 cores, 3 busy processes beside it: wall clock 2.10x,
    # CPU time 1.05x; benchmarks/cpu_clock_under_load.py); empty when not readable
    cpu_times_s: list[float] = field(default_factory=list)
    cpu_median_s: float | None = None
    # the no-op round trip: median_s, p90_s (calibration, before the candidate loads), min_s
    # (over all no-ops, including one after each call), calls (all no-ops)
    floor: dict = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    seed: int = 0
    device_sync: bool = False  # a GPU was synchronised after each call
    offcall_watch: bool = False  # CPU outside the calls was accounted (see parent/offcall.py)
    l2_flush_bytes: int | None = None  # the device cache was overwritten before each call (GPU only)
    exit: Exit = field(default_factory=Exit)
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""
    violations: list[dict] = field(default_factory=list)
    cleanup: str = ""
    protections: dict = field(default_factory=dict)
    phases: dict = field(default_factory=dict)  # seconds per phase of the session (Child.phases)

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
