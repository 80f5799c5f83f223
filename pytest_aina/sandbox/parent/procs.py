"""Finding and ending a sandbox's processes through ``/proc`` (Linux)."""

from __future__ import annotations

import os
import signal
import time


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def status(pid: int) -> dict[str, str]:
    text = _read(f"/proc/{pid}/status") or ""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def all_pids() -> list[int]:
    try:
        return [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (via ``/proc/PID/task/TID/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            text = _read(f"/proc/{p}/task/{tid}/children")
            if text:
                todo.extend(int(c) for c in text.split())
    return out


def real_uid(pid: int) -> int | None:
    """The real uid of ``pid`` (None when it is gone), from status: a process cannot hide
    it by making itself non-dumpable, which only changes the owner of its /proc folder.
    Finds the one line rather than parsing the whole file (:func:`status`): every sandbox
    reads it for every process on the machine."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return None
    at = text.find(b"\nUid:")
    if at < 0:
        return None
    fields = text[at + 5 : text.find(b"\n", at + 5)].split()
    return int(fields[0]) if fields else None


def uids_in_use() -> set[int]:
    """The real uids of every process on the machine."""
    return {u for u in map(real_uid, all_pids()) if u is not None}


def by_uid(uid: int) -> list[int]:
    """Processes whose real uid is ``uid`` (see :func:`real_uid`)."""
    return [pid for pid in all_pids() if real_uid(pid) == uid]


def by_session(sid: int) -> list[int]:
    out = []
    for pid in all_pids():
        stat = _read(f"/proc/{pid}/stat")
        if stat:
            # the command name (field 2) may hold spaces and parentheses: split after the last ')'
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 3 and int(fields[3]) == sid:
                out.append(pid)
    return out


def is_zombie(pid: int) -> bool:
    return status(pid).get("State", "").startswith(("Z", "X"))


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        v = status(pid).get("VmRSS")
        if v:
            total += int(v.split()[0]) * 1024
    return total


def private_bytes(pid: int) -> int:
    """The resident pages ``pid`` has to itself (Private_Clean + Private_Dirty): for a
    process forked from a template, the memory it added. Falls back to its whole VmRSS
    (an over-count, on the safe side) when ``smaps_rollup`` cannot be read."""
    text = _read(f"/proc/{pid}/smaps_rollup")
    if text:
        total = 0
        for line in text.splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
        return total
    return rss_bytes([pid])


def cmdline(pid: int) -> str:
    return (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_until_gone(find, timeout: float = 5.0, first: list[int] | None = None) -> list[int]:
    """SIGKILL whatever ``find()`` returns until it returns nothing live; returns what is left.
    ``first``: what ``find()`` would return now, found already (it is not looked for twice)."""
    deadline = time.monotonic() + timeout
    while True:
        live = [p for p in (find() if first is None else first) if not is_zombie(p)]
        first = None
        if not live or time.monotonic() > deadline:
            return live
        kill(live)
        time.sleep(0.01)


def process_cpu_ns(pid: int) -> int | None:
    """CPU time used so far by process ``pid``, all its threads together, exited ones
    included, in nanoseconds: the kernel's per-process CPU clock, which any process may
    read for another (clock_getcpuclockid's encoding). None when the process is gone."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | 2)  # CPUCLOCK_SCHED of process ``pid``
    except OSError:
        return None


def thread_cpu_ns(pid: int, tid: int) -> int | None:
    """CPU time used so far by thread ``tid`` of process ``pid``, in nanoseconds (the
    scheduler's own sum, from /proc; per-thread CPU clocks of another process cannot be
    read). None when the thread is gone or the kernel keeps no such figure."""
    text = _read(f"/proc/{pid}/task/{tid}/schedstat")
    try:
        return int(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def tree_cpu_ns(pids: list[int]) -> dict[int, int]:
    """{pid: CPU time of all its threads and of the children it has reaped, in ns} for
    each of ``pids`` still alive: the sandbox's CPU clock, summed by the caller over two
    readings (a process new in the second counts with all its time)."""
    out = {}
    for pid in pids:
        v = process_cpu_ns(pid)
        if v is not None:
            out[pid] = v + reaped_children_cpu_ns(pid)
    return out


def innermost_pid(pid: int) -> int | None:
    """``pid`` as the process itself sees it: the last entry of NSpid (its PID in the
    innermost PID namespace it belongs to)."""
    nspid = status(pid).get("NSpid", "").split()
    return int(nspid[-1]) if nspid else None


_TICK_NS = 10**9 // (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def reaped_children_cpu_ns(pid: int) -> int:
    """CPU time of the children ``pid`` has waited for (cutime + cstime, in clock ticks):
    where an exited process's time goes, which its own CPU clock no longer shows."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    try:
        return (int(fields[13]) + int(fields[14])) * _TICK_NS
    except (ValueError, IndexError):
        return 0
