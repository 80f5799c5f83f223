"""Warm templates: children forked from a process that imported torch once, confined as
cold ones, and nothing one candidate does reaches the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_helpers import need

from pytest_aina.sandbox import Limits, Template, run

#: what a candidate sees of its process: enough to tell a warm start and leaked state apart
PROBE = """
import os, sys, threading
def _link(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
def look():
    torch_preloaded = "torch" in sys.modules  # before this module imports anything heavy
    import torch
    return {
        "torch_preloaded": torch_preloaded,
        "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
        "env": sorted(os.environ),
        "allclose_honest": torch.allclose(torch.zeros(3), torch.ones(3)) is False,
        "marked": hasattr(torch, "_aina_hostile"),
        "cache": getattr(sys.modules.get("json"), "_aina_cache", None),
        "threads": threading.active_count(),
        "tasks": len(os.listdir("/proc/self/task")),
        "fds": [_link(f) for f in os.listdir("/proc/self/fd")],
    }
"""

#: patches torch, fills a module global of a preloaded module, leaves a thread and a process
HOSTILE = """
import json, os, subprocess, sys, threading, time
import torch
torch.allclose = lambda *a, **k: True
torch._aina_hostile = True
json._aina_cache = {"answer": 42}
def stay():
    threading.Thread(target=time.sleep, args=(600,)).start()  # not a daemon
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    return {"pid": os.getpid()}
"""


@pytest.fixture(scope="module")
def template():
    tpl = Template(["torch", "json"])
    yield tpl
    tpl.close()


def test_a_warm_child_is_forked_confined_and_cleaned_up(template, write, caps, planted_secrets):
    r = run(f"{write('probe.py', PROBE)}:look", template=template)
    assert r.status == "ok", r.reason
    assert r.protections["start"].startswith("warm: forked from the template"), r.protections["start"]
    v = r.value
    assert v["torch_preloaded"] is True  # it did not import torch itself: the template had
    assert v["pid"] != template.pid()
    assert not any(name in v["env"] for name in planted_secrets)  # the child's own allow-list
    assert os.path.basename(v["cwd"]) == "work" and not os.path.exists(v["cwd"])
    # none of the template's files stays open: above all not its socket, which forks
    assert not [f for f in v["fds"] if f and f.startswith("socket:")], v["fds"]
    if "pid" in caps.namespaces:
        assert r.protections["pid_namespace"] and r.protections["net_namespace"]
        assert v["pid"] == 2  # the worker behind the namespace's init, as when started cold
    if caps.root:
        assert r.protections["uid"] not in (None, 0)
    assert r.cleanup == "complete"
    # where its time went, phase by phase: the parent's steps in order, the child's own
    # start-up steps (the template's fork, then the boot) in between, none negative
    parent = [p for p in r.phases if not p.startswith("child.")]
    assert parent == ["folder", "start", "spawned", "confined", "result", "finish", "gone", "leftovers", "cleaned"]
    assert {"child.forked", "child.boot", "child.config", "child.worker", "child.confined"} <= set(r.phases)
    if "pid" in caps.namespaces:
        assert {"child.unshare", "child.namespaces"} <= set(r.phases)
    assert all(s >= 0 for s in r.phases.values()), r.phases
    # from the folder's creation to its removal: the run's wall time and a little more
    assert r.wall_s <= sum(r.phases.values()) < r.wall_s + 5


def test_nothing_a_hostile_candidate_does_reaches_the_next_one(template, write, caps):
    hostile = run(f"{write('hostile.py', HOSTILE)}:stay", template=template, limits=Limits(wall_s=60))
    assert hostile.protections["start"].startswith("warm")
    # what it left running is found and ended, as for a cold child
    assert hostile.status == "leftover processes", hostile.reason
    assert hostile.cleanup == "complete"
    honest = run(f"{write('probe.py', PROBE)}:look", template=template)
    assert honest.status == "ok", honest.reason
    assert honest.protections["start"].startswith("warm")
    v = honest.value
    assert v["allclose_honest"] and not v["marked"] and v["cache"] is None
    assert v["threads"] == 1
    # the template itself still has one thread and never imported the candidate
    assert len(os.listdir(f"/proc/{template.pid()}/task")) == 1
    with open(f"/proc/{template.pid()}/maps") as f:
        assert "hostile.py" not in f.read()
    assert template.start()["unsafe"] is None


def test_torch_starts_no_thread_in_the_template(template, write):
    # a child that runs torch ops (intra-op pools start lazily) changes nothing in the template
    r = run(f"{write('probe.py', PROBE)}:look", template=template)
    assert r.status == "ok", r.reason
    ready = template.start()
    assert ready["threads"] == 1 and ready["unsafe"] is None
    assert len(os.listdir(f"/proc/{template.pid()}/task")) == 1


def test_a_template_with_threads_starts_children_cold_and_says_why(tmp_path, write):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "starts_a_thread.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
    )
    os.chmod(tmp_path, 0o755)
    with Template(["starts_a_thread"], pythonpath=[str(lib)]) as tpl:
        assert "threads run in the template" in tpl.start()["unsafe"]
        r = run(f"{write('probe.py', PROBE)}:look", template=tpl)
    assert r.status == "ok", r.reason
    assert r.protections["start"].startswith("cold: the template refused to fork: 2 threads"), r.protections["start"]
    assert r.value["torch_preloaded"] is False  # a new interpreter


def test_a_different_environment_or_a_small_memory_limit_starts_cold(template, write):
    r = run(f"{write('probe.py', PROBE)}:look", template=template, env={"TRITON_INTERPRET": "1"})
    assert r.status == "ok" and r.protections["start"].startswith("cold: the child's environment"), r.protections
    r = run(f"{write('probe.py', PROBE)}:look", template=template, limits=Limits(memory_bytes=64 << 20))
    assert r.protections["start"].startswith("cold: the memory limit"), r.protections["start"]


def test_limits_hold_in_a_warm_child(template, caps):
    need(caps, "pid")
    r = run(
        argv=["-c", "x = bytearray(1500 << 20)\nx[::4096] = b'a' * len(x[::4096])\nimport time; time.sleep(5)"],
        template=template,
        limits=Limits(memory_bytes=1 << 30, wall_s=60),
    )
    assert r.protections["start"].startswith("warm")
    assert r.status == "memory limit", r.reason
    r = run(argv=["-c", "import time; time.sleep(60)"], template=template, limits=Limits(wall_s=2))
    assert r.status == "timeout" and r.protections["start"].startswith("warm")
    assert r.cleanup == "complete"


def test_a_template_with_cuda_initialised_starts_children_cold(tmp_path, write):
    # no GPU here: a stand-in torch whose CUDA says it is initialised, as after a CUDA call
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "cuda_in_use.py").write_text(
        "import sys, types\n"
        "sys.modules['torch'] = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))\n"
    )
    os.chmod(tmp_path, 0o755)
    with Template(["cuda_in_use"], pythonpath=[str(lib)]) as tpl:
        assert "CUDA is initialised in the template" in tpl.start()["unsafe"]
        entry = write("one.py", "def f():\n    return 1\n")
        r = run(f"{entry}:f", template=tpl)
    assert r.status == "ok", r.reason
    assert r.protections["start"].startswith("cold: the template refused to fork: CUDA is initialised")


def test_the_evaluator_s_template_gives_children_none_of_the_parents_modules(write):
    """What the evaluator preloads is what every candidate can reach and patch: the
    sandbox's parent (launch, timing, the verdicts) must not be among it."""
    from pytest_aina.changer.evaluate import _preload

    entry = write(
        "loaded.py",
        "import sys\n\ndef f():\n    return sorted(m for m in sys.modules if m.startswith('pytest_aina'))\n",
    )
    with Template(_preload(), env={"TRITON_INTERPRET": "1"}) as tpl:
        assert tpl.start()["errors"] == {}
        r = run(f"{entry}:f", env={"TRITON_INTERPRET": "1"}, template=tpl)
    assert r.status == "ok" and r.protections["start"].startswith("warm"), r.protections["start"]
    assert "pytest_aina.plugin" in r.value and "pytest_aina.changer.harness" in r.value  # preloaded indeed
    assert [m for m in r.value if m.startswith("pytest_aina.sandbox.parent")] == []


#: what a stage forked from a template that parsed the spec still has to do itself
SPEC_PROBE = """
def look(spec):
    from pytest_aina.changer import harness
    from pytest_aina.spec import model
    validated = []
    real = model.validate_schema
    def counted(*a, **k):
        validated.append(1)
        return real(*a, **k)
    model.validate_schema = counted  # a spec the template validated is not validated again
    before = harness._spec_at.cache_info().misses
    harness._spec(spec)  # the timing children's parsed spec, inherited
    model.load_spec(spec)  # the plugin's collection: the YAML again, not the schema
    return {"parsed": harness._spec_at.cache_info().misses - before, "validated": len(validated)}
"""


def test_work_prepared_in_the_template_is_inherited_and_a_changed_spec_is_read_again(template, write, tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = specs / "softmax.yaml"
    spec.write_text((Path(__file__).parents[2] / "specs" / "softmax.yaml").read_text())
    os.chmod(specs, 0o755)
    spec.chmod(0o644)
    assert template.prepare("pytest_aina.changer.harness:warm", [str(spec)]) is None
    probe = write("spec_probe.py", SPEC_PROBE)
    r = run(f"{probe}:look", args=[str(spec)], read_paths=[str(specs)], template=template)
    assert r.status == "ok", r.reason
    assert r.protections["start"].startswith("warm")
    assert r.value == {"parsed": 0, "validated": 0}
    # edited since the template parsed it: the child parses the file as it is now
    spec.write_text(spec.read_text() + "\n# edited\n")
    r = run(f"{probe}:look", args=[str(spec)], read_paths=[str(specs)], template=template)
    assert r.status == "ok" and r.value == {"parsed": 1, "validated": 1}, r.reason
    # a function that fails is reported, and the template forks on as before
    why = template.prepare("pytest_aina.changer.harness:warm", [str(specs / "missing.yaml")])
    assert why is not None and "missing.yaml" in why
    assert (
        run(f"{probe}:look", args=[str(spec)], read_paths=[str(specs)], template=template)
        .protections["start"]
        .startswith("warm")
    )


#: run as a user without root (uid 1000 in a user namespace of its own): a template, one child
UNPRIVILEGED = """
import json, os, sys
from pytest_aina.sandbox import Template, run
with Template(["decimal"]) as tpl:
    r = run(sys.argv[1] + ":look", template=tpl)
print(json.dumps({"uid": os.getuid(), "status": r.status, "reason": r.reason, "value": r.value,
                  "cleanup": r.cleanup, **{k: r.protections[k] for k in ("start", "pid_namespace",
                  "net_namespace", "mount_namespace", "user_namespace", "landlock")}}))
"""

UNPRIVILEGED_PROBE = """
import os, socket, sys
def look():
    return {"preloaded": "decimal" in sys.modules, "pid": os.getpid(), "interfaces": [n for _, n in socket.if_nameindex()]}
"""


def test_without_root_a_child_is_forked_into_a_user_namespace_and_confined_as_a_cold_one(write, caps):
    need(caps, "pid")
    as_user = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    if subprocess.run([*as_user, "unshare", "--map-root-user", "--pid", "--fork", "true"]).returncode != 0:
        pytest.skip("no nested unprivileged user namespaces here")
    entry = write("probe.py", UNPRIVILEGED_PROBE)
    os.chmod(os.path.dirname(entry), 0o755)
    root = str(Path(__file__).parents[2])
    out = subprocess.run(
        [*as_user, sys.executable, "-c", UNPRIVILEGED, entry],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": root},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["uid"] == 1000 and r["status"] == "ok", r
    assert r["start"].startswith("warm: forked from the template"), r["start"]
    assert r["user_namespace"] and r["pid_namespace"] and r["net_namespace"] and r["mount_namespace"], r
    assert r["value"]["preloaded"] and r["value"]["pid"] == 2, r["value"]  # behind the namespace's init
    assert r["value"]["interfaces"] == ["lo"], r["value"]  # no network but a loopback
    if caps.landlock_abi:
        assert r["landlock"], r
    assert r["cleanup"] == "complete"
