"""What a cluster does to a search when things die: the driver killed mid-run resumes from
its checkpoint, a worker node killed mid-evaluation costs a retry. Each evaluation is
recorded once either way. One cluster for the module: the driver test first, since the
node test leaves the cluster with the head alone."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from standins import FixedOrder, Slow, comparable, ctx, landscape

from pytest_aina.changer.executors import LocalExecutor, RayExecutor
from pytest_aina.changer.search import Checkpoint, run_search
from pytest_aina.changer.settings import Budget

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

pytestmark = pytest.mark.slow


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _wait_for(what, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(step)
    raise TimeoutError(f"waited {timeout} s")


def test_a_driver_killed_mid_run_resumes_from_its_checkpoint(ray_cluster, tmp_path):
    cp = tmp_path / "cp.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    args = [sys.executable, str(HERE / "drive_search.py"), ray_cluster.address, str(cp), "10", "2"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: len(_lines(cp)) >= 3, timeout=300)
    finally:
        first.send_signal(signal.SIGKILL)  # kill -9: no cleanup, evaluations in flight are lost
        first.communicate()
    before = _lines(cp)
    assert 3 <= len(before) < 10
    second = subprocess.run(args, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    used = json.loads(second.stdout.strip().splitlines()[-1])
    after = _lines(cp)
    assert used["resumed"] == len(before) and used["evaluations"] == 10
    assert after[: len(before)] == before  # what was measured stays, as it was
    ids = [x["candidate"]["id"] for x in after]
    assert len(ids) == 10 and len(set(ids)) == 10  # each evaluation recorded once
    # the same candidates, with the same verdicts, as one uninterrupted run on this machine
    with LocalExecutor(2) as pool:
        local = run_search(ctx(), [FixedOrder()], landscape, Budget(evaluations=10), executor=pool)
    assert sorted(ids) == sorted(a.candidate.id for a in local.attempts)
    by_id = {a.candidate.id: comparable(a.verdict) for a in local.attempts}
    for x in after:
        v = x["verdict"]
        assert {k: v[k] for k in by_id[x["candidate"]["id"]]} == by_id[x["candidate"]["id"]]


def test_a_worker_node_killed_mid_evaluation_costs_a_retry_not_the_run(ray_cluster, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    cp = Checkpoint(tmp_path / "cp.jsonl")
    result = {}
    victim = ray_cluster.ips[1]

    def drive():
        with RayExecutor(ray_cluster.address, slots=2) as ray_ex:
            result["out"] = run_search(
                ctx(11), [FixedOrder()], Slow(4.0, str(marks)), Budget(evaluations=8), checkpoint=cp, executor=ray_ex
            )

    driver = threading.Thread(target=drive)
    driver.start()
    try:
        started = _wait_for(lambda: [p.name for p in marks.iterdir() if p.name.endswith("@" + victim)], timeout=300)
        lost = started[0].split("@")[0]  # an evaluation running on the victim right now
        assert ray_cluster.kill_node(victim)
    finally:
        driver.join(timeout=600)
    assert not driver.is_alive() and "out" in result
    out = result["out"]
    ids = [a.candidate.id for a in out.attempts]
    assert len(ids) == 8 and len(set(ids)) == 8 and out.stopped_by == "evaluations"
    assert [x["candidate"]["id"] for x in _lines(cp.path)] == ids  # recorded once, in completion order
    assert all(comparable(a.verdict) == comparable(landscape(a.candidate)) for a in out.attempts)
    redone = next(a for a in out.attempts if a.candidate.id == lost)
    assert redone.verdict.ran_on["node_ip"] == ray_cluster.ips[0]  # finished on the node still alive
    names = {p.name for p in marks.iterdir()}
    assert {f"{lost}@{victim}", f"{lost}@{ray_cluster.ips[0]}"} <= names  # started there, run again here
