"""The executor seam without a cluster: the local pool, what is shipped to a node and how
it is unpacked there, which failures are worth a retry, and that Ray stays unimported
unless it is chosen."""

import io
import os
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from standins import FixedOrder, comparable, ctx, landscape

from pytest_aina.changer.evaluate import Setup
from pytest_aina.changer.executors import (
    Evaluation,
    ExecutorError,
    LocalExecutor,
    RayExecutor,
    node_checkout,
    open_executor,
    pack_tree,
    retryable,
)
from pytest_aina.changer.proposers import MetaParamProposer
from pytest_aina.changer.search import Checkpoint, run_search
from pytest_aina.changer.settings import Budget, EvolutionSettings

ROOT = Path(__file__).resolve().parents[3]


def test_the_local_pool_is_the_default_and_an_explicit_one_runs_the_same_search(tmp_path):
    default = run_search(ctx(3), [MetaParamProposer()], landscape, Budget(evaluations=10))
    with LocalExecutor(1) as pool:
        explicit = run_search(
            ctx(3),
            [MetaParamProposer()],
            landscape,
            Budget(evaluations=10),
            executor=pool,
            checkpoint=Checkpoint(tmp_path / "cp.jsonl"),
        )
    assert [a.candidate.id for a in explicit.attempts] == [a.candidate.id for a in default.attempts]
    assert [a.verdict.to_json() for a in explicit.attempts] == [a.verdict.to_json() for a in default.attempts]
    assert all(a.verdict.ran_on == {} for a in explicit.attempts)  # this machine: nothing to say
    assert len((tmp_path / "cp.jsonl").read_text().splitlines()) == 10


def test_slots_bound_what_is_in_flight():
    running, peak = [], []

    def watched(c):
        running.append(c.id)
        peak.append(len(running))
        time.sleep(0.05)
        running.remove(c.id)
        return landscape(c)

    with LocalExecutor(3) as pool:
        out = run_search(ctx(), [FixedOrder()], watched, Budget(evaluations=12), executor=pool)
    assert len(out.attempts) == 12 and max(peak) == 3
    assert len({a.candidate.id for a in out.attempts}) == 12
    assert all(comparable(a.verdict) == comparable(landscape(a.candidate)) for a in out.attempts)


def test_the_settings_choose_the_executor():
    with open_executor(EvolutionSettings(workers=3)) as ex:
        assert isinstance(ex, LocalExecutor) and ex.slots == 3
    with open_executor(EvolutionSettings()) as ex:
        assert ex.slots == min(2, os.cpu_count() or 1)


def test_an_unreachable_head_fails_in_seconds_not_minutes():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    t = time.monotonic()
    with pytest.raises(ExecutorError, match=f"cannot reach the Ray cluster's head at 127.0.0.1:{port}"):
        RayExecutor(f"127.0.0.1:{port}")
    assert time.monotonic() - t < 15


def _git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=repo, check=True, capture_output=True
    )


def _names(data: bytes) -> dict[str, int]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m.mode for m in tar.getmembers()}


def _setup(repo: Path, spec: Path) -> Setup:
    return Setup(
        spec_path=spec,
        repo=repo,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[],
        workdir=repo / ".aina" / "eval" / "x",
        spec=object(),
    )


def test_the_shipped_tree_is_git_s_view_without_scratch_space_and_readable_by_the_sandbox(tmp_path):
    repo = tmp_path / "repo"
    (repo / "kernels").mkdir(parents=True)
    (repo / "kernels" / "k.py").write_text("X = 1\n")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(repo / "run.sh", 0o700)
    os.chmod(repo / "kernels" / "k.py", 0o600)  # private here; the sandbox's uid must read it there
    (repo / "specs").mkdir()
    (repo / "specs" / "k.yaml").write_text("kernel: k\n")
    (repo / ".gitignore").write_text("big/\n")
    (repo / "big").mkdir()
    (repo / "big" / "data.bin").write_bytes(b"0" * 1000)
    (repo / ".aina" / "eval").mkdir(parents=True)
    (repo / ".aina" / "eval" / "checkpoint.jsonl").write_text("{}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "kernels", "specs", "run.sh", ".gitignore")
    _git(repo, "commit", "-qm", "x")
    (repo / "kernels" / "new.py").write_text("Y = 2\n")  # untracked, not ignored: the work tree has it
    data, digest = pack_tree(_setup(repo, repo / "specs" / "k.yaml"))
    assert _names(data) == {
        ".gitignore": 0o644,
        "kernels/k.py": 0o644,
        "kernels/new.py": 0o644,
        "run.sh": 0o755,
        "specs/k.yaml": 0o644,
    }
    time.sleep(1.1)  # gzip's header has a timestamp of one-second resolution
    os.utime(repo / "kernels" / "k.py")
    again, digest2 = pack_tree(_setup(repo, repo / "specs" / "k.yaml"))
    assert digest2 == digest and again == data  # content-addressed: no mtimes, no owners


def test_a_tree_without_git_and_a_spec_outside_it_travel_too(tmp_path):
    repo = tmp_path / "checkout"  # the App's checkout is an unpacked tarball, not a git work tree
    (repo / "kernels" / "__pycache__").mkdir(parents=True)
    (repo / "kernels" / "k.py").write_text("X = 1\n")
    (repo / "kernels" / "__pycache__" / "k.pyc").write_bytes(b"\0")
    (repo / ".aina").mkdir()
    (repo / ".aina" / "x").write_text("scratch")
    spec = tmp_path / "elsewhere" / "k.yaml"
    spec.parent.mkdir()
    spec.write_text("kernel: k\n")
    setup = _setup(repo, spec)
    data, _ = pack_tree(setup)
    assert set(_names(data)) == {"kernels/k.py", ".aina-spec/k.yaml"}
    moved = Evaluation(setup).relocated(Path("/node/root"), Path("/node/root/.aina/eval/t"))
    assert moved.setup.spec_path == Path("/node/root/.aina-spec/k.yaml")
    assert moved.setup.repo == Path("/node/root") and moved.setup.workdir == Path("/node/root/.aina/eval/t")
    assert moved.setup.spec is setup.spec and moved.setup.function == "softmax"


def test_a_node_unpacks_a_tree_once_and_world_readable(tmp_path):
    repo = tmp_path / "repo"
    (repo / "kernels").mkdir(parents=True)
    (repo / "kernels" / "k.py").write_text("X = 1\n")
    os.chmod(repo / "kernels", 0o700)
    data, digest = pack_tree(_setup(repo, repo / "kernels" / "k.py"))
    fetched = []

    def fetch():
        fetched.append(1)
        return data

    root = node_checkout(digest, fetch, base=tmp_path / "node")
    assert (root / "kernels" / "k.py").read_text() == "X = 1\n" and root.name == digest
    assert stat.S_IMODE((root / "kernels").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "kernels" / "k.py").stat().st_mode) == 0o644
    assert node_checkout(digest, fetch, base=tmp_path / "node") == root and len(fetched) == 1
    assert [p.name for p in (tmp_path / "node" / "aina-ray").iterdir()] == [digest]  # no staging left


