"""The child side of the call-by-call timing protocol (the parent side is :mod:`.timing`).

The parent owns the clock: it sends ``go`` and stops its clock when ``done`` arrives, so
the candidate never holds the stopwatch. This side only runs the call and reports, with
references captured before the candidate was imported:

* ``prepare {seed}``: build fresh inputs with the trusted ``make_inputs(seed, **params)``;
* ``go {nonce}``: call the candidate (synchronising the device when there is one), answer
  ``done`` with the same nonce, the call's duration on a captured clock and on whatever
  ``time.perf_counter`` is *now* (a candidate may have replaced it), and the clock
  functions found replaced;
* ``collect``: send the output and the inputs as they are after the call (the parent
  checks both against its own copies), and which outputs share memory with an input;
* ``load``: install the audit hook and import the candidate (until then ``go`` times a
  no-op, which is how the parent calibrates the protocol's own cost; after it,
  ``go {noop: true}`` still does, so the parent can keep calibrating between calls);
* ``exit``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from pytest_aina.sandbox import frames, wire

#: (module, attribute path) of every clock a candidate might patch to fake its timing
_CLOCKS = [("time", "perf_counter"), ("time", "perf_counter_ns"), ("time", "monotonic"),
           ("time", "monotonic_ns"), ("time", "time"), ("time", "time_ns"), ("time", "process_time"),
           ("torch.cuda", "Event"), ("torch.cuda", "synchronize"), ("torch.cuda", "Event.elapsed_time"),
           ("triton.testing", "do_bench")]


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
    from pytest_aina.sandbox import boot

    clock_ns = time.perf_counter_ns  # captured: the candidate cannot reach this reference
    make_inputs = boot.resolve(config["make_inputs"])
    params = config.get("params", {})
    wire.capture()
    sync = _device_sync()
    flush_bytes = int(config.get("flush_bytes", 256 << 20))
    flush = _l2_flusher(flush_bytes) if sync is not None and flush_bytes else None
    # only what exists now is watched: a module the candidate imports later was not ours
    originals = {(m, p): ref for m, p in _CLOCKS if (ref := _lookup(m, p)) is not None}
    send({"op": "ready", "sync": sync is not None, "l2_flush_bytes": flush_bytes if flush is not None else None})

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
            live = _lookup("time", "perf_counter")
            try:
                l0 = live() if callable(live) else 0.0
                t0 = clock_ns()
                out = (_noop if cmd.get("noop") else fn)(*args, **kwargs)
                if sync is not None:
                    sync()
                t1 = clock_ns()
                l1 = live() if callable(live) else 0.0
            except BaseException as e:
                boot._reserve = None
                status, reason = boot._failure_in_call(e)
                send({"op": "error", "nonce": cmd["nonce"], "status": status, "reason": reason,
                      "traceback": boot._tb(e)})
                continue
            replaced = [f"{m}.{p}" for (m, p), ref in originals.items() if _lookup(m, p) is not ref]
            try:
                live_s = float(l1 - l0)
            except Exception:
                live_s = float("nan")
            send({"op": "done", "nonce": cmd["nonce"], "child_ns": t1 - t0, "live_s": live_s,
                  "replaced": replaced})
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
        elif op == "collect":
            inputs = list(args) + list(kwargs.values())
            outs = wire.arrays_in(out)
            aliased = [[i, j] for i, o in enumerate(outs) for j, x in enumerate(wire.arrays_in(inputs))
                       if wire.shares_memory(o, x)]
            try:
                desc, blob = wire.encode({"out": out, "inputs": inputs})
            except wire.WireError as e:
                send({"op": "error", "status": "no result", "reason": f"no result: {e}"})
                continue
            send({"op": "collected", "value": desc, "aliased": aliased}, blob)
        elif op == "load":
            fn = load()
            args, kwargs, out = (), {}, None
            send({"op": "loaded"})
        elif op == "exit":
            return
        else:
            send({"op": "error", "status": "protocol error", "reason": f"unknown command {op!r}"})


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
