"""Work outside the call: CPU the sandbox uses between a timed call's return and the next ``go``.

The serving thread runs only our code between two calls (the snapshot, the next inputs),
so CPU used meanwhile on any other thread or process of the sandbox is the candidate's:
a call that returned early and finished in the background, or a thread that starts on the
next inputs before ``go``. The parent's clock does not see that work; this accounting
does, from outside, with the kernel's per-process CPU clocks (:mod:`.procs`), and
:func:`check` turns too much of it into "deferred work".
"""

from __future__ import annotations

from typing import Any

from pytest_aina.sandbox import result as R
from pytest_aina.sandbox.parent import procs
from pytest_aina.sandbox.parent.launch import Child
from pytest_aina.sandbox.parent.verdicts import Stop
from pytest_aina.sandbox.result import Call

#: CPU the sandbox may use between two calls on threads other than the serving one before
#: it counts as work the earlier call left running: an allowance for the runtime's own
#: housekeeping, plus a fraction of the call's time. Above ~70 ms a call the fraction
#: dominates (deferring that much looks 3% faster, inside the 5% a winner must clear);
#: below, the 2 ms does, so a short call could hide up to 2 ms of CPU work per call.
SLACK_S = 2e-3
SLACK_FRACTION = 0.03

#: The kernel adds a thread's CPU time to its clocks at scheduler ticks and context
#: switches, so a thread still running on another CPU at the instant a call ends (an
#: OpenMP worker between the barrier and its sleep) may have up to one tick of the call's
#: work not yet on the clock; it then appears as used *after* the call. Measured here (a
#: 250 Hz kernel): an honest two-thread torch op shows 0.1-0.5 ms per window, and once in a
#: full test run 3.6 ms. One window per session over the allowance by at most a tick
#: (4 ms at 250 Hz, the usual distribution default) is that clock's resolution and is
#: recorded, not judged; a second one, or one further over, is deferred work.
TICK_S = 4e-3


class OffCall:
    """CPU the sandbox uses on anything but the thread serving the protocol: the kernel's
    per-process CPU clocks of the sandbox's processes (exited threads included), less the
    serving thread's own time from /proc. The serving thread runs only our code between a
    call's return and the next ``go`` (the snapshot, the next inputs), so what grows there
    is the candidate's, running where the parent's clock does not look.

    At a call's end the serving process's own figure comes from the child (taken before
    ``done`` was sent, with clock functions captured before the candidate loaded), used
    only within the bracket the parent's own readings allow, so a forged one hides no
    more than the parent's reading would; the other processes are read from outside.
    ``None`` readings (not Linux, no schedstat) switch the check off and the result says so."""

    def __init__(self, child: Child, ns_pid: Any):
        self.child = child
        self.server: int | None = None
        self.pids: list[int] = []
        if isinstance(ns_pid, int):
            # our PID for the serving process: the member that calls itself ``ns_pid`` in
            # the innermost namespace (the wrappers above it have other PIDs there)
            found = [p for p in child.members() if procs.innermost_pid(p) == ns_pid]
            if len(found) == 1 and self._server_others(found[0]) is not None:
                self.server = found[0]

    @staticmethod
    def _server_others(pid: int) -> int | None:
        total, main = procs.process_cpu_ns(pid), procs.thread_cpu_ns(pid, pid)
        return None if total is None or main is None else total - main

    def refresh(self, pids: list[int] | None = None) -> None:
        """List the sandbox's processes again (a walk of /proc: kept out of the readings
        around a call, where it would cost the call microseconds), or take ``pids``, a
        walk the caller has just made."""
        if self.server is not None:
            self.pids = self.child.members() if pids is None else pids

    def reading(self) -> dict[int, int] | None:
        """{pid: CPU ns of its other threads (the server) or of all its threads}, over the
        processes found by the last :meth:`refresh`."""
        if self.server is None:
            return None
        if not self.pids:
            self.refresh()
        server = self._server_others(self.server)
        if server is None:
            return None
        out = {
            p: v + procs.reaped_children_cpu_ns(p)
            for p in self.pids
            if p != self.server and (v := procs.process_cpu_ns(p)) is not None
        }
        out[self.server] = server + procs.reaped_children_cpu_ns(self.server)
        return out

    def at_done(self, reported: Any, before_go: dict[int, int] | None) -> dict[int, int] | None:
        now = self.reading()
        if now is None or before_go is None:
            return now
        if isinstance(reported, int):
            reported += procs.reaped_children_cpu_ns(self.server)
            if before_go.get(self.server, 0) <= reported <= now[self.server]:
                now[self.server] = reported
        return now


def allowed_s(call: Call) -> float:
    """CPU the sandbox may use outside ``call`` before it is deferred work (the first
    over-allowance window of a session gets ``TICK_S`` more: see :func:`check`)."""
    return SLACK_S + SLACK_FRACTION * call.parent_s


def check(
    since: dict[int, int] | None, now: dict[int, int] | None, call: Call, forgiven: list[Call] | None = None
) -> None:
    """Raise deferred work (:class:`~.verdicts.Stop`) when more CPU than allowed ran outside
    ``call``, from its return to the next call. A process new since ``since`` counts with
    all its time; one that exited counts once reaped, in its parent's children's time
    (clock ticks). Records the figure in ``call.offcall_cpu_s``.

    ``forgiven`` (one per session) holds the calls whose window went over the allowance by
    no more than the clock's resolution (``TICK_S``): the first such window is added there
    and passes, any later one is judged as if none had been forgiven."""
    if since is None or now is None:
        return
    used = sum(max(0, v - since.get(p, 0)) for p, v in now.items()) / 1e9
    allowed = allowed_s(call)
    call.offcall_cpu_s = used
    if used > allowed and forgiven is not None and not forgiven and used <= allowed + TICK_S:
        forgiven.append(call)
        return
    if used > allowed:
        raise Stop(
            R.DEFERRED,
            f"deferred work: other threads or processes of the sandbox used {used * 1e3:.1f} ms "
            f"of CPU between call {call.index}'s return and the next call (allowed "
            f"{allowed * 1e3:.1f} ms): a kernel's work must be done when it returns, where the "
            "parent's clock sees it",
        )
