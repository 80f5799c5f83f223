"""``time_calls``: benchmark a candidate where it cannot reach the clock.

The parent drives a sandboxed child call by call over a pipe (:mod:`.serve` is the other
end) and owns the stopwatch: the time of a call is from the parent's ``go`` to the
child's ``done``. Each call gets fresh inputs, made in the child from a seed the parent
picks per call (so an answer cached between calls cannot pass), and every output is
checked after timing, by the parent, against a reference the parent computes from the
same seed. The protocol's own cost (the "floor") is calibrated in the same child with a
no-op before the candidate is imported.

The output is read at once when the call returns, by our code on the serving thread, and
the parent watches the CPU the sandbox uses between calls on every other thread and
process (the kernel's per-process CPU clocks, read from outside): a candidate that returns
early and finishes its work in the background, or starts it before ``go`` on inputs it
found, is "deferred work", not a fast kernel.

The seam for the evaluator, three callables named by import path (``module:function`` or
``file.py:function``):

* ``make_inputs(seed, **params)`` -> a sequence of positional arguments (or a dict of
  keyword arguments); deterministic in ``seed``; runs in the child *and* in the parent;
* ``reference(*args)`` -> the expected output; runs in the parent only;
* ``check(output, expected, **params)`` -> ``None`` when acceptable, else a problem (a
  string, a dict, or an object with ``describe()`` such as ``compare.Mismatch``); an
  ``AssertionError`` counts as a problem too. It must also accept row slices of its
  arguments, which is how a partial result is told from a wrong one.

Failures, each with its own status: wrong answer, stale result, partial result, aliased
output, input mutated, tampered clock, measurement error (a figure faster than possible),
deferred work, plus everything :func:`~pytest_aina.sandbox.run` can report (timeout, crash, ...).
"""

from __future__ import annotations

import json
import random
import secrets
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from pytest_aina.sandbox import frames
from pytest_aina.sandbox.parent import procs
from pytest_aina.sandbox import messages as wire
from pytest_aina.sandbox import result as R
from pytest_aina.sandbox.parent.ending import classify
from pytest_aina.sandbox.parent.launch import Child, Ended
from pytest_aina.sandbox.parent.oneshot import staged_entry
from pytest_aina.sandbox.result import Exit, Isolation, Limits

#: how much faster than the no-op round trip a call may seem before it is impossible
_FLOOR_SLACK = 0.8

#: CPU the sandbox may use between two calls on threads other than the serving one before
#: it counts as work the earlier call left running: an allowance for the runtime's own
#: housekeeping, plus a fraction of the call's time. Above ~70 ms a call the fraction
#: dominates (deferring that much looks 3% faster, inside the 5% a winner must clear);
#: below, the 2 ms does, so a short call could hide up to 2 ms of CPU work per call.
_OFFCALL_SLACK_S = 2e-3
_OFFCALL_SLACK_FRACTION = 0.03

#: The kernel adds a thread's CPU time to its clocks at scheduler ticks and context
#: switches, so a thread still running on another CPU at the instant a call ends (an
#: OpenMP worker between the barrier and its sleep) may have up to one tick of the call's
#: work not yet on the clock; it then appears as used *after* the call. Measured here (a
#: 250 Hz kernel): an honest two-thread torch op shows 0.1-0.5 ms per window, and once in a
#: full test run 3.6 ms. One window per session over the allowance by at most a tick
#: (4 ms at 250 Hz, the usual distribution default) is that clock's resolution and is
#: recorded, not judged; a second one, or one further over, is deferred work.
_OFFCALL_TICK_S = 4e-3


@dataclass
class Call:
    index: int
    seed: int
    warmup: bool
    parent_s: float  # go -> done, on the parent's clock: the figure that counts
    child_s: float  # the call on a clock the child captured before the candidate loaded
    live_s: float  # the call on the child's time.perf_counter as the candidate left it
    problem: str | None = None
    cycle_s: float = 0.0  # the whole round: inputs, call, output back, the parent's checks
    offcall_cpu_s: float | None = None  # CPU of other threads/processes from its return to the next call


