"""The child side: the first code that runs in a sandbox, before any candidate code.

Started as ``python -I -B -c <bootstrap> REPORT_FD COMMAND_FD``. It reads its
configuration from the command pipe, and:

1. when it is PID 1 of a new PID namespace, stays behind as a tiny init (:mod:`.pid1`:
   reaps orphans, relays the worker's exit status, and on exit takes every leftover
   process with it, a guarantee the kernel gives for PID namespaces) and forks the worker;
2. confines the worker (:func:`.confine.apply`), reports the layers in force;
3. runs the requested mode: ``call`` (a function, JSON in and out), ``argv`` (a Python
   command line) or ``serve`` (the call-by-call protocol of :mod:`.serve`).

Results go to the report pipe as frames; stdout and stderr are only for humans. A
candidate's failure is described by :mod:`.failure`, the same in every mode.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
import traceback

from pytest_aina import interpreter
from pytest_aina.imports import resolve
from pytest_aina.sandbox import frames
from pytest_aina.sandbox import result as R
from pytest_aina.sandbox.child import audit, confine, failure, pid1, serve

#: When this process reached each step of its start, on the system-wide monotonic clock
#: (the parent's too): the template adds its own steps before calling :func:`main`. Sent
#: with the ``confined`` frame, so the parent can split a start-up into its phases.
STAMPS: dict[str, float] = {}


class Sender:
    """Writes frames to the report pipe; safe to call from the audit hook and threads."""

    def __init__(self, fd: int):
        self.fd = fd
        self._lock = threading.Lock()
        self._write = os.write  # captured: a candidate replacing os.write does not change us

    def __call__(self, header: dict, blob: bytes = b"") -> None:
        data = frames.encode(header, blob)
        with self._lock:
            frames.write_all(self.fd, data, self._write)


def main(report_fd: int, command_fd: int) -> None:
    STAMPS["boot"] = time.monotonic()
    send = Sender(report_fd)
    reader = frames.Reader(command_fd)
    config, _ = reader.read()
    STAMPS["config"] = time.monotonic()
    try:
        if config.get("init") and os.getpid() == 1:
            mounts = pid1.become_init(config, send, command_fd)
        else:
            mounts = {"exposed": [], "read_only_root": None}
        STAMPS["worker"] = time.monotonic()
        layers = confine.apply(config)
        layers.update(mounts)
        STAMPS["confined"] = time.monotonic()
        send({"op": "confined", "layers": layers, "stamps": dict(STAMPS)})
        _load_path(config)
        mode = config["mode"]
        if mode == "call":
            _call(config, send)
        elif mode == "argv":
            _argv(config, send)
        elif mode == "serve":
            serve.serve(config, send, reader, load=lambda: _load_candidate(config, send))
        else:
            send({"op": "failed", "status": R.SANDBOX_ERROR, "reason": f"unknown mode {mode!r}"})
    except BaseException as e:
        # the candidate's own errors are caught where it runs: this is the harness failing
        traceback.print_exc()
        send(
            {
                "op": "failed",
                "status": R.SANDBOX_ERROR,
                "traceback": failure.traceback_text(e),
                "reason": f"sandbox error: the sandbox's own code failed: {type(e).__name__}: {e}",
            }
        )
    finally:
        _exit(0)


def _exit(code: int) -> None:
    # os._exit: a candidate's atexit handlers and non-daemon threads must not keep us alive
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


# -- modes ---------------------------------------------------------------------------------


def _load_path(config: dict) -> None:
    for p in reversed(config.get("pythonpath", [])):
        if p not in sys.path:
            sys.path.insert(0, p)


def _install_audit(config: dict, send: Sender) -> None:
    if not config.get("audit"):
        return
    audit.install(config["write_roots"], lambda kind, detail: send({"op": "violation", "kind": kind, "detail": detail}))


def _load_candidate(config: dict, send: Sender):
    """Install the audit hook, then import the entry; on failure report and exit."""
    failure.hold_reserve()
    _install_audit(config, send)
    try:
        fn = resolve(config["entry"])
    except BaseException as e:
        failure.release_reserve()
        status, reason = failure.at_import(e)
        send({"op": "failed", "status": status, "reason": reason, "traceback": failure.traceback_text(e)})
        _exit(0)
    _faithful_interpreter()
    return fn


def _faithful_interpreter() -> None:
    """An interpreted candidate runs with GPU semantics and the memory sanitizer, as under
    ``pytest --aina`` (docs/interpreter.md); the patches reach kernels already defined, and a
    candidate that does not use Triton pays nothing."""
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") == "1":
        interpreter.install(sanitize=True)


def _call(config: dict, send: Sender) -> None:
    fn = _load_candidate(config, send)
    try:
        value = fn(*config.get("args", []), **config.get("kwargs", {}))
    except BaseException as e:
        failure.release_reserve()
        status, reason = failure.in_call(e)
        send({"op": "failed", "status": status, "reason": reason, "traceback": failure.traceback_text(e)})
        return
    try:
        json.dumps(value, allow_nan=True)
        send({"op": "result", "value": value})
    except (TypeError, ValueError):
        send(
            {
                "op": "failed",
                "status": R.NO_RESULT,
                "reason": f"no result: the function returned a {type(value).__name__}, which is not JSON-able",
            }
        )


def _argv(config: dict, send: Sender) -> None:
    argv = list(config["argv"])
    _install_audit(config, send)
    code: object = 0
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1]] + argv[2:]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        elif argv[0] == "-c":
            sys.argv = ["-c"] + argv[2:]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.argv = argv
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        code = e.code
    except BaseException as e:
        status, reason = failure.at_import(e) if isinstance(e, SyntaxError) else failure.in_call(e)
        send({"op": "failed", "status": status, "reason": reason, "traceback": failure.traceback_text(e)})
        return
    if code is None:
        code = 0
    if not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    send({"op": "result", "value": {"exit_code": code}})


def bootstrap() -> None:
    main(int(sys.argv[1]), int(sys.argv[2]))
