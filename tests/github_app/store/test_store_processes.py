"""Several processes on one database, one of them killed with SIGKILL mid-job: every job
is done exactly once, every follow-up enqueued exactly once, and each hypothesis has one PR.

First at the store's level (``queue_worker.py``: the worker's cycle without GitHub), then
with the App itself: ``python -m github_app serve --worker-only`` processes publishing PRs
to the GitHub fake.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from app_helpers import APP_ID, WEBHOOK_SECRET, drain, make_change
from worker_process import app_env, start_worker_process

from github_app.store import DONE, JobSpec

HERE = Path(__file__).resolve().parent
REPO = "octo-org/kernels"
NEWER = "def softmax_v3(x):\n    return x\n"
#: Long enough that a worker starved of CPU on a loaded machine (2 cores, a dozen busy
#: processes) keeps its jobs; only the killed one loses its lease.
LEASE = 4.0
#: What github_app.worker logs when a job completes.
DONE_LINE = re.compile(r": job (\d+) \S+ done in ")


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pid_of(worker_name: str) -> int:
    """The process of a worker named ``host:pid:thread`` (github_app.worker's names)."""
    return int(worker_name.split(":")[-2])


def test_queue_workers_in_several_processes_do_each_job_once_under_kill_9(backend, tmp_path):
    store = backend.open()
    hyps = [f"h{i}" for i in range(8)]
    n_work = 400
    try:
        ids = store.enqueue(
            [JobSpec("work", {"then": i % 4 == 0, "hyp": hyps[i // 4 % len(hyps)]}) for i in range(n_work)]
        )
        [slow] = store.enqueue([JobSpec("work", {"work": 120.0, "then": True, "hyp": "h0"})])
        started = time.monotonic()
        procs = {}
        for i in range(3):
            procs[f"queue-worker-{i}"] = subprocess.Popen(
                [sys.executable, str(HERE / "queue_worker.py"), backend.database, f"queue-worker-{i}", str(LEASE)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        holder = wait_until(lambda: store.job(slow).worker, 60, "the slow job to be claimed")
        victim = procs[holder]
        victim.send_signal(signal.SIGKILL)
        outputs = {n: p.communicate(timeout=180) for n, p in procs.items()}
        elapsed = time.monotonic() - started
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()

    assert victim.returncode == -signal.SIGKILL
    for name, p in procs.items():
        if p is not victim:
            assert p.returncode == 0, outputs[name][1][-3000:]
    done_by = Counter(int(line) for out, _ in outputs.values() for line in out.split())
    jobs = store.jobs(limit=10_000)
    assert {j.state for j in jobs} == {DONE}, Counter(j.state for j in jobs)
    assert max(done_by.values()) == 1, "a job was completed twice"
    assert set(done_by) == {j.id for j in jobs}, "a job was lost"
    assert slow not in {int(x) for x in outputs[holder][0].split()}
    assert store.job(slow).attempts == 2 and store.job(slow).result["by"] != holder
    parents = Counter(j.payload["parent"] for j in jobs if j.kind == "child")
    wanted = {job_id for i, job_id in enumerate(ids) if i % 4 == 0} | {slow}
    assert set(parents) == wanted and max(parents.values()) == 1, "follow-ups lost or doubled"
    pulls = store.pulls(REPO, limit=100)
    assert sorted(p["hypothesis_id"] for p in pulls) == hyps, "one PR per hypothesis"
    assert all(p["state"] == "open" for p in pulls)
    print(
        f"\n{backend.name}: {len(jobs)} jobs by 3 processes (one killed, its lease of "
        f"{LEASE:g} s run out) in {elapsed:.1f} s"
    )
    store.close()


@pytest.fixture
def kernels_repo(fake):
    """A repository whose policy lets the bot have a PR open for each of a burst of
    hypotheses."""
    repo = fake.create_repo(
        REPO,
        {
            "README.md": "# kernels\n",
            "kernels/__init__.py": "",
            "kernels/softmax.py": "def softmax(x):\n    return x\n",
            "specs/softmax.yaml": "name: softmax\n",
            ".github/aina.yml": "max_open_prs: 20\n",
        },
    )
    inst = fake.install("octo-org", [REPO])
    return repo, inst


def start_app_worker(fake, database: str, key_file: Path, log: Path) -> subprocess.Popen:
    """``python -m github_app serve --worker-only``, configured from the environment as a
    deployment is."""
    settings = {
        "APP_ID": APP_ID,
        "PRIVATE_KEY": key_file,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": fake.api_url,
        "DATABASE": database,
        "JOB_LEASE_SECONDS": LEASE,
        "WORKER_POLL_SECONDS": 0.05,
        "HTTP_BACKOFF_SECONDS": 0.01,
        "RETRY_BASE_SECONDS": 0.05,
    }
    return start_worker_process(app_env(settings), log, threads=2, evolution_threads=0)


@pytest.mark.slow
def test_app_workers_in_several_processes_open_one_pr_per_hypothesis_under_kill_9(
    backend, fake, make_app, kernels_repo, app_key, tmp_path
):
    repo, inst = kernels_repo
    app = make_app(DATABASE=backend.database)
    store = app.services.store
    fake.deliver_event("installation", fake.installation_payload(inst, "created"))
    drain(app.services)
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])

    # A burst of changes to publish; GitHub creates the first PR asked for, and the worker
    # that asked is killed before it hears back.
    hyps = [f"hyp-{i}" for i in range(6)]
    before = max(j.id for j in store.jobs(limit=10_000))

    def the_held_one():
        """The held job: the publish job still running once the others are done."""
        running = [h for h in hyps if store.job(publish[h]).state == "running"]
        others = [store.job(publish[h]).state for h in hyps if h not in running]
        return running if len(running) == 1 and set(others) == {DONE} else None

    hold = fake.hold("POST", r"/pulls$")
    publish = {
        h: store.enqueue(
            [
                JobSpec(
                    "publish",
                    {"repository": REPO, "installation_id": inst.id, "change": make_change(h)},
                    key=f"publish:{REPO}:{h}",
                    repository=REPO,
                )
            ]
        )[0]
        for h in hyps
    }
    workers = [start_app_worker(fake, backend.database, key_file, tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        assert hold.reached.wait(90), (tmp_path / "worker0.log").read_text()
        [held] = wait_until(the_held_one, 90, "the other publish jobs")
        held_pr = held_pr_now(repo, held)
        holder = store.job(publish[held]).worker
        victim = next(w for w in workers if w.pid == pid_of(holder))
        # A newer change for the same hypothesis arrives while the dead run holds it.
        [again] = store.enqueue(
            [
                JobSpec(
                    "publish",
                    {"repository": REPO, "installation_id": inst.id, "change": make_change(held, content=NEWER)},
                    key=f"publish:{REPO}:{held}",
                    repository=REPO,
                )
            ]
        )
        assert again is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        hold.release()
        pending = ("queued", "running", "deferred")
        wait_until(
            lambda: (
                all(store.job(j).state == DONE for j in [*publish.values(), again])
                and not [j for s in pending for j in store.jobs(state=s)]
            ),
            120,
            "every job to be done",
        )
    finally:
        hold.release()
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
    logs = {w.pid: (tmp_path / f"worker{i}.log").read_text() for i, w in enumerate(workers)}
    assert victim.returncode == -signal.SIGKILL
    for w in workers:
        if w is not victim:
            assert w.returncode == 0, logs[w.pid][-3000:]

    # One PR per hypothesis, on GitHub and in the store; the held one adopted, not re-opened.
    prs = repo.pulls()
    assert sorted(p.head_ref for p in prs) == sorted(f"aina/softmax/{h}" for h in hyps)
    assert fake.count("POST", "pulls/create") == len(hyps), "a resumed job opened a second PR"
    for h in hyps:
        [link] = [p for p in store.pulls(REPO, limit=100) if p["hypothesis_id"] == h]
        assert link["state"] == "open" and link["number"] in {p.number for p in prs}
    first, newer = store.job(publish[held]), store.job(again)
    assert first.attempts == 2 and first.result["number"] == held_pr.number
    assert first.result["created"] is False, "the PR the dead worker opened was not adopted"
    assert newer.result["number"] == held_pr.number, "the newer change opened another PR"
    # Each job the workers ran completed once, by one process (the killed one may have died
    # between committing a job and logging it).
    done = Counter(m.group(1) for log in logs.values() for m in DONE_LINE.finditer(log))
    for job in store.jobs(limit=10_000):
        if job.id > before and job.state == DONE and not (job.last_error or "").startswith("superseded"):
            allowed = {0, 1} if pid_of(job.worker) == victim.pid else {1}
            assert done[str(job.id)] in allowed, f"job {job.id} {job.kind}: {done[str(job.id)]}"
    assert f"job {publish[held]} publish done" not in logs[victim.pid]
    assert store.jobs(state="failed") == []
    # The newer change ran after the dead run was taken over and finished: it is what the
    # PR shows.
    tree = repo.git.flatten(repo.git.commits[held_pr_now(repo, held).head_sha].tree)
    assert repo.git.objects[tree["kernels/softmax_v2.py"][1]][1] == NEWER.encode()


def held_pr_now(repo, hyp: str):
    [pr] = [p for p in repo.pulls() if p.head_ref == f"aina/softmax/{hyp}"]
    return pr
