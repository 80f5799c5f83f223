"""The child side of the call-by-call timing protocol (the parent side is
:mod:`pytest_aina.sandbox.parent.timing`).

The parent owns the clock: it sends ``go`` and stops its clock when ``done`` arrives, so
the candidate never holds the stopwatch. This side only runs the call and reports, with
references captured before the candidate was imported:

* ``prepare {seed}``: build fresh inputs with the trusted ``make_inputs(seed, **params)``;
* ``go {nonce}``: call the candidate (synchronising the device when there is one), answer
  ``done`` with the same nonce, the call's duration on a captured clock and on whatever
  ``time.perf_counter`` is *now* (a candidate may have replaced it), and the clock
  functions found replaced; then, as soon as the parent has read the sandbox's CPU clocks
  and says ``collect`` (the only command accepted there), ``collected``: the output and
  the inputs as they are (the parent checks both against its own copies), and which
  outputs share memory with an input. From ``done`` to ``collected`` nothing of the
  candidate's is meant to run on this thread: trace and profile hooks are cleared, the
  garbage collector (and with it finalizers and ``gc.callbacks``) paused and signals
  blocked; work on other threads or processes meanwhile is what the parent's CPU
  accounting catches (:mod:`pytest_aina.sandbox.parent.offcall`);
* ``load``: install the audit hook and import the candidate (until then ``go`` times a
  no-op, which is how the parent calibrates the protocol's own cost; after it,
  ``go {noop: true}`` still does, so the parent can keep calibrating between calls);
* ``exit``.
"""

from __future__ import annotations

import _signal
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from pytest_aina.imports import resolve
from pytest_aina.sandbox import frames, messages
from pytest_aina.sandbox import result as R
from pytest_aina.sandbox.child import failure