@dataclass
class TimingResult:
    status: str
    reason: str
    times_s: list[float] = field(default_factory=list)  # timed calls, parent's clock
    median_s: float | None = None
    net_median_s: float | None = None  # median minus the protocol floor's median
    # the no-op round trip: median_s, p90_s (calibration, before the candidate loads), min_s
    # (over all no-ops, including one after each call), calls (all no-ops)
    floor: dict = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    seed: int = 0
    device_sync: bool = False  # a GPU was synchronised after each call
    offcall_watch: bool = False  # CPU outside the calls was accounted (see _OffCall)
    l2_flush_bytes: int | None = None  # the device cache was overwritten before each call (GPU only)
    exit: Exit = field(default_factory=Exit)
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""
    violations: list[dict] = field(default_factory=list)
    cleanup: str = ""
    protections: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == R.OK

    def as_dict(self) -> dict:
        return asdict(self)


class _Stop(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _describe(problem: Any) -> str | None:
    if problem is None:
        return None
    if isinstance(problem, str):
        return problem
    if hasattr(problem, "describe"):
        return str(problem.describe())
    if isinstance(problem, dict):
        return json.dumps(problem, default=str)
    return str(problem)


def _run_check(check, out, expected, params) -> str | None:
    try:
        return _describe(check(out, expected, **params))
    except AssertionError as e:
        return str(e) or "check failed"
    except Exception as e:  # a malformed output can make a check trip: still a wrong answer
        return f"the check could not compare the output: {type(e).__name__}: {e}"


def _resolve(path: str):
    from pytest_aina.sandbox.child.boot import resolve

    return resolve(path)


def time_calls(entry: str, *, make_inputs: str, reference: str, check: str, params: Mapping[str, Any] | None = None,
               calls: int = 10, warmup: int = 1, seed: int = 0, floor_calls: int = 30, call_timeout_s: float = 30.0,
               min_plausible_s: float | None = None, l2_flush_bytes: int = 256 << 20,
               limits: Limits | None = None, isolation: Isolation | None = None,
               pythonpath: Sequence[str] = (), read_paths: Sequence[str] = (), files: Mapping[str, Any] | None = None,
               env: Mapping[str, str] | None = None, base_dir: str | None = None) -> TimingResult:
    """Time ``calls`` calls of ``entry`` (after ``warmup`` untimed ones, also checked) in
    one sandboxed child. ``seed`` seeds the parent's choice of per-call seeds, so a run
    repeats. ``min_plausible_s``: a median below it (e.g. bytes moved / peak bandwidth)
    is a measurement error. ``l2_flush_bytes``: on a GPU, a buffer of that size is
    overwritten before each call (0: never). ``limits.wall_s`` bounds the whole session."""
    if calls < 1 or warmup < 0 or floor_calls < 1:
        raise ValueError(f"time_calls: calls={calls} (>= 1), warmup={warmup} (>= 0), floor_calls={floor_calls} (>= 1)")
    params = dict(params or {})
    try:
        json.dumps(params)
    except (TypeError, ValueError) as e:
        raise ValueError(f"time_calls: params must be JSON-able: {e}") from None
    mk, ref, chk = _resolve(make_inputs), _resolve(reference), _resolve(check)
    staged: dict[str, Any] = dict(files or {})
    entry, extra = staged_entry(entry)
    staged.update(extra)
    mk_child, extra = staged_entry(make_inputs)
    staged.update({f"harness/{k}": v for k, v in extra.items()})
    mk_child = mk_child.replace("{work}/", "{work}/harness/")
    limits = limits or Limits()
    child = Child("serve", {"entry": entry, "make_inputs": mk_child, "params": params,
                           "flush_bytes": int(l2_flush_bytes)}, limits=limits,
                  isolation=isolation or Isolation(), pythonpath=list(pythonpath), read_paths=list(read_paths),
                  files=staged, env=env, base_dir=base_dir)
    for key in ("entry", "make_inputs"):
        child.config[key] = child.config[key].replace("{work}", child.work)
    res = TimingResult(status=R.OK, reason="ok", seed=seed)
    final: dict | None = None  # None: the child ended or was killed before the session did
    protocol: str | None = None
    stop: _Stop | None = None
    try:
        child.start()
        try:
            _session(child, res, mk=mk, ref=ref, chk=chk, params=params, calls=calls, warmup=warmup, seed=seed,
                     floor_calls=floor_calls, call_timeout_s=call_timeout_s, min_plausible_s=min_plausible_s,
                     deadline=child.started + limits.wall_s)
            final = {"op": "result"}
        except _Stop as e:
            stop, final = e, {"op": "result"}  # the child behaved; the harness's verdict decides
        except _Failed as f:
            final = f.frame
        except TimeoutError:
            child.kill(R.TIMEOUT, f"timeout: the session passed its {limits.wall_s:g} s wall-clock limit")
        except Ended:
            pass
        except frames.ProtocolError as e:
            protocol = str(e)
            child.kill(R.NO_RESULT, f"no result: the channel carried garbage ({e})")
        child.finish(grace=2.0)
    except BaseException:  # Ctrl-C, or the caller's harness raising: never leave the child running
        child.abandon()
        raise
    # what the sandbox saw (a kill, a violation, leftovers, a crash) outranks the harness's verdict
    res.status, res.reason = classify(child, final, protocol)
    if res.status == R.OK and stop is not None:
        res.status, res.reason = stop.status, stop.reason
    red = child.redactor
    res.reason = red.text(res.reason)
    for c in res.calls:
        c.problem = red.text(c.problem) if c.problem else None
    res.exit, res.wall_s, res.peak_rss_bytes = child.exit, child.wall_s(), child.peak_rss
    res.stdout_tail, res.stderr_tail = child.tail(0), child.tail(1)
    res.violations = [{k: red.text(v) for k, v in v.items()} for v in child.violations]
    res.cleanup, res.protections = child.cleanup, child.protections()
    res.protections["offcall_cpu_watch"] = res.offcall_watch
    return res


class _Failed(Exception):
    def __init__(self, frame: dict):
        self.frame = frame


class _OffCall:
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

    def refresh(self) -> None:
        """List the sandbox's processes again (a walk of /proc: kept out of the readings
        around a call, where it would cost the call microseconds)."""
        if self.server is not None:
            self.pids = self.child.members()

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
        out = {p: v + procs.reaped_children_cpu_ns(p) for p in self.pids
               if p != self.server and (v := procs.process_cpu_ns(p)) is not None}
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


def offcall_allowed_s(call: Call) -> float:
    """CPU the sandbox may use outside ``call`` before it is deferred work (the first
    over-allowance window of a session gets ``_OFFCALL_TICK_S`` more: see ``_check_offcall``)."""
    return _OFFCALL_SLACK_S + _OFFCALL_SLACK_FRACTION * call.parent_s


def _check_offcall(since: dict[int, int] | None, now: dict[int, int] | None, call: Call,
                   forgiven: list[Call] | None = None) -> None:
    """Raise deferred work when more CPU than allowed ran outside ``call``, from its
    return to the next call. A process new since ``since`` counts with all its time; one
    that exited counts once reaped, in its parent's children's time (clock ticks).

    ``forgiven`` (one per session) holds the calls whose window went over the allowance by
    no more than the clock's resolution (``_OFFCALL_TICK_S``): the first such window is
    added there and passes, any later one is judged as if none had been forgiven."""
    if since is None or now is None:
        return
    used = sum(max(0, v - since.get(p, 0)) for p, v in now.items()) / 1e9
    allowed = offcall_allowed_s(call)
    call.offcall_cpu_s = used
    if used > allowed and forgiven is not None and not forgiven and used <= allowed + _OFFCALL_TICK_S:
        forgiven.append(call)
        return
    if used > allowed:
        raise _Stop(R.DEFERRED, f"deferred work: other threads or processes of the sandbox used {used * 1e3:.1f} ms "
                                f"of CPU between call {call.index}'s return and the next call (allowed "
                                f"{allowed * 1e3:.1f} ms): a kernel's work must be done when it returns, where the "
                                "parent's clock sees it")


def _expect(child: Child, op: str, deadline: float, what: str) -> tuple[dict, bytes]:
    while True:
        header, blob = child.recv(deadline)
        if header["op"] == "confined":
            missing = child.missing()
            if missing:
                child.kill(R.SANDBOX_ERROR, f"sandbox error: required protection(s) not in force on this machine: "
                                            f"{', '.join(missing)}")
            continue
        if header["op"] == op:
            return header, blob
        if header["op"] in ("failed", "error"):
            raise _Failed(header)
        raise _Stop(R.PROTOCOL, f"protocol error: expected {op!r} {what}, got {header['op']!r}")


def _session(child: Child, res: TimingResult, *, mk, ref, chk, params, calls, warmup, seed, floor_calls,
             call_timeout_s, min_plausible_s, deadline) -> None:
    clock = time.perf_counter_ns
    ready, _ = _expect(child, "ready", deadline, "after start-up")
    res.device_sync = bool(ready.get("sync"))
    res.l2_flush_bytes = ready.get("l2_flush_bytes")

    def noop() -> int:
        nonce = secrets.token_hex(8)
        t0 = clock()
        child.send({"op": "go", "nonce": nonce, "noop": True})
        header, _ = _expect(child, "done", min(deadline, time.monotonic() + call_timeout_s), "for a no-op")
        elapsed = clock() - t0
        if header.get("nonce") != nonce:
            raise _Stop(R.PROTOCOL, "protocol error: a no-op call answered with the wrong nonce")
        if header.get("replaced"):
            raise _Stop(R.TAMPERED_CLOCK, f"tampered clock: the candidate replaced {', '.join(header['replaced'])}")
        return elapsed

    floor = [noop() for _ in range(floor_calls)]

    offcall = _OffCall(child, ready.get("pid"))
    child.send({"op": "load"})
    _expect(child, "loaded", deadline, "after loading the candidate")
    res.offcall_watch = offcall.reading() is not None
    mark, last = None, None  # the reading at the last timed call's end, and that call
    forgiven: list[Call] = []  # at most one window over the allowance by a clock tick (_check_offcall)

    rng = random.Random(seed)
    history: list[tuple[int, Any]] = []  # (call index, expected output) of earlier calls
    for i in range(warmup + calls):
        s = rng.getrandbits(62)
        is_warmup = i < warmup
        cycle_start = clock()
        child.send({"op": "prepare", "seed": s})
        _expect(child, "prepared", deadline, f"for call {i}")
        before_go = offcall.reading()
        if last is not None:  # warm-up calls may leave one-time work behind (compilers, pools)
            _check_offcall(mark, before_go, last, forgiven)
        nonce = secrets.token_hex(8)
        call_deadline = min(deadline, time.monotonic() + call_timeout_s)
        t0 = clock()
        child.send({"op": "go", "nonce": nonce})
        try:
            # the watchdog reads /proc while the call runs: rarely, not to steal the CPU it times
            # (RLIMIT_DATA bounds each process meanwhile)
            header, _ = child.recv(call_deadline, poll_s=1.0)
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise
            child.kill(R.TIMEOUT, f"timeout: call {i} (seed {s}) did not return within {call_timeout_s:g} s")
            raise Ended() from None
        t1 = clock()
        at_done = offcall.at_done(header.get("others_cpu_ns"), before_go)
        if header["op"] == "error":
            raise _Failed(dict(header, reason=f"{header.get('reason')} (call {i}, seed {s})"))
        if header["op"] != "done":
            raise _Stop(R.PROTOCOL, f"protocol error: expected 'done' for call {i}, got {header['op']!r}")
        if header.get("nonce") != nonce:
            raise _Stop(R.PROTOCOL, f"protocol error: call {i} was answered with a nonce the parent never sent "
                                    "(a forged or replayed frame)")
        call = Call(index=i, seed=s, warmup=is_warmup, parent_s=(t1 - t0) / 1e9, child_s=header["child_ns"] / 1e9,
                    live_s=float(header.get("live_s", float("nan"))))
        res.calls.append(call)
        if not is_warmup:
            mark, last = at_done, call
        if header.get("replaced"):
            raise _Stop(R.TAMPERED_CLOCK, f"tampered clock: the candidate replaced {', '.join(header['replaced'])} "
                                          f"(call {i}); the parent's figures are unaffected")

        header, blob = _expect(child, "collected", deadline, f"for call {i}")
        value = wire.decode(header["value"], blob)
        out, inputs_after = value["out"], value["inputs"]
        if header.get("aliased"):
            o, j = header["aliased"][0]
            raise _Stop(R.ALIASED, f"aliased output: output {o} shares memory with input {j} (call {i}): the kernel must write new memory")

        made = mk(s, **params)
        args, kwargs = ((), dict(made)) if isinstance(made, dict) else (tuple(made), {})
        pristine = list(args) + list(kwargs.values())
        for j, (before, after) in enumerate(zip(pristine, inputs_after)):
            if wire.encode(before) != wire.encode(after):
                raise _Stop(R.MUTATED, f"input mutated: input {j} differs after call {i} (seed {s}) from the "
                                       "input it was given")
        expected = ref(*args, **kwargs)
        problem = _run_check(chk, out, expected, params)
        if problem is not None:
            call.problem = problem
            raise _Stop(*_wrong(chk, out, expected, params, history, i, s, problem))
        history.append((i, expected))
        offcall.refresh()  # a process started since is then counted, with all its time
        call.cycle_s = (clock() - cycle_start) / 1e9
        if not is_warmup:
            res.times_s.append(call.parent_s)
        # one more no-op per call: the floor then spans the same stretch of time as the
        # calls, so a busy spell during calibration cannot make a real call look impossible
        floor.append(noop())
    if last is not None:
        offcall.refresh()
        _check_offcall(mark, offcall.reading(), last, forgiven)

    # median and p90 from the calibration (quiet, back to back); the minimum over every
    # no-op, the calibration's and those between calls, bounds what is possible
    calib = sorted(floor[:floor_calls])
    res.floor = {"median_s": statistics.median(calib) / 1e9, "p90_s": calib[int(0.9 * (len(calib) - 1))] / 1e9,
                 "min_s": min(floor) / 1e9, "calls": len(floor)}
    timed = [c for c in res.calls if not c.warmup]
    _judge_clocks(res, timed)
    res.median_s = statistics.median(res.times_s)
    res.net_median_s = max(0.0, res.median_s - res.floor["median_s"])
    fastest = min(timed, key=lambda c: c.parent_s)
    if fastest.parent_s < _FLOOR_SLACK * res.floor["min_s"]:
        raise _Stop(R.MEASUREMENT, f"measurement error: call {fastest.index} took {fastest.parent_s * 1e6:.1f} us, "
                                   f"less than the protocol's own no-op round trip ({res.floor['min_s'] * 1e6:.1f} us):"
                                   " faster than physically possible, not a win")
    if min_plausible_s is not None and res.net_median_s < min_plausible_s:
        raise _Stop(R.MEASUREMENT, f"measurement error: median {res.net_median_s * 1e6:.1f} us (after the protocol "
                                   f"floor) is below the physically plausible {min_plausible_s * 1e6:.1f} us")


def _wrong(chk, out, expected, params, history, i, s, problem) -> tuple[str, str]:
    """Tell a stale or partial result from a plain wrong answer."""
    for j, earlier in reversed(history):
        if _run_check(chk, out, earlier, params) is None:
            return R.STALE, (f"stale result: call {i} (seed {s}) returned the answer to call {j}'s inputs "
                             "(an answer cached between calls)")
    rows = _partial_rows(chk, out, expected, params)
    if rows is not None:
        bad, total = rows
        shown = ", ".join(f"{a}..{b - 1}" if b - a > 1 else str(a) for a, b in bad[:6])
        return R.PARTIAL, (f"partial result: call {i} (seed {s}): rows {shown} of {total} are wrong, the others "
                           f"right\n{problem}")
    return R.WRONG, f"wrong answer: call {i} (seed {s}):\n{problem}"


def _partial_rows(chk, out, expected, params):
    """Row blocks (at most 64) that fail when some others pass, or None."""
    try:
        n, m = len(out), len(expected)
        if n != m or n < 2 or tuple(getattr(out, "shape", ())) != tuple(getattr(expected, "shape", ())):
            return None
    except TypeError:
        return None
    blocks = min(n, 64)
    edges = [round(k * n / blocks) for k in range(blocks + 1)]
    bad = []
    for a, b in zip(edges, edges[1:]):
        if _run_check(chk, out[a:b], expected[a:b], params) is not None:
            bad.append((a, b))
    if not bad or len(bad) == blocks:
        return None
    merged = [bad[0]]
    for a, b in bad[1:]:
        if a == merged[-1][1]:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged, n


def _judge_clocks(res: TimingResult, timed: list[Call]) -> None:
    """The child's own measurements against each other and against the parent's."""
    for c in timed:
        if c.child_s > c.parent_s + 1e-3:
            raise _Stop(R.TAMPERED_CLOCK, f"tampered clock: call {c.index} measured {c.child_s * 1e3:.3f} ms inside "
                                          f"the child but only {c.parent_s * 1e3:.3f} ms from the parent")
    child = statistics.median(c.child_s for c in timed)
    live_gap = statistics.median(abs(c.live_s - c.child_s) if c.live_s == c.live_s else float("inf") for c in timed)
    if live_gap > max(0.25 * child, 2e-4):
        live = statistics.median(c.live_s for c in timed)
        raise _Stop(R.TAMPERED_CLOCK, f"tampered clock: time.perf_counter in the child says a call takes "
                                      f"{live * 1e3:.3f} ms, the real clock {child * 1e3:.3f} ms")
    parent_net = statistics.median(c.parent_s for c in timed) - res.floor["median_s"]
    if child < 0.1 * parent_net and parent_net - child > 0.05:
        raise _Stop(R.TAMPERED_CLOCK, f"tampered clock: the child's clock says {child * 1e3:.3f} ms per call, the "
                                      f"parent's {parent_net * 1e3:.3f} ms")
