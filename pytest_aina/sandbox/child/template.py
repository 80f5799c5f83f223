"""The warm template: a process that imports the heavy modules once and forks sandboxes.

Started by :class:`pytest_aina.sandbox.parent.warm.Template` as
``python -I -B -c <bootstrap> SOCKET_FD``. It imports what it is told to preload (torch,
Triton, pytest, Hypothesis, the plugin: trusted code only), then answers requests on a
``SOCK_SEQPACKET`` socket, one JSON message each:

* ``spawn {env, cwd, namespaces, user_namespace}`` with four file descriptors attached (report pipe,
  command pipe, stdout, stderr): fork a child that becomes exactly what a cold start
  would have been, a new session whose process runs :func:`.boot.main` (behind a PID-1
  init in fresh PID, mount, network and IPC namespaces when asked, inside a user namespace
  that maps its root to our uid when we are not root), and answer its pid
  and the template's resident memory (what the child shares with us);
* ``prepare {entry, args}``: call one of our own trusted functions (``module:function``)
  before the forks, so that each child inherits its work (a parsed spec);
* ``poll {pid}``: the child's wait status, once it has ended;
* ``exit``.

The template never runs candidate code: it never imports a candidate, never calls
:func:`.boot.main` itself, and everything the child does happens after the fork, in the
child. A fork copies only the calling thread, so before each one the template checks that
it has no other thread (``/proc/self/task``) and that CUDA is not initialised; when either
is false it answers ``cold`` with the reason and the parent starts that child the cold way.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback

from pytest_aina.imports import resolve
from pytest_aina.sandbox.child import boot

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x08000000, 0x40000000, 0x20000000
CLONE_NEWUSER = 0x10000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
_MAX_MESSAGE = 1 << 20


def fork_unsafe() -> str | None:
    """Why forking this process now would not give a sound child, or None."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        threads = 1
    if threads > 1:
        return (
            f"{threads} threads run in the template (a fork copies only the calling thread: a lock "
            "another one holds would stay locked in the child)"
        )
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is not None and cuda.is_initialized():
            return "CUDA is initialised in the template (a forked child cannot use the parent's CUDA context)"
    except Exception as e:  # a broken torch: say so rather than fork blind
        return f"could not tell whether CUDA is initialised in the template: {type(e).__name__}: {e}"
    return None


def _status_bytes(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _resident_bytes() -> int:
    return _status_bytes("VmRSS")


def _send(sock: socket.socket, msg: dict) -> None:
    sock.send(json.dumps(msg).encode())


def main(sock_fd: int) -> None:
    sock = socket.socket(fileno=sock_fd)
    config = json.loads(sock.recv(_MAX_MESSAGE))
    for p in reversed(config.get("pythonpath", [])):
        if p not in sys.path:
            sys.path.insert(0, p)
    start = time.monotonic()
    errors = {}
    for name in config.get("preload", []):
        try:
            importlib.import_module(name)
        except Exception as e:  # a missing optional module costs its import later, nothing else
            errors[name] = f"{type(e).__name__}: {e}"
    # Everything imported so far moves to the collector's permanent generation: a child's
    # collections then skip it, instead of walking (and by writing the object headers,
    # copying page by page) the template's whole heap: measured 0.7 s per gc.collect().
    gc.collect()
    gc.freeze()
    _send(
        sock,
        {
            "op": "ready",
            "pid": os.getpid(),
            "import_s": time.monotonic() - start,
            "errors": errors,
            "unsafe": fork_unsafe(),
            "rss": _resident_bytes(),
            "data": _status_bytes("VmData"),  # what a child's RLIMIT_DATA starts from
            "threads": len(os.listdir("/proc/self/task")),
        },
    )
    ended: dict[int, dict] = {}
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 8)
        except OSError:
            data, fds = b"", []
        if not data:  # the parent is gone: so are we (our children die with us, PDEATHSIG)
            os._exit(0)
        _reap(ended)
        msg = json.loads(data)
        op = msg.get("op")
        if op == "spawn":
            why = fork_unsafe()
            if why is not None:
                for fd in fds:
                    os.close(fd)
                _send(sock, {"op": "cold", "reason": why})
                continue
            rss = _resident_bytes()
            pid = os.fork()
            if pid == 0:
                _become_child(sock, msg, fds)  # never returns
            for fd in fds:
                os.close(fd)
            _send(sock, {"op": "spawned", "pid": pid, "rss": rss})
        elif op == "prepare":
            _send(sock, _prepare(msg))
        elif op == "poll":
            pid = int(msg["pid"])
            _reap(ended)
            _send(sock, ended.pop(pid, {"op": "running", "pid": pid}))
        elif op == "exit":
            os._exit(0)
        else:
            _send(sock, {"op": "error", "reason": f"unknown request {op!r}"})


