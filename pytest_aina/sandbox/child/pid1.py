"""PID 1 of the sandbox's PID namespace: a tiny init between the parent and the worker.

When the child starts as PID 1 of a new PID namespace, this process sets up the mount
namespace, forks the worker and stays behind: it reaps orphans, relays the worker's exit
status, counts the processes left, and on exit takes every leftover process with it (a
guarantee the kernel gives for PID namespaces). It also ends everything when the parent
hangs up, since nobody would then enforce the wall clock.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable

from pytest_aina.sandbox.child import confine


def become_init(config: dict, send: Callable[[dict], None], command_fd: int) -> dict:
    """Set up the mount namespace, fork the worker; this process stays PID 1 until the
    worker exits. Returns (in the worker) what the mount set-up did."""
    covered: list[str] = []
    read_only = None
    if config.get("mount_ns"):
        confine.make_mounts_private()
        if config.get("uid") is not None and config.get("expose"):
            covered = confine.expose(config["expose"])
        try:
            read_only = confine.read_only_except(config["work"])
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
    # "at": when the worker's end was counted (the parent splits the exit's time with it)
    exit_frame = {"op": "exit", "leftover": len(left), "leftover_cmds": left[:10], "at": time.monotonic()}
    if status is not None:
        exit_frame["code"] = os.waitstatus_to_exitcode(status)
    try:
        send(exit_frame)
    finally:
        os._exit(0)  # the kernel now kills everything left in the namespace
