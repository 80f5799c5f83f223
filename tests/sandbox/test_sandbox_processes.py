"""No process is left behind: daemons, SIGTERM-ignoring grandchildren, fork bombs.

Each test plants a unique marker in the command line of the processes it starts and then
looks for it in every process on the machine, across namespaces and uids.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from sandbox_helpers import need, processes_with

from pytest_aina.sandbox import Isolation, Limits, run
from pytest_aina.sandbox.parent import procs

#: Double fork + setsid + SIGTERM ignored + exec: the classic daemon that escapes a process
#: group and a session. It returns only once the daemon is running.
DAEMON = """
import os, signal, sys, time

def f(marker, detach=True):
    if os.fork() == 0:
        if detach:
            os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c",
                     "import signal, time, pathlib\\n"
                     "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
                     "pathlib.Path('daemon.ready').write_text('up')\\n"
                     f"#{marker}\\n"
                     "while True: time.sleep(0.1)"])
        os._exit(0)
    for _ in range(500):
        if os.path.exists("daemon.ready"):
            return "daemon started"
        time.sleep(0.01)
    return "daemon did not start"
"""


def test_a_daemonised_grandchild_is_killed_and_reported(write):
    marker = f"aina-daemon-{secrets.token_hex(6)}"
    r = run(f"{write('daemon.py', DAEMON)}:f", args=[marker])
    assert r.status == "leftover processes", r.reason
    assert r.leftover >= 1
    assert r.cleanup == "complete"
    assert processes_with(marker) == []


def test_without_a_pid_namespace_a_daemon_that_left_the_session_is_still_found(write, caps):
    """With the unique uid as the handle, setsid() does not hide a process."""
    need(caps, "root")
    trial = run(f"{write('trivial.py', 'def f():  return 1')}:f", isolation=Isolation(namespaces=False))
    if trial.protections["uid"] is None:
        # this machine's Python lives where another uid cannot read it, and without a mount
        # namespace it cannot be exposed: a daemon would escape, so do not start one
        pytest.skip("uid drop unavailable without namespaces here: " + "; ".join(trial.protections["notes"]))
    marker = f"aina-daemon-{secrets.token_hex(6)}"
    r = run(f"{write('daemon.py', DAEMON)}:f", args=[marker], isolation=Isolation(namespaces=False))
    assert r.status == "leftover processes", r.reason
    assert processes_with(marker) == []


def test_with_neither_namespaces_nor_a_uid_a_grandchild_in_the_session_is_killed(write):
    marker = f"aina-daemon-{secrets.token_hex(6)}"
    r = run(
        f"{write('daemon.py', DAEMON)}:f",
        args=[marker],
        kwargs={"detach": False},
        isolation=Isolation(namespaces=False, drop_uid=False),
    )
    assert r.status == "leftover processes", r.reason
    assert processes_with(marker) == []
    assert "by session only" in r.cleanup  # and the record says how weak that was


def test_a_daemon_left_by_a_hanging_candidate_dies_with_it(write):
    marker = f"aina-daemon-{secrets.token_hex(6)}"
    path = write(
        "hang.py",
        DAEMON
        + """
def g(marker):
    f(marker)
    while True:
        time.sleep(0.1)
""",
    )
    r = run(f"{path}:g", args=[marker], limits=Limits(wall_s=1.5))
    assert r.status == "timeout"
    assert processes_with(marker) == []


def test_a_fork_bomb_is_stopped_and_recorded(write, caps):
    need(caps, "root")  # RLIMIT_NPROC binds only a non-root uid: without one a bomb is not bounded
    path = write(
        "bomb.py",
        """
        import os, time
        def f():
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.01)
    """,
    )
    r = run(f"{path}:f", limits=Limits(wall_s=20, max_processes=16, max_tasks=64))
    uid = r.protections["uid"]
    if uid is None:
        pytest.skip("no unique uid here: a fork bomb is not bounded by RLIMIT_NPROC")
    assert r.status == "fork bomb", r.reason
    assert r.reason.startswith("fork bomb: ")
    assert r.cleanup == "complete"
    # the bomb's processes are forks (no marker to grep): the run's uid is their handle
    assert [p for p in procs.by_uid(uid) if not procs.is_zombie(p)] == []


def test_if_the_evaluator_dies_the_sandbox_dies_with_it(write, caps):
    """Nobody would enforce the wall clock any more: the child's init notices the parent's
    end of the command pipe hang up and takes the whole namespace down."""
    need(caps, "pid")
    marker = f"aina-orphan-{secrets.token_hex(6)}"
    path = write(
        "hang.py",
        DAEMON
        + """
def g(marker):
    f(marker)
    while True:
        time.sleep(0.1)
""",
    )
    base = tempfile.mkdtemp(prefix="aina-test-base-")  # a killed evaluator cannot remove its folder
    os.chmod(base, 0o711)
    evaluator = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "from pytest_aina.sandbox import run, Limits\n"
                f"run({path + ':g'!r}, args=[{marker!r}], limits=Limits(wall_s=120), base_dir={base!r})\n"
            ),
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not processes_with(marker):
            assert time.monotonic() < deadline, "the candidate's daemon never started"
            assert evaluator.poll() is None, "the evaluator ended early"
            time.sleep(0.05)
    finally:
        evaluator.kill()  # SIGKILL: no cleanup code of the evaluator runs
        evaluator.wait()
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(base, ignore_errors=True)
    assert processes_with(marker) == []


ADOPTED = """
import os, time

def f():
    r, w = os.pipe()
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(0.1)  # its parent has exited: it is an orphan now
            os.write(w, f"{os.getpid()} {os.getppid()}".encode())
            os._exit(0)
        os._exit(0)
    os.wait()
    os.close(w)
    pid, ppid = map(int, os.read(r, 64).split())
    # only a parent can wait for it: adopted, it is ours (and gone before we return)
    os.waitpid(pid, 0)
    return ppid == os.getpid()
"""


@pytest.mark.parametrize("isolation", [Isolation(), Isolation(namespaces=False)], ids=["namespaces", "no namespaces"])
def test_an_orphan_is_adopted_by_the_serving_process_not_the_machines_init(write, isolation):
    # so it stays in the sandbox's tree while it runs and once it has exited (a zombie there
    # until the end): found, killed, and its CPU time on the sandbox's clocks, even where
    # the machine's init would have reaped it at once (test_sandbox_timing's orphan test)
    r = run(f"{write('adopted.py', ADOPTED)}:f", isolation=isolation)
    assert r.status == "ok", r.reason
    assert r.protections["subreaper"] is True
    assert r.value is True