def _prepare(msg: dict) -> dict:
    """Call a trusted ``module:function`` of ours with JSON arguments (work every child
    would otherwise repeat, such as parsing a spec), then freeze what it made as after
    the imports. Never a candidate's code: the parent names the function."""
    try:
        resolve(msg["entry"])(*msg.get("args", []))
    except Exception as e:  # the children then do the work themselves, and report its failure
        return {"op": "prepared", "error": f"{type(e).__name__}: {e}"}
    gc.collect()
    gc.freeze()
    return {"op": "prepared", "error": None}


def _reap(ended: dict[int, dict]) -> None:
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ended[pid] = {"op": "ended", "pid": pid, "status": status, "cpu_s": usage.ru_utime + usage.ru_stime}


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _become_child(sock: socket.socket, msg: dict, fds: list[int]) -> None:
    """In the forked child: become what ``unshare ... python -c <bootstrap>`` would have
    started, then run the bootstrap (which confines before any candidate code)."""
    boot.STAMPS["forked"] = time.monotonic()
    try:
        sock.close()  # the candidate must never reach the template
        report_fd, command_fd, out_fd, err_fd = fds
        os.setsid()  # the parent kills the sandbox by process group, as with a cold start
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        keep = {0, 1, 2, report_fd, command_fd}
        for name in os.listdir("/proc/self/fd"):  # nothing the template opened stays open
            fd = int(name)
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        libc = _libc()
        # with the template gone nobody could answer for this child: it goes too
        _check(libc.prctl(1, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        os.chdir(msg["cwd"])
        os.environ.clear()
        os.environ.update(msg["env"])
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        if not msg.get("namespaces"):
            boot.main(report_fd, command_fd)  # ends the process
        boot.STAMPS["unshare"] = time.monotonic()
        # as `unshare --fork --kill-child --pid --mount --mount-proc --net --ipc --propagation private`,
        # with `--map-root-user` when we are not root: a user namespace, created first and
        # owning the others, gives the rights to set them up (never more than our own uid's
        # outside: it maps its root to our uid and nothing else)
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
        user_ns = bool(msg.get("user_namespace"))
        uid, gid = os.getuid(), os.getgid()
        _check(libc.unshare(flags | (CLONE_NEWUSER if user_ns else 0)), "unshare")
        if user_ns:
            for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
            # a change of credentials can clear the parent-death signal: set it again
            _check(libc.prctl(1, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        _check(libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None), "mount --make-rprivate /")
        pid = os.fork()
        if pid == 0:
            _check(libc.prctl(1, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
            _check(libc.mount(b"none", b"/proc", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None), "mount /proc")
            flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
            _check(libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(flags), None), "mount proc")
            boot.STAMPS["namespaces"] = time.monotonic()
            boot.main(report_fd, command_fd)  # PID 1 of the new namespace: the init, then the worker
        os.close(report_fd)
        os.close(command_fd)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):  # end the way the init ended, as unshare does
            os.kill(os.getpid(), os.WTERMSIG(status))
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(70)


def bootstrap() -> None:
    main(int(sys.argv[1]))
