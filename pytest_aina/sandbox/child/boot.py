"""The child side: the first code that runs in a sandbox, before any candidate code.

Started as ``python -I -B -c <bootstrap> REPORT_FD COMMAND_FD``. It reads its
configuration from the command pipe, and:

1. when it is PID 1 of a new PID namespace, stays behind as a tiny init (reaps orphans,
   relays the worker's exit status, and on exit takes every leftover process with it, a
   guarantee the kernel gives for PID namespaces) and forks the worker;
2. confines the worker (:func:`confine`), reports the layers in force;
3. runs the requested mode: ``call`` (a function, JSON in and out), ``argv`` (a Python
   command line) or ``serve`` (the call-by-call protocol of :mod:`.serve`).

Results go to the report pipe as frames; stdout and stderr are only for humans.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import threading
import traceback

from pytest_aina.sandbox import frames

_MEMORY_WORDS = ("can't allocate memory", "cannot allocate memory", "out of memory", "bad_alloc",
                 "failed to allocate")


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
    send = Sender(report_fd)
    reader = frames.Reader(command_fd)
    config, _ = reader.read()
    try:
        if config.get("init") and os.getpid() == 1:
            mounts = _become_init(config, send, command_fd)
        else:
            mounts = {"exposed": [], "read_only_root": None}
        layers = confine(config)
        layers.update(mounts)
        send({"op": "confined", "layers": layers})
        _load_path(config)
        mode = config["mode"]
        if mode == "call":
            _call(config, send)
        elif mode == "argv":
            _argv(config, send)
        elif mode == "serve":
            from pytest_aina.sandbox.child import serve

            serve.serve(config, send, reader, load=lambda: _load_candidate(config, send))
        else:
            send({"op": "failed", "status": "sandbox error", "reason": f"unknown mode {mode!r}"})
    except BaseException as e:
        # the candidate's own errors are caught where it runs: this is the harness failing
        traceback.print_exc()
        send({"op": "failed", "status": "sandbox error", "traceback": _tb(e),
              "reason": f"sandbox error: the sandbox's own code failed: {type(e).__name__}: {e}"})
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


# -- PID 1 -------------------------------------------------------------------------------

def _become_init(config: dict, send: Sender, command_fd: int) -> dict:
    """Set up the mount namespace, fork the worker; this process stays PID 1 until the
    worker exits. Returns (in the worker) what the mount set-up did."""
    from pytest_aina.sandbox.child import confine as c

    covered: list[str] = []
    read_only = None
    if config.get("mount_ns"):
        c.make_mounts_private()
        if config.get("uid") is not None and config.get("expose"):
            covered = c.expose(config["expose"])
        try:
            read_only = c.read_only_except(config["work"])
        except OSError as e:
            read_only = f"failed: {e}"
    pid = os.fork()
    if pid == 0:
        return {"exposed": covered, "read_only_root": read_only}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    # The parent keeps the command pipe open for as long as it watches us: a hang-up means
    # it is gone (killed, crashed) and nobody would enforce the wall clock, so end it all.
    # Registered with no events, poll() reports only the hang-up, never pending commands.
    # SIGCHLD writes to a pipe the same poll() watches, so the worker's exit wakes us at once.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    watch = select.poll()
    watch.register(command_fd, 0)
    watch.register(wake_r, select.POLLIN)
    status = None
    while status is None:
        for fd, _ in watch.poll(1000):
            if fd == command_fd:
                os.kill(pid, signal.SIGKILL)
            else:
                os.read(wake_r, 512)
        while True:
            try:
                p, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                p = -1
                break
            if p == 0 or p == pid:
                break
        if p == pid:
            status = st
        elif p == -1:
            break
    os.close(command_fd)
    while True:  # reap zombies already reparented to us, so they do not count as leftovers
        try:
            p, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if p == 0:
            break
    left = []
    for d in os.listdir("/proc"):
        if d.isdigit() and d != "1":
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            left.append(cmd.strip()[:200])
    exit_frame = {"op": "exit", "leftover": len(left), "leftover_cmds": left[:10]}
    if status is not None:
        exit_frame["code"] = os.waitstatus_to_exitcode(status)
    try:
        send(exit_frame)
    finally:
        os._exit(0)  # the kernel now kills everything left in the namespace


# -- confinement ---------------------------------------------------------------------------

def confine(config: dict) -> dict:
    from pytest_aina.sandbox.child import confine as c
    from pytest_aina.sandbox.child import landlock

    layers: dict = {}
    work = config["work"]
    try:
        layers["rlimits"] = c.set_limits(config.get("rlimits", {}))
    except (OSError, ValueError) as e:
        layers["rlimits"] = None
        layers["rlimits_error"] = str(e)
    os.chdir(work)
    os.umask(0o077)
    try:
        c.prctl(c.PR_SET_NO_NEW_PRIVS, 1)
        layers["no_new_privs"] = True
    except OSError as e:
        layers["no_new_privs"] = False
        layers["no_new_privs_error"] = str(e)
    uid, gid = config.get("uid"), config.get("gid")
    layers["uid"] = None
    if uid is not None and os.geteuid() == 0:
        try:
            c.drop_to(uid, gid)
            layers["uid"] = uid
        except OSError as e:
            layers["uid_error"] = str(e)
            os.chown(work, 0, 0)  # we stay root (without capabilities): keep our folder writable
    if os.geteuid() == 0:
        try:
            c.drop_capabilities()
        except OSError as e:
            layers["capabilities_error"] = str(e)
    layers["capabilities"] = c.capabilities_effective()
    try:
        c.prctl(c.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which resets it
    except OSError:
        pass
    for sub in ("tmp", ".cache", ".config"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    ll = config.get("landlock")
    layers["landlock"] = None
    if ll is not None:
        try:
            applied = landlock.restrict_self(landlock.Policy(write=ll["write"], read=ll.get("read")))
            layers["landlock"] = applied.as_dict()
        except (OSError, landlock.LandlockError) as e:
            layers["landlock_error"] = str(e)
    layers["namespaces"] = {}
    for name in ("net", "pid", "mnt", "ipc", "user"):
        try:
            layers["namespaces"][name] = os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            pass
    return layers


# -- modes ---------------------------------------------------------------------------------

def _load_path(config: dict) -> None:
    for p in reversed(config.get("pythonpath", [])):
        if p not in sys.path:
            sys.path.insert(0, p)


def _install_audit(config: dict, send: Sender) -> None:
    if not config.get("audit"):
        return
    from pytest_aina.sandbox.child import audit

    audit.install(config["write_roots"], lambda kind, detail: send({"op": "violation", "kind": kind,
                                                                     "detail": detail}))


def resolve(entry: str):
    """``module:attr`` or ``/path/file.py:attr`` (attr may be dotted)."""
    import importlib
    import importlib.util

    target, sep, attr = entry.rpartition(":")
    if not sep or not target or not attr:
        raise ValueError(f"entry {entry!r} must be 'module:function' or 'file.py:function'")
    if target.endswith(".py"):
        name = os.path.splitext(os.path.basename(target))[0]
        spec = importlib.util.spec_from_file_location(name, target)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _failure_at_import(e: BaseException) -> tuple[str, str]:
    if isinstance(e, SyntaxError):
        where = f"{os.path.basename(e.filename or '?')} line {e.lineno}"
        return "syntax error", f"syntax error in {where}: {e.msg}"
    if isinstance(e, MemoryError):
        return "memory limit", "memory limit: MemoryError while importing the candidate"
    if isinstance(e, ImportError):
        return "import error", f"import error: {type(e).__name__}: {e}"
    return "import error", f"import error: the module raised {type(e).__name__}: {e}"


def _failure_in_call(e: BaseException) -> tuple[str, str]:
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError)
                                      and any(w in str(e).lower() for w in _MEMORY_WORDS)):
        return "memory limit", f"memory limit: {type(e).__name__}: {str(e)[:300]}"
    if isinstance(e, OSError) and e.errno == errno.EFBIG:
        return "file size limit", f"file size limit: a write went past the file-size limit ({e})"
    if isinstance(e, SystemExit):
        return "no result", f"no result: the candidate called sys.exit({e.code!r}) instead of returning"
    if isinstance(e, PermissionError) and "aina sandbox:" in str(e):
        return "exception", f"exception: {e}"
    return "exception", f"exception: {type(e).__name__}: {str(e)[:500]}"


_reserve: bytearray | None = None


def _load_candidate(config: dict, send: Sender):
    """Install the audit hook, then import the entry; on failure report and exit."""
    global _reserve
    _reserve = bytearray(1 << 20)  # released on MemoryError so the report can still be built
    _install_audit(config, send)
    try:
        fn = resolve(config["entry"])
    except BaseException as e:
        _reserve = None
        status, reason = _failure_at_import(e)
        send({"op": "failed", "status": status, "reason": reason, "traceback": _tb(e)})
        _exit(0)
    _faithful_interpreter()
    return fn


def _faithful_interpreter() -> None:
    """An interpreted candidate runs with GPU semantics and the memory sanitizer, as under
    ``pytest --aina`` (docs/interpreter.md); the patches reach kernels already defined, and a
    candidate that does not use Triton pays nothing."""
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") == "1":
        from pytest_aina import interpreter

        interpreter.install(sanitize=True)


def _tb(e: BaseException) -> str:
    return "".join(traceback.format_exception(e))[-4000:]


def _call(config: dict, send: Sender) -> None:
    global _reserve
    fn = _load_candidate(config, send)
    try:
        value = fn(*config.get("args", []), **config.get("kwargs", {}))
    except BaseException as e:
        _reserve = None
        status, reason = _failure_in_call(e)
        send({"op": "failed", "status": status, "reason": reason, "traceback": _tb(e)})
        return
    import json

    try:
        json.dumps(value, allow_nan=True)
        send({"op": "result", "value": value})
    except (TypeError, ValueError):
        send({"op": "failed", "status": "no result",
              "reason": f"no result: the function returned a {type(value).__name__}, which is not JSON-able"})


def _argv(config: dict, send: Sender) -> None:
    import runpy

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
        status, reason = _failure_at_import(e) if isinstance(e, SyntaxError) else _failure_in_call(e)
        send({"op": "failed", "status": status, "reason": reason, "traceback": _tb(e)})
        return
    if code is None:
        code = 0
    if not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    send({"op": "result", "value": {"exit_code": code}})


def bootstrap() -> None:
    main(int(sys.argv[1]), int(sys.argv[2]))
