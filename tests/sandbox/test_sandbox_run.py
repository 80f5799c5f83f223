"""run(): results, arguments, the environment allow-list and the protections record."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from sandbox_helpers import need

from pytest_aina.sandbox import Isolation, Limits, SandboxError, run
from pytest_aina.sandbox.parent.childenv import EnvError


def test_a_function_runs_and_returns_its_value(write):
    path = write(
        "cand.py",
        """
        import os
        def add(a, b, *, scale=1):
            print("working in", os.getcwd())
            return {"sum": (a + b) * scale, "cwd": os.getcwd(), "uid": os.getuid()}
    """,
    )
    r = run(f"{path}:add", args=[2, 3], kwargs={"scale": 10})
    assert r.status == "ok", r.reason
    assert r.value["sum"] == 50
    assert "working in" in r.stdout_tail
    assert r.exit.code == 0 and r.exit.signal is None
    assert r.peak_rss_bytes > 0 and r.wall_s > 0
    assert r.cleanup == "complete"
    # the candidate ran in its own folder, which is gone afterwards
    assert os.path.basename(r.value["cwd"]) == "work"
    assert not os.path.exists(r.value["cwd"])


def test_a_module_entry_on_the_pythonpath(write, tmp_path, caps):
    write("lib/pkg_under_test/__init__.py", "")
    write("lib/pkg_under_test/mod.py", "def f():\n    return 'from a package'\n")
    lib = str(tmp_path / "lib")
    r = run("pkg_under_test.mod:f", pythonpath=[lib])
    assert r.status == "ok", r.reason + r.stderr_tail
    assert r.value == "from a package"
    if caps.root:  # pytest's tmp_path is private to root: a dropped uid could not read it
        with pytest.raises(SandboxError, match="not readable by other users"):
            run("pkg_under_test.mod:f", pythonpath=[str(tmp_path)])
    missing = run("pkg_under_test.nope:f", pythonpath=[lib])
    assert missing.status == "import error"
    assert "pkg_under_test.nope" in missing.reason


def test_argv_mode_runs_a_python_command_line():
    ok = run(argv=["-c", "import sys; print('argv', sys.argv[1:])", "x", "y"])
    assert ok.status == "ok" and ok.value == {"exit_code": 0}
    assert "argv ['x', 'y']" in ok.stdout_tail
    failing = run(argv=["-c", "import sys; sys.exit(3)"])
    assert failing.status == "ok" and failing.value == {"exit_code": 3}  # the caller judges exit codes


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(), "exactly one of entry= or argv="),
        (dict(entry="no_colon"), "module:function"),
        (dict(entry="/nonexistent/cand.py:f"), "no such file"),
        (dict(entry="m:f", args=[object()]), "JSON-able"),
        (dict(argv=[]), "non-empty list"),
        (dict(argv=["-m"]), "needs an argument"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_error(bad, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run(**bad)


def test_limits_are_validated():
    with pytest.raises(ValueError, match="Limits.wall_s must be a positive number"):
        Limits(wall_s=0)
    with pytest.raises(ValueError, match="Limits.memory_bytes"):
        Limits(memory_bytes=-1)


def test_a_credential_named_variable_is_refused_not_passed(write):
    path = write("cand.py", "def f():\n    return 1\n")
    with pytest.raises(EnvError, match="MY_API_KEY"):
        run(f"{path}:f", env={"MY_API_KEY": "x"})


def test_the_child_environment_is_an_allow_list(write, planted_secrets, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("SOME_UNRELATED_SETTING", "parent-only")
    path = write(
        "cand.py",
        """
        import os
        def f():
            return dict(os.environ)
    """,
    )
    r = run(f"{path}:f", env={"EXTRA_SETTING": "given"})
    assert r.status == "ok", r.reason
    env = r.value
    assert env["TRITON_INTERPRET"] == "1" and env["EXTRA_SETTING"] == "given"
    assert "SOME_UNRELATED_SETTING" not in env
    for name in planted_secrets:
        assert name not in env
    # every home and cache points into the sandbox folder
    work = env["HOME"]
    for name in ("TMPDIR", "XDG_CACHE_HOME", "TRITON_CACHE_DIR", "TORCH_HOME", "TORCHINDUCTOR_CACHE_DIR"):
        assert env[name].startswith(work + "/"), name


SNOOP = """
import base64, glob, json, os

