"""A candidate may write only in its own folder and may not use the network, whichever
way it tries: through Python (the audit hook refuses and records it), through ctypes or
a shell (the OS layers refuse it). Each test looks at the world afterwards, not only at
what the candidate says."""

from __future__ import annotations

import os

import pytest
from sandbox_helpers import need

from pytest_aina.sandbox import Isolation, run

WRITER = """
import ctypes, os, subprocess

def f(target):
    tried = {}
    def attempt(name, action):
        try:
            action()
            tried[name] = "wrote"
        except BaseException as e:
            tried[name] = f"{type(e).__name__}: {e}"[:200]

    def via_ctypes():
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.open((target + ".ctypes").encode(), os.O_WRONLY | os.O_CREAT, 0o644)
        if fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        os.close(fd)

    attempt("open", lambda: open(target + ".open", "w").write("x"))
    attempt("os.open", lambda: os.close(os.open(target + ".osopen", os.O_WRONLY | os.O_CREAT)))
    attempt("rename-in", lambda: (open("mine", "w").close(), os.replace("mine", target + ".renamed")))
    attempt("symlink-escape", lambda: (os.symlink(target + ".viasymlink", "link"), open("link", "w").write("x")))
    attempt("ctypes", via_ctypes)
    attempt("shell", lambda: subprocess.run(["sh", "-c", f"echo x > {target}.shell"], check=True,
                                            capture_output=True))
    attempt("inside", lambda: open("allowed.txt", "w").write("fine"))
    return tried
"""

NETWORK = """
import socket, subprocess, sys

def f(port):
    tried = {}
    def attempt(name, action):
        try:
            action()
            tried[name] = "connected"
        except BaseException as e:
            tried[name] = f"{type(e).__name__}: {e}"[:200]

    attempt("socket", lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close())
    raw = socket.socket()
    attempt("raw-connect", lambda: raw.connect(("127.0.0.1", port)))
    attempt("subprocess", lambda: subprocess.run(
        [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"],
        check=True, capture_output=True, timeout=10))
    return tried
"""

# configurations, strongest first; each names the layers it needs
CONFIGS = {
    "all layers": (Isolation(), ("pid", "landlock")),
    "landlock, no namespaces": (Isolation(namespaces=False), ("landlock",)),
    "namespaces, no landlock": (Isolation(landlock=False), ("pid",)),
}


def _written(target: str) -> list[str]:
    folder, stem = os.path.split(target)
    return sorted(n for n in os.listdir(folder) if n.startswith(stem))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_no_write_lands_outside_the_sandbox(write, open_folder, caps, config):
    isolation, needs = CONFIGS[config]
    need(caps, *needs)
    target = os.path.join(open_folder, "escape")
    r = run(f"{write('writer.py', WRITER)}:f", args=[target], isolation=isolation)
    assert _written(target) == []
    assert r.status == "write outside sandbox"
    assert r.reason.startswith("write outside sandbox: open " + target)
    kinds = {v["kind"] for v in r.violations}
    assert kinds == {"write outside sandbox"}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_the_os_layers_hold_where_the_hook_is_bypassed(write, open_folder, caps, config):
    """With the audit hook off, only the OS layers stand: ctypes and a shell still fail,
    and the candidate's own folder stays writable."""
    isolation, needs = CONFIGS[config]
    need(caps, *needs)
    target = os.path.join(open_folder, "escape")
    isolation = Isolation(**{**isolation.__dict__, "audit_hook": False})
    r = run(f"{write('writer.py', WRITER)}:f", args=[target], isolation=isolation)
    assert r.status == "ok", r.reason
    assert _written(target) == []
    assert r.value["inside"] == "wrote"
    for how in ("open", "os.open", "ctypes", "shell", "rename-in", "symlink-escape"):
        assert r.value[how] != "wrote", how


def test_the_audit_hook_alone_is_only_a_tripwire(write, open_folder):
    """Documented weakness: with every OS layer off, the hook still refuses Python's own
    writes (and records them) but ctypes and a subprocess get through. This is why the OS
    layers exist; if this test starts failing, the docs need updating."""
    target = os.path.join(open_folder, "escape")
    r = run(
        f"{write('writer.py', WRITER)}:f",
        args=[target],
        isolation=Isolation(namespaces=False, drop_uid=False, landlock=False),
    )
    assert r.status == "write outside sandbox"
    assert _written(target) == ["escape.ctypes", "escape.shell"]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_no_connection_reaches_a_server_on_loopback(write, loopback_server, caps, config):
    isolation, needs = CONFIGS[config]
    need(caps, *needs)
    if config == "landlock, no namespaces":
        need(caps, "landlock_net")
    port, accepted = loopback_server
    r = run(f"{write('net.py', NETWORK)}:f", args=[port], isolation=isolation)
    assert accepted == []
    assert r.status == "network attempt"
    assert r.reason.startswith("network attempt: socket.")
    assert str(port) in r.reason or "127.0.0.1" in r.reason


def test_the_os_layers_stop_the_network_where_the_hook_is_bypassed(write, loopback_server, caps):
    need(caps, "net")
    port, accepted = loopback_server
    r = run(f"{write('net.py', NETWORK)}:f", args=[port], isolation=Isolation(audit_hook=False))
    assert r.status == "ok", r.reason
    assert accepted == []
    assert all(v != "connected" for v in r.value.values()), r.value


def test_reading_is_confined_to_what_a_kernel_needs(write, tmp_path, caps):
    need(caps, "landlock")
    private = tmp_path / "notes"
    private.mkdir()
    (private / "token.txt").write_text("not for candidates")
    os.chmod(private, 0o755)
    os.chmod(private / "token.txt", 0o644)
    path = write(
        "reader.py",
        """
        import os
        def f(paths):
            out = {}
            for p in paths:
                try:
                    with open(p) as fh:
                        out[p] = "read: " + fh.read(20)
                except OSError as e:
                    out[p] = f"refused: {e.strerror}"
            return out
    """,
    )
    probe_paths = [str(private / "token.txt"), "/root/.bash_history", os.__file__]
    r = run(f"{path}:f", args=[probe_paths])
    assert r.status == "ok", r.reason
    assert r.value[str(private / "token.txt")].startswith("refused")
    assert r.value["/root/.bash_history"].startswith("refused")
    assert r.value[os.__file__].startswith("read")  # the standard library stays readable