def test_machine_failures_are_retried_and_the_evaluation_s_own_errors_are_not():
    from ray import exceptions as rx

    assert retryable(rx.NodeDiedError("node 127.0.0.3 died"))
    assert retryable(rx.WorkerCrashedError())
    assert retryable(rx.LocalRayletDiedError())
    assert not retryable(rx.RayTaskError("run_on_node", "Traceback ...", ValueError("a bug")))
    assert not retryable(rx.TaskCancelledError())
    assert not retryable(ValueError("a bug"))


def test_help_and_the_local_path_do_not_import_ray():
    code = (
        "import sys\nfrom pytest_aina.cli import main\n"
        "try:\n    main(['evolve', '--help'])\nexcept SystemExit:\n    pass\n"
        "from pytest_aina.changer import executors, search, pipeline, settings\n"
        "executors.open_executor(settings.EvolutionSettings()).close()\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert out.returncode == 0, out.stderr
    assert "--executor {local,ray}" in out.stdout and "--ray-address" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _evolve_on_ray(tmp_path, *options: str) -> subprocess.CompletedProcess:
    """``aina evolve --executor ray OPTIONS`` on the sample day, RAY_ADDRESS unset."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(ROOT)}
    telemetry = str(ROOT / "telemetry" / "sample-fleet-day.jsonl")
    return subprocess.run(
        [sys.executable, "-m", "pytest_aina.cli", "evolve", "--telemetry", telemetry, "--repo", str(ROOT)]
        + ["--executor", "ray", *options, "--no-forge"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )


def test_evolve_with_ray_and_no_address_is_a_usage_error(tmp_path):
    out = _evolve_on_ray(tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "aina evolve: executor 'ray' needs the cluster's address" in out.stderr
    assert "--ray-address HOST:PORT" in out.stderr


def test_evolve_with_an_unreachable_head_is_a_usage_error_in_seconds(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = _evolve_on_ray(tmp_path, "--ray-address", f"127.0.0.1:{port}")
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"aina evolve: cannot reach the Ray cluster's head at 127.0.0.1:{port}" in out.stderr


def test_the_progress_line_says_which_node_evaluated_a_candidate(capsys):
    from tqdm import tqdm

    from pytest_aina.changer.model import Attempt, Candidate
    from pytest_aina.commands.evolve import _Shown

    c = Candidate("softmax", "metaparams", config={"BLOCK_N": 1024})
    v = landscape(c)
    v.ran_on = {"executor": "ray", "node_ip": "127.0.0.3", "node_id": "ab" * 28}
    shown = _Shown(print, 2, quiet=False)
    shown.bar = tqdm(total=2, disable=False)  # what planned() draws on a terminal
    shown.evaluated(Attempt(c, v), 1, 2)
    assert "BLOCK_N=1024 @ 127.0.0.3: " in shown.bar.postfix
    shown.evaluated(Attempt(c, landscape(c)), 2, 2)  # evaluated here: no place named
    assert "@" not in shown.bar.postfix
    shown.close()


def test_the_progress_line_says_whether_the_sandbox_started_warm_or_cold():
    from tqdm import tqdm

    from pytest_aina.changer.model import Attempt, Candidate
    from pytest_aina.commands.evolve import _Shown

    c = Candidate("softmax", "metaparams", config={"BLOCK_N": 1024})
    shown = _Shown(print, 3, quiet=False)
    shown.bar = tqdm(total=3, disable=False)
    warm, cold = landscape(c), landscape(c)
    warm.sandbox = {"start": "warm: forked from the template (pid 12)"}
    warm.ran_on = {"executor": "ray", "node_ip": "127.0.0.3"}
    shown.evaluated(Attempt(c, warm), 1, 3)
    assert "BLOCK_N=1024 @ 127.0.0.3 warm: " in shown.bar.postfix
    cold.sandbox = {"start": "cold: CUDA is initialised in the template"}
    shown.evaluated(Attempt(c, cold), 2, 3)
    assert "BLOCK_N=1024 cold: " in shown.bar.postfix and "CUDA" not in shown.bar.postfix
    shown.evaluated(Attempt(c, landscape(c)), 3, 3)  # never reached a sandbox (a syntax error)
    assert "warm" not in shown.bar.postfix and "cold" not in shown.bar.postfix
    shown.close()