def f():
    found = {"environ": dict(os.environ)}
    paths = ["/proc/self/environ", "/proc/1/environ", f"/proc/{os.getppid()}/environ"]
    paths += glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/task/*/environ")
    paths += ["/root/.bashrc", "/root/.git-credentials", "/etc/shadow"]
    for p in paths:
        try:
            with open(p, "rb") as fh:
                found[p] = fh.read().decode(errors="replace")
        except OSError as e:
            found[p] = f"unreadable: {e.strerror}"
    print(found)
    # encoded, so that the record's redaction cannot hide a secret it did find
    return base64.b64encode(json.dumps(found).encode()).decode()
"""


@pytest.mark.parametrize(
    "isolation", ["Isolation()", "Isolation(namespaces=False)", "Isolation(namespaces=False, landlock=False)"]
)
def test_a_candidate_looking_for_credentials_finds_none(write, planted_secrets, isolation, caps):
    """The evaluator runs with the secrets in its *initial* environment (what
    /proc/PID/environ shows), as a CI job would. The candidate searches its environment,
    /proc (its own, its parent's, every process's) and dotfiles, and returns all it saw,
    encoded; no planted value is in it, nor anywhere in the record."""
    if not caps.root and "landlock=False" in isolation:
        pytest.skip(
            "not root: with neither namespaces nor Landlock nothing hides /proc/PID/environ of the "
            "evaluator from a child of the same user (see docs/sandbox.md)"
        )
    path = write("snoop.py", SNOOP)
    evaluator = (
        "import json, sys\n"
        "from pytest_aina.sandbox import Isolation, run\n"
        f"r = run({path + ':f'!r}, isolation={isolation})\n"
        "print(json.dumps(r.as_dict()))\n"
    )
    env = dict(os.environ, **planted_secrets)
    proc = subprocess.run([sys.executable, "-c", evaluator], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "ok", record["reason"]
    seen = base64.b64decode(record["value"]).decode()
    assert "PATH" in seen  # it did look
    for name, value in planted_secrets.items():
        assert value not in seen, f"{name} reached the candidate"
        assert value not in proc.stdout, f"{name} reached the record"
        assert name not in json.loads(seen)["environ"]


def test_a_secret_the_candidate_finds_on_disk_is_redacted_from_the_record(write, planted_secrets):
    # suppose a token lies in a file the candidate can read: what it prints is scrubbed
    path = write(
        "leak.py",
        """
        def f():
            text = open("found.txt").read()
            print("found", text)
            raise RuntimeError("token is " + text)
    """,
    )
    r = run(f"{path}:f", files={"found.txt": planted_secrets["GITHUB_TOKEN"]})
    assert r.status == "exception"
    record = json.dumps(r.as_dict())
    assert planted_secrets["GITHUB_TOKEN"] not in record
    assert "[REDACTED]" in r.stdout_tail and "[REDACTED]" in r.reason


def test_the_protections_in_force_are_recorded(write, caps):
    path = write("cand.py", "def f():\n    return 1\n")
    r = run(f"{path}:f")
    p = r.protections
    for key in (
        "pid_namespace",
        "net_namespace",
        "mount_namespace",
        "uid",
        "capabilities",
        "no_new_privs",
        "landlock",
        "rlimits",
        "audit_hook",
        "environment",
        "watchdog",
    ):
        assert key in p, key
    assert p["audit_hook"] is True
    assert p["rlimits"]["core"] == 0 and p["rlimits"]["data"] == Limits().memory_bytes
    assert p["no_new_privs"] is True
    if "pid" in caps.namespaces:
        # verified in the child (its namespace links differ from ours), not assumed
        assert p["pid_namespace"] and p["net_namespace"] and p["mount_namespace"]
    if caps.landlock_abi:
        assert p["landlock"]["fs_write"] and p["landlock"]["fs_read"]
    if caps.root:
        assert p["uid"] is not None or any("uid drop skipped" in n for n in p["notes"])
        assert p["capabilities"] == "none"


def test_without_namespaces_the_record_says_so(write, caps):
    need(caps, "pid")
    path = write("cand.py", "def f():\n    return 1\n")
    r = run(f"{path}:f", isolation=Isolation(namespaces=False))
    assert r.status == "ok", r.reason
    assert r.protections["pid_namespace"] is False and r.protections["net_namespace"] is False


def test_a_required_layer_that_is_off_fails_the_run_instead_of_running_weaker(write, caps):
    path = write("cand.py", "def f():\n    return 1\n")
    r = run(f"{path}:f", isolation=Isolation(namespaces=False, require=("pid_namespace",)))
    assert r.status == "sandbox error"
    assert "pid_namespace" in r.reason


def test_torch_and_triton_run_under_the_default_limits(write, caps):
    """A real kernel evaluation (torch + Triton's interpreter) fits the memory limit,
    with Triton's and torch's caches inside the sandbox folder."""
    path = write(
        "kernel.py",
        """
        import os
        def f():
            import torch, triton, triton.language as tl

            @triton.jit
            def add(x, y, o, n, BLOCK: tl.constexpr):
                i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
                m = i < n
                tl.store(o + i, tl.load(x + i, mask=m) + tl.load(y + i, mask=m), mask=m)

            x, y = torch.randn(3000), torch.randn(3000)
            o = torch.empty_like(x)
            add[(triton.cdiv(3000, 1024),)](x, y, o, 3000, BLOCK=1024)
            status = dict(line.split(":", 1) for line in open("/proc/self/status"))
            return {"close": bool(torch.allclose(o, x + y)), "VmData": status["VmData"].strip(),
                    "triton_cache": os.environ["TRITON_CACHE_DIR"], "home": os.environ["HOME"]}
    """,
    )
    r = run(f"{path}:f", env={"TRITON_INTERPRET": "1"})
    assert r.status == "ok", r.reason + r.stderr_tail
    assert r.value["close"] is True
    assert r.value["triton_cache"].startswith(r.value["home"] + "/")
    print("torch+triton child:", r.value["VmData"], "data,", r.peak_rss_bytes >> 20, "MiB peak RSS")


def test_sandboxes_run_side_by_side(write):
    """The search evaluates several candidates at once: each gets its own uid and folder."""
    import concurrent.futures

    path = write(
        "cand.py",
        """
        import os, time
        def f(i):
            time.sleep(0.2)
            open("mine.txt", "w").write(str(i))
            return {"i": i, "uid": os.getuid(), "cwd": os.getcwd(), "files": os.listdir(".")}
    """,
    )
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda i: run(f"{path}:f", args=[i]), range(3)))
    assert [r.status for r in results] == ["ok"] * 3, [r.reason for r in results]
    assert [r.value["i"] for r in results] == [0, 1, 2]
    assert len({r.value["cwd"] for r in results}) == 3
    if results[0].protections["uid"] is not None:
        assert len({r.value["uid"] for r in results}) == 3
