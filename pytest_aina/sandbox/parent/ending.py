"""How a sandboxed run ended, in one status and one specific reason.

Precedence, most telling first: what the parent's watchdog killed it for (it saw it
happen), then a refused write or network attempt (even if the candidate swallowed the
error and returned), then processes left behind, then what the child itself reported
(syntax error, exception, ...), then the exit status (signal, CPU or file-size limit),
and last "no result" for a child that ended without a well-formed result. Success is
only ever a well-formed result frame from a child that broke no rule.
"""

from __future__ import annotations

from pytest_aina.sandbox import result as R
from pytest_aina.sandbox.parent.launch import Child

_MEMORY_WORDS = ("memoryerror", "bad_alloc", "cannot allocate memory", "can't allocate memory", "out of memory")


def classify(child: Child, final: dict | None, protocol: str | None = None) -> tuple[str, str]:
    """(status, reason) for a child that has been finished; ``final`` is the last result
    or failure frame it sent, ``protocol`` a description of garbage on the channel."""
    killed = child.exit.killed_by_sandbox
    if killed and killed != "did not exit":
        return killed, child.kill_reason
    if child.violations:
        # every one, not the first and a count: a reviewer judging a hostile candidate needs all
        return child.violations[0]["kind"], "; ".join(f"{v['kind']}: {v['detail']}" for v in child.violations)
    if child.leftover:
        cmds = "; ".join(child.leftover_cmds[:3])
        return R.LEFTOVER, (
            f"leftover processes: {child.leftover} process(es) still running when the candidate "
            f"finished, killed by the sandbox ({cmds})"
        )
    if final is not None and final.get("op") in ("failed", "error"):
        return str(final.get("status")), str(final.get("reason"))
    if final is not None and final.get("op") == "result":
        return R.OK, "ok"
    if protocol:
        return R.NO_RESULT, f"no result: the result channel carried garbage ({protocol})"
    e = child.exit
    stderr = child.tails[1].text().lower() if child.tails else ""
    if e.signal:
        if e.signal == "SIGXCPU":
            return R.CPU, f"cpu limit: killed by SIGXCPU after {child.cpu_s:.1f} s of CPU time"
        if e.signal == "SIGXFSZ":
            return R.FILE_SIZE, (f"file size limit: killed by SIGXFSZ writing past {child.limits.file_bytes >> 20} MiB")
        cpu_limit = child.limits.rlimits()["cpu"]
        if e.signal == "SIGKILL" and child.cpu_s >= cpu_limit - 0.5:
            return R.CPU, f"cpu limit: killed after {child.cpu_s:.1f} s of CPU time (limit {cpu_limit} s)"
        if any(w in stderr for w in _MEMORY_WORDS) or (
            e.signal == "SIGKILL" and child.peak_rss >= 0.9 * child.limits.memory_bytes
        ):
            return R.MEMORY, f"memory limit: killed by {e.signal} at {child.peak_rss >> 20} MiB resident"
        return R.SIGNAL, f"crash by signal {e.signal}"
    if any(w in stderr for w in _MEMORY_WORDS):
        return R.MEMORY, f"memory limit: exited with code {e.code} after running out of memory"
    partial = child.reader.pending
    garbage = f" ({partial} bytes of an incomplete frame on the result channel)" if partial else ""
    return R.NO_RESULT, f"no result: the process exited with code {e.code} without sending a result{garbage}"
