"""``time_calls``: benchmark a candidate where it cannot reach the clock.

The parent drives a sandboxed child call by call over a pipe
(:mod:`pytest_aina.sandbox.child.serve` is the other end) and owns the stopwatch: the time
of a call is from the parent's ``go`` to the child's ``done``. Each call gets fresh
inputs, made in the child from a seed the parent picks per call (so an answer cached
between calls cannot pass), and every output is checked after timing, by the parent,
against a reference the parent computes from the same seed. The protocol's own cost (the
"floor") is calibrated in the same child with a no-op before the candidate is imported.

The output is read at once when the call returns, by our code on the serving thread, and
the parent watches the CPU the sandbox uses between calls on every other thread and
process (:mod:`.offcall`): a candidate that returns early and finishes its work in the
background, or starts it before ``go`` on inputs it found, is "deferred work", not a
fast kernel. What the figures and outputs mean is judged in :mod:`.verdicts`.

Each call also gets a second figure, its CPU time (``Call.cpu_s``): the kernel's CPU clocks
of every process of the sandbox, all threads, read by the parent just before ``go`` and
just after ``done`` (the child then waits for ``collect``, so its snapshot is not
counted). On a CPU device that is the work the call did, which a machine busy with other
processes barely moves, where the wall clock also counts the wait for a core; CPU work a
candidate hides in a process started during the call shows up after it as deferred work.

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
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_aina.imports import resolve
from pytest_aina.sandbox import frames, messages
from pytest_aina.sandbox import result as R
from pytest_aina.sandbox.parent import procs
from pytest_aina.sandbox.parent.ending import classify
from pytest_aina.sandbox.parent.launch import Child, Ended, staged_entry
from pytest_aina.sandbox.parent.offcall import OffCall
from pytest_aina.sandbox.parent.offcall import check as offcall_check
from pytest_aina.sandbox.parent.verdicts import Stop, judge_clocks, judge_plausibility, run_check, wrong
from pytest_aina.sandbox.parent.warm import Template
from pytest_aina.sandbox.result import Call, Isolation, Limits, TimingResult


def time_calls(
    entry: str,
    *,
    make_inputs: str,
    reference: str,
    check: str,
    params: Mapping[str, Any] | None = None,
    calls: int = 10,
    warmup: int = 1,
    seed: int = 0,
    floor_calls: int = 30,
    call_timeout_s: float = 30.0,
    min_plausible_s: float | None = None,
    l2_flush_bytes: int = 256 << 20,
    limits: Limits | None = None,
    isolation: Isolation | None = None,
    pythonpath: Sequence[str] = (),
    read_paths: Sequence[str] = (),
    files: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    base_dir: str | None = None,
    template: Template | None = None,
) -> TimingResult:
    """Time ``entry`` call by call in one sandboxed child, on the parent's clock, and check
    every output; the reusable measurement for anything that compares kernels.

    Trust: ``entry`` (``module:function`` or ``path/file.py:function``; a file is copied
    into the sandbox folder) is untrusted. It is imported only in the child, after the
    protocol's floor is calibrated, and it never holds the clock that counts.
    ``make_inputs``, ``reference`` and ``check`` (the same forms) are trusted: all three
    are imported and run in the parent, ``make_inputs`` also in the child, before the
    entry (see the module docstring for their signatures).

    * ``params``: JSON-able keyword arguments for ``make_inputs`` and ``check``;
    * ``calls`` timed calls (>= 1) after ``warmup`` untimed ones (>= 0), every one checked;
    * ``seed`` seeds the parent's choice of per-call seeds (``random.Random(seed)``), so a
      session repeats, and two entries timed with the same ``seed`` and ``params`` get the
      same inputs call for call;
    * ``floor_calls`` (>= 1) no-op round trips calibrate the protocol's own cost;
    * ``call_timeout_s`` bounds one call (a "timeout" naming the call), ``limits.wall_s``
      the whole session;
    * ``min_plausible_s``: a median (after the floor) below it, e.g. bytes moved / peak
      bandwidth, is a measurement error;
    * ``l2_flush_bytes``: on a GPU, a buffer of that size is overwritten before each call
      (0: never);
    * ``limits``, ``isolation``, ``pythonpath``, ``read_paths``, ``files``, ``env``,
      ``base_dir``: as for :func:`~pytest_aina.sandbox.run`.

    Returns a :class:`~pytest_aina.sandbox.TimingResult`: ``status`` "ok" only when every
    call passed its check and the sandbox saw no broken rule, else one status and a
    specific reason (never raised); ``times_s`` (the timed calls, floor included),
    ``median_s``, ``net_median_s`` (less the floor's median), ``floor``, ``calls`` (each
    with its seed, its figures and its CPU outside the call).

    Raises ``ValueError`` for bad arguments (including an ``env`` name that looks like a
    credential), ``FileNotFoundError`` for a missing entry file,
    :class:`~pytest_aina.sandbox.SandboxError` when the sandbox cannot be set up, and
    whatever importing or running the trusted ``make_inputs`` or ``reference`` raises in
    the parent (a running child is cleaned up first).

    To compare entries (a candidate and its reference, a pull request's base and head),
    time each in its own session with the same arguments; each session has its own child,
    floor and verdict. Alternating the sessions (A, B, A, B) spreads a machine's drift
    over both."""
    if calls < 1 or warmup < 0 or floor_calls < 1:
        raise ValueError(f"time_calls: calls={calls} (>= 1), warmup={warmup} (>= 0), floor_calls={floor_calls} (>= 1)")
    params = dict(params or {})
    try:
        json.dumps(params)
    except (TypeError, ValueError) as e:
        raise ValueError(f"time_calls: params must be JSON-able: {e}") from None
    mk, ref, chk = resolve(make_inputs), resolve(reference), resolve(check)
    staged: dict[str, Any] = dict(files or {})
    entry, extra = staged_entry(entry)
    staged.update(extra)
    mk_child, extra = staged_entry(make_inputs)
    staged.update({f"harness/{k}": v for k, v in extra.items()})
    mk_child = mk_child.replace("{work}/", "{work}/harness/")
    limits = limits or Limits()
    child = Child(
        "serve",
        {"entry": entry, "make_inputs": mk_child, "params": params, "flush_bytes": int(l2_flush_bytes)},
        limits=limits,
        isolation=isolation or Isolation(),
        pythonpath=list(pythonpath),
        read_paths=list(read_paths),
        files=staged,
        env=env,
        base_dir=base_dir,
        template=template,
    )
    for key in ("entry", "make_inputs"):
        child.config[key] = child.config[key].replace("{work}", child.work)
    res = TimingResult(status=R.OK, reason="ok", seed=seed)
    final: dict | None = None  # None: the child ended or was killed before the session did
    protocol: str | None = None
    stop: Stop | None = None
    try:
        child.start()
        try:
            _session(
                child,
                res,
                mk=mk,
                ref=ref,
                chk=chk,
                params=params,
                calls=calls,
                warmup=warmup,
                seed=seed,
                floor_calls=floor_calls,
                call_timeout_s=call_timeout_s,
                min_plausible_s=min_plausible_s,
                deadline=child.started + limits.wall_s,
            )
            final = {"op": "result"}
        except Stop as e:
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
    res.phases = child.phases()
    return res


class _Failed(Exception):
    """The child reported a failure (``failed`` or ``error``): its frame is the verdict."""

    def __init__(self, frame: dict):
        self.frame = frame


def _expect(child: Child, op: str, deadline: float, what: str) -> tuple[dict, bytes]:
    while True:
        header, blob = child.recv(deadline)
        if header["op"] == "confined":
            missing = child.missing()
            if missing:
                child.kill(
                    R.SANDBOX_ERROR,
                    f"sandbox error: required protection(s) not in force on this machine: {', '.join(missing)}",
                )
            continue
        if header["op"] == op:
            return header, blob
        if header["op"] in ("failed", "error"):
            raise _Failed(header)
        raise Stop(R.PROTOCOL, f"protocol error: expected {op!r} {what}, got {header['op']!r}")


def _session(
    child: Child,
    res: TimingResult,
    *,
    mk,
    ref,
    chk,
    params,
    calls,
    warmup,
    seed,
    floor_calls,
    call_timeout_s,
    min_plausible_s,
    deadline,
) -> None:
    clock = time.perf_counter_ns
    ready, _ = _expect(child, "ready", deadline, "after start-up")
    child.mark("ready")
    res.device_sync = bool(ready.get("sync"))
    res.l2_flush_bytes = ready.get("l2_flush_bytes")

    def noop() -> int:
        nonce = secrets.token_hex(8)
        t0 = clock()
        child.send({"op": "go", "nonce": nonce, "noop": True})
        header, _ = _expect(child, "done", min(deadline, time.monotonic() + call_timeout_s), "for a no-op")
        elapsed = clock() - t0
        if header.get("nonce") != nonce:
            raise Stop(R.PROTOCOL, "protocol error: a no-op call answered with the wrong nonce")
        if header.get("replaced"):
            raise Stop(R.TAMPERED_CLOCK, f"tampered clock: the candidate replaced {', '.join(header['replaced'])}")
        return elapsed

    floor = [noop() for _ in range(floor_calls)]
    child.mark("floor")

    offcall = OffCall(child, ready.get("pid"))
    child.send({"op": "load"})
    _expect(child, "loaded", deadline, "after loading the candidate")
    child.mark("loaded")
    res.offcall_watch = offcall.reading() is not None
    mark, last = None, None  # the reading at the last timed call's end, and that call
    forgiven: list[Call] = []  # at most one window over the allowance by a clock tick (offcall.check)

    rng = random.Random(seed)
    history: list[tuple[int, Any]] = []  # (call index, expected output) of earlier calls
    for i in range(warmup + calls):
        s = rng.getrandbits(62)
        is_warmup = i < warmup
        cycle_start = clock()
        child.send({"op": "prepare", "seed": s})
        _expect(child, "prepared", deadline, f"for call {i}")
        # a walk of /proc: here, where it costs the call nothing, for both clocks (a process
        # started since the last call ended then counts with all its time as off-call work)
        members = child.members()
        offcall.refresh(members)
        before_go = offcall.reading()
        cpu_before = procs.tree_cpu_ns(members)
        if last is not None:  # warm-up calls may leave one-time work behind (compilers, pools)
            offcall_check(mark, before_go, last, forgiven)
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
        # the processes now, those the call started included (an orphan that did the work
        # and exited is a zombie of the serving process, its clock still readable): the
        # walk costs the call nothing after t1, and the child waits for "collect" after
        # "done", so nothing of ours runs there meanwhile
        members = child.members()
        offcall.refresh(members)
        at_done = offcall.at_done(header.get("others_cpu_ns"), before_go)
        cpu_after = procs.tree_cpu_ns(members) if cpu_before else {}
        if header["op"] == "error":
            raise _Failed(dict(header, reason=f"{header.get('reason')} (call {i}, seed {s})"))
        if header["op"] != "done":
            raise Stop(R.PROTOCOL, f"protocol error: expected 'done' for call {i}, got {header['op']!r}")
        if header.get("nonce") != nonce:
            raise Stop(
                R.PROTOCOL,
                f"protocol error: call {i} was answered with a nonce the parent never sent "
                "(a forged or replayed frame)",
            )
        call = Call(
            index=i,
            seed=s,
            warmup=is_warmup,
            parent_s=(t1 - t0) / 1e9,
            child_s=header["child_ns"] / 1e9,
            live_s=float(header.get("live_s", float("nan"))),
        )
        if cpu_after:
            call.cpu_s = sum(max(0, v - cpu_before.get(p, 0)) for p, v in cpu_after.items()) / 1e9
        res.calls.append(call)
        if not is_warmup:
            mark, last = at_done, call
        if header.get("replaced"):
            raise Stop(
                R.TAMPERED_CLOCK,
                f"tampered clock: the candidate replaced {', '.join(header['replaced'])} "
                f"(call {i}); the parent's figures are unaffected",
            )

        child.send({"op": "collect"})
        header, blob = _expect(child, "collected", deadline, f"for call {i}")
        value = messages.decode(header["value"], blob)
        out, inputs_after = value["out"], value["inputs"]
        if header.get("aliased"):
            o, j = header["aliased"][0]
            raise Stop(
                R.ALIASED,
                f"aliased output: output {o} shares memory with input {j} (call {i}): the kernel must write new memory",
            )

        made = mk(s, **params)
        args, kwargs = ((), dict(made)) if isinstance(made, dict) else (tuple(made), {})
        pristine = list(args) + list(kwargs.values())
        for j, (before, after) in enumerate(zip(pristine, inputs_after)):
            if messages.encode(before) != messages.encode(after):
                raise Stop(
                    R.MUTATED, f"input mutated: input {j} differs after call {i} (seed {s}) from the input it was given"
                )
        expected = ref(*args, **kwargs)
        problem = run_check(chk, out, expected, params)
        if problem is not None:
            call.problem = problem
            raise Stop(*wrong(chk, out, expected, params, history, i, s, problem))
        history.append((i, expected))
        call.cycle_s = (clock() - cycle_start) / 1e9
        if not is_warmup:
            res.times_s.append(call.parent_s)
            if call.cpu_s is not None:
                res.cpu_times_s.append(call.cpu_s)
        # one more no-op per call: the floor then spans the same stretch of time as the
        # calls, so a busy spell during calibration cannot make a real call look impossible
        floor.append(noop())
    if last is not None:
        offcall.refresh()
        offcall_check(mark, offcall.reading(), last, forgiven)
    child.mark("calls")

    # median and p90 from the calibration (quiet, back to back); the minimum over every
    # no-op, the calibration's and those between calls, bounds what is possible
    calib = sorted(floor[:floor_calls])
    res.floor = {
        "median_s": statistics.median(calib) / 1e9,
        "p90_s": calib[int(0.9 * (len(calib) - 1))] / 1e9,
        "min_s": min(floor) / 1e9,
        "calls": len(floor),
    }
    timed = [c for c in res.calls if not c.warmup]
    judge_clocks(res, timed)
    res.median_s = statistics.median(res.times_s)
    if res.cpu_times_s and len(res.cpu_times_s) == len(res.times_s):
        res.cpu_median_s = statistics.median(res.cpu_times_s)
    else:
        res.cpu_times_s = []  # a clock read for some calls only is no figure
    res.net_median_s = max(0.0, res.median_s - res.floor["median_s"])
    judge_plausibility(res, timed, min_plausible_s)