#: (module, attribute path) of every clock a candidate might patch to fake its timing
_CLOCKS = [
    ("time", "perf_counter"),
    ("time", "perf_counter_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "process_time"),
    ("torch.cuda", "Event"),
    ("torch.cuda", "synchronize"),
    ("torch.cuda", "Event.elapsed_time"),
    ("triton.testing", "do_bench"),
]


def _lookup(module: str, path: str) -> Any:
    obj: Any = sys.modules.get(module)
    for part in path.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj


def _noop(*args, **kwargs):
    return None


def serve(config: dict, send: Callable, reader: frames.Reader, *, load: Callable[[], Callable]) -> None:
    """Answer the parent's commands until ``exit`` or a closed pipe. ``load`` installs the
    audit hook and imports the candidate (reporting and exiting when that fails)."""
    clock_ns = time.perf_counter_ns  # captured: the candidate cannot reach this reference
    cpu_ns = _cpu_clocks()
    make_inputs = resolve(config["make_inputs"])
    params = config.get("params", {})
    messages.capture()
    sync = _device_sync()
    flush_bytes = int(config.get("flush_bytes", 256 << 20))
    flush = _l2_flusher(flush_bytes) if sync is not None and flush_bytes else None
    # only what exists now is watched: a module the candidate imports later was not ours
    originals = {(m, p): ref for m, p in _CLOCKS if (ref := _lookup(m, p)) is not None}
    quiet = _Quiet()
    send(
        {
            "op": "ready",
            "sync": sync is not None,
            "l2_flush_bytes": flush_bytes if flush is not None else None,
            "pid": os.getpid(),
        }
    )

    fn: Callable = _noop
    args: tuple = ()
    kwargs: dict = {}
    out: Any = None
    while True:
        try:
            cmd, _ = reader.read()
        except frames.ChannelClosed:
            return
        op = cmd["op"]
        if op == "go":
            noop = bool(cmd.get("noop"))
            live = _lookup("time", "perf_counter")
            try:
                l0 = live() if callable(live) else 0.0
                t0 = clock_ns()
                out = (_noop if noop else fn)(*args, **kwargs)
                if sync is not None:
                    sync()
                t1 = clock_ns()
                cpu = cpu_ns()
                l1 = live() if callable(live) else 0.0
                replaced = [f"{m}.{p}" for (m, p), ref in originals.items() if _lookup(m, p) is not ref]
                try:
                    live_s = float(l1 - l0)
                except Exception:  # a replaced clock returning something odd: the parent judges
                    live_s = float("nan")
                # still inside the parent's timed window: whatever a hook does here is charged
                # to the call; from here to the snapshot, none of the candidate's code runs on
                # this thread
                if not noop:
                    quiet.enter()
            except BaseException as e:
                quiet.leave()
                failure.release_reserve()
                status, reason = failure.in_call(e)
                send(
                    {
                        "op": "error",
                        "nonce": cmd["nonce"],
                        "status": status,
                        "reason": reason,
                        "traceback": failure.traceback_text(e),
                    }
                )
                continue
            send(
                {
                    "op": "done",
                    "nonce": cmd["nonce"],
                    "child_ns": t1 - t0,
                    "live_s": live_s,
                    "replaced": replaced,
                    "others_cpu_ns": cpu,
                }
            )
            if not noop:
                try:
                    # the parent reads the sandbox's CPU clocks (the call's CPU time) before it
                    # says collect, so the snapshot's own work is never charged to the call
                    try:
                        cmd, _ = reader.read()
                    except frames.ChannelClosed:
                        return
                    if cmd["op"] == "exit":
                        return
                    if cmd["op"] != "collect":
                        send({"op": "error", "status": R.PROTOCOL, "reason": f"expected 'collect', got {cmd['op']!r}"})
                        continue
                    _collect(send, out, list(args) + list(kwargs.values()), quiet)
                finally:
                    quiet.leave()
        elif op == "prepare":
            made = make_inputs(cmd["seed"], **params)
            if isinstance(made, dict):
                args, kwargs = (), made
            else:
                args, kwargs = tuple(made), {}
            out = None
            if flush is not None:
                flush()  # a cold cache for every timed call, as in production
            send({"op": "prepared"})
        elif op == "load":
            fn = load()
            args, kwargs, out = (), {}, None
            send({"op": "loaded"})
        elif op == "exit":
            return
        else:
            send({"op": "error", "status": R.PROTOCOL, "reason": f"unknown command {op!r}"})


def _collect(send: Callable, out: Any, inputs: list, quiet: _Quiet) -> None:
    """The snapshot the parent checks: the output and the inputs as they are now."""
    if quiet.modes():
        send(
            {
                "op": "error",
                "status": R.DEFERRED,
                "reason": "deferred work: the call returned with a torch function or dispatch mode still active, "
                "which would run the candidate's code while its output is read",
            }
        )
        return
    outs = messages.arrays_in(out)
    aliased = [
        [i, j]
        for i, o in enumerate(outs)
        for j, x in enumerate(messages.arrays_in(inputs))
        if messages.shares_memory(o, x)
    ]
    try:
        desc, blob = messages.encode({"out": out, "inputs": inputs})
    except messages.WireError as e:
        send({"op": "error", "status": R.NO_RESULT, "reason": f"no result: {e}"})
        return
    send({"op": "collected", "value": desc, "aliased": aliased}, blob)


class _Quiet:
    """Keeps the candidate's code off this thread between a call's end and its snapshot:
    no trace or profile hook, no garbage collection (so no finalizer or ``gc.callbacks``),
    signals held back. Every function is captured before the candidate is imported."""

    def __init__(self):
        self._trace = (sys.gettrace, sys.settrace)
        self._profile = (sys.getprofile, sys.setprofile)
        self._gc = (gc.isenabled, gc.disable, gc.enable)
        # _signal's own function: signal.pthread_sigmask turns the old mask into enums in
        # Python, 50 us a call, and this runs inside the timed window
        self._mask = getattr(_signal, "pthread_sigmask", None)
        self._all = frozenset(int(s) for s in signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
        torch_c = getattr(sys.modules.get("torch"), "_C", None)
        self._modes = [
            f
            for f in (
                getattr(torch_c, "_len_torch_function_stack", None),
                getattr(torch_c, "_len_torch_dispatch_stack", None),
            )
            if callable(f)
        ]
        self._saved: tuple | None = None

    def enter(self) -> None:
        # set only when there is one: setting raises an audit event, and our hook costs
        # microseconds inside the timed window
        for get, set_ in (self._trace, self._profile):
            if get() is not None:
                set_(None)
        was_enabled = self._gc[0]()
        self._gc[1]()
        old_mask = self._mask(_signal.SIG_BLOCK, self._all) if self._mask else None
        self._saved = (was_enabled, old_mask)

    def leave(self) -> None:
        if self._saved is None:
            return
        was_enabled, old_mask = self._saved
        self._saved = None
        if old_mask is not None:
            self._mask(_signal.SIG_SETMASK, old_mask)
        if was_enabled:
            self._gc[2]()

    def modes(self) -> bool:
        return any(f() for f in self._modes)


def _cpu_clocks() -> Callable[[], int | None]:
    """CPU used so far by this process's threads other than this one, in nanoseconds, at
    the instant the call ended (the parent can only read it later, from outside)."""
    get = getattr(time, "clock_gettime_ns", None)
    process, thread = getattr(time, "CLOCK_PROCESS_CPUTIME_ID", None), getattr(time, "CLOCK_THREAD_CPUTIME_ID", None)
    if get is None or process is None or thread is None:
        return lambda: None

    def others() -> int:
        return get(process) - get(thread)

    return others


def _device_sync() -> Callable | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available():
            return torch.cuda.synchronize
    except Exception:
        pass
    return None


def _l2_flusher(nbytes: int) -> Callable[[], None]:
    """Overwrites a device buffer larger than any L2 (then synchronises), so a call cannot
    profit from its inputs still being cached by the previous one. CUDA only."""
    torch = sys.modules["torch"]
    buf = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    zero, sync = buf.zero_, torch.cuda.synchronize

    def flush() -> None:
        zero()
        sync()

    return flush
