"""``run``: one entry point in a fresh sandboxed process, one :class:`SandboxResult`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_aina.sandbox import frames
from pytest_aina.sandbox import result as R
from pytest_aina.sandbox.parent.ending import classify
from pytest_aina.sandbox.parent.launch import Child, Ended, staged_entry
from pytest_aina.sandbox.parent.warm import Template
from pytest_aina.sandbox.result import Isolation, Limits, SandboxResult


def run(
    entry: str | None = None,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    argv: Sequence[str] | None = None,
    limits: Limits | None = None,
    isolation: Isolation | None = None,
    pythonpath: Sequence[str] = (),
    read_paths: Sequence[str] = (),
    files: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    base_dir: str | None = None,
    template: Template | None = None,
    keep: bool = False,
) -> SandboxResult:
    """Run ``entry`` (``module:function`` or ``file.py:function``, called with ``args``/``kwargs``,
    which must be JSON-able, and returning a JSON-able value) or ``argv`` (a Python command line:
    ``["-m", "pytest", ...]``, ``["script.py", ...]`` or ``["-c", "code"]``) in a fresh sandbox.

    Never raises for what the candidate does: every ending is a status with a reason.
    Raises ``ValueError``/``FileNotFoundError`` for bad arguments and
    :class:`~pytest_aina.sandbox.SandboxError` when the sandbox cannot be set up.
    """
    limits = limits or Limits()
    isolation = isolation or Isolation()
    if (entry is None) == (argv is None):
        raise ValueError("run(): give exactly one of entry= or argv=")
    config: dict[str, Any] = {}
    staged: dict[str, Any] = dict(files or {})
    if entry is not None:
        try:
            json.dumps([list(args), dict(kwargs or {})])
        except (TypeError, ValueError) as e:
            raise ValueError(f"run({entry!r}): args and kwargs must be JSON-able: {e}") from None
        entry, extra = staged_entry(entry)
        staged.update(extra)
        config.update(entry=entry, args=list(args), kwargs=dict(kwargs or {}))
        mode = "call"
    else:
        argv = list(argv)
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"run(argv={argv!r}): a non-empty list of strings")
        if argv[0] in ("-m", "-c") and len(argv) < 2:
            raise ValueError(f"run(argv={argv!r}): {argv[0]} needs an argument")
        config.update(argv=argv)
        mode = "argv"
    child = Child(
        mode,
        config,
        limits=limits,
        isolation=isolation,
        pythonpath=list(pythonpath),
        read_paths=list(read_paths),
        files=staged,
        env=env,
        base_dir=base_dir,
        template=template,
        keep=keep,
    )
    if "entry" in child.config:
        child.config["entry"] = child.config["entry"].replace("{work}", child.work)
    return _drive(child)


def _drive(child: Child) -> SandboxResult:
    try:
        return _drive_started(child)
    except BaseException:  # KeyboardInterrupt, or a bug of ours: never leave the child running
        child.abandon()
        raise


def _drive_started(child: Child) -> SandboxResult:
    limits = child.limits
    child.start()
    deadline = child.started + limits.wall_s
    final: dict | None = None
    protocol: str | None = None
    try:
        while final is None:
            header, _ = child.recv(deadline)
            op = header["op"]
            if op == "confined":
                missing = child.missing()
                if missing:
                    child.kill(
                        R.SANDBOX_ERROR,
                        f"sandbox error: required protection(s) not in force on this machine: {', '.join(missing)}",
                    )
            elif op in ("result", "failed"):
                final = header
                child.mark("result")
            else:
                protocol = f"unexpected frame {op!r}"
                child.kill(R.NO_RESULT, f"no result: the child sent an unexpected frame {op!r}")
    except TimeoutError:
        child.kill(
            R.TIMEOUT,
            f"timeout: no result within the {limits.wall_s:g} s wall-clock limit (the whole sandbox was killed)",
        )
    except Ended:
        pass
    except frames.ProtocolError as e:
        protocol = str(e)
        child.kill(R.NO_RESULT, f"no result: the result channel carried garbage ({e})")
    child.finish(grace=min(5.0, max(1.0, deadline - time.monotonic())))
    status, reason = classify(child, final, protocol)
    red = child.redactor
    value = None
    if final is not None and final.get("op") == "result" and status == R.OK:
        value = red.value(final.get("value"))
    violations = [{k: red.text(v) for k, v in v.items()} for v in child.violations]
    return SandboxResult(
        status=status,
        reason=red.text(reason),
        value=value,
        exit=child.exit,
        wall_s=child.wall_s(),
        peak_rss_bytes=child.peak_rss,
        stdout_tail=child.tail(0),
        stderr_tail=child.tail(1),
        violations=violations,
        leftover=child.leftover,
        cleanup=child.cleanup,
        protections=child.protections(),
        phases=child.phases(),
    )
