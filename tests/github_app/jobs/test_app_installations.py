"""Which repositories the App serves: installation events, the start-up sync, schedules."""

from __future__ import annotations

from app_helpers import drain, make_change, window

from github_app.store import JobSpec
from github_app.worker import Worker, startup_jobs

REPO = "octo-org/kernels"


def test_the_startup_sync_finds_installations_it_never_heard_of(fake, app, installed):
    repo, inst = installed  # installed on GitHub while the App was not listening
    assert app.services.store.repository(REPO) is None
    app.services.store.enqueue(startup_jobs())
    drain(app.services)
    row = app.services.store.repository(REPO)
    assert row["active"] and row["installation_id"] == inst.id
    assert row["baseline_sha"] == repo.refs["refs/heads/main"]
    assert row["dashboard_issue"] in repo.issues


def test_repositories_removed_from_an_installation_stop_being_served(fake, app, onboarded):
    repo, inst = onboarded
    store = app.services.store
    store.enqueue(
        [
            JobSpec(
                "publish",
                {"repository": REPO, "installation_id": inst.id, "change": make_change("hyp-1")},
                key="p",
                repository=REPO,
                delay=3600,
            )
        ]
    )
    payload = fake.installation_payload(inst, "removed")
    payload.pop("repositories")
    payload["action"] = "removed"
    payload["repository_selection"] = "selected"
    payload["repositories_added"] = []
    payload["repositories_removed"] = [
        {"id": repo.id, "node_id": "x", "name": repo.name, "full_name": repo.full_name, "private": False}
    ]
    d = fake.deliver_event("installation_repositories", payload)
    assert d.status_code == 202
    drain(app.services)
    assert store.repository(REPO)["active"] is False
    [cancelled] = store.jobs(kind="publish")
    assert cancelled.state == "failed" and "lost access" in cancelled.last_error


def test_a_deleted_installation_forgets_its_token_and_repositories(fake, app, onboarded):
    repo, inst = onboarded
    assert inst.id in app.services.auth._tokens
    fake.deliver_event("installation", fake.installation_payload(inst, "deleted"))
    drain(app.services)
    assert app.services.store.installation(inst.id)["active"] is False
    assert app.services.store.repositories(inst.id) == []
    assert inst.id not in app.services.auth._tokens


def test_a_push_to_another_branch_is_not_a_new_baseline(fake, app, onboarded):
    repo, inst = onboarded
    before = app.services.store.repository(REPO)["baseline_sha"]
    fake.push(repo, {"x.txt": "x\n"}, "side work", branch="feature")
    drain(app.services)
    assert app.services.store.repository(REPO)["baseline_sha"] == before
    after = fake.push(repo, {"y.txt": "y\n"}, "main work")
    drain(app.services)
    assert app.services.store.repository(REPO)["baseline_sha"] == after


def test_schedules_enqueue_the_periodic_jobs_once_per_interval(app, onboarded):
    store = app.services.store
    worker = Worker(app.services, ("default",), name="w")
    worker.schedule()
    worker.schedule()
    kinds = sorted(j.kind for j in store.jobs(state="queued"))
    assert kinds == ["prune", "reason_all", "redeliver", "verify_all"]
    # reason_all asks for a Reasoner run for each repository that has telemetry.
    store.store_telemetry("b", REPO, 1, [window(0).as_dict()], None)
    [run] = [j for j in drain(app.services, queues=("default",)) if j.kind == "reason_all"]
    assert store.job(run.id).result == {"repositories": [REPO]}
    [reason] = store.jobs(kind="reason")
    assert reason.state == "done", reason.last_error
    assert reason.result["windows"] == 1 and reason.result["hypotheses"] == 0
    assert any("specs/softmax.yaml" in note for note in reason.result["notes"])


def test_a_job_longer_than_its_lease_keeps_it_and_the_beating_ends_with_it(make_app):
    """The worker's one heartbeat thread renews the lease of the job it runs: a second
    worker cannot take over a job that runs for three leases, and once the job is done
    the lease is not renewed any more (the store would refuse the beat: the job is done)."""
    import threading
    import time

    lease = 0.6
    app = make_app(JOB_LEASE_SECONDS=lease)
    services = app.services
    store = services.store
    inside, release = threading.Event(), threading.Event()
    seen = []

    def slow(ctx):
        inside.set()
        release.wait(30)
        return {"slow": True}

    store.enqueue([JobSpec("slow_test_job", {}, key="slow-1")])
    first = Worker(services, name="first")
    first.handlers = {**first.handlers, "slow_test_job": slow}
    runner = threading.Thread(target=lambda: seen.append(first.run_once()))
    runner.start()
    assert inside.wait(30)
    other = Worker(services, name="other")
    deadline = time.monotonic() + 3 * lease
    while time.monotonic() < deadline:  # three leases: without beats it would be taken over
        job = store.claim(other.queues, other.name, lease)
        assert job is None, f"the running job was taken over: {job}"
        time.sleep(lease / 6)
    release.set()
    runner.join(30)
    assert seen and seen[0].kind == "slow_test_job"
    assert store.job_counts().get(("slow_test_job", "done")) == 1
    assert first._heart._job is None  # nothing left to beat for
    first._heart.close()


def test_a_worker_claims_its_next_job_as_it_completes_one_and_gives_it_back_when_it_stops(make_app):
    """The worker's loop completes a job and claims the next in one call (one turn of
    SQLite's write lock, not two); a worker stopped with a job claimed ahead queues it
    again at once, its attempt not counted, for another worker to run."""
    import threading

    services = make_app().services
    store = services.store
    stop = threading.Event()
    ran = []

    def job(ctx):
        ran.append(ctx.payload["n"])
        if ctx.payload["n"] == 2:
            stop.set()  # the loop stops after this job, which claimed job 3 as it completed
        return {"n": ctx.payload["n"]}

    ids = store.enqueue([JobSpec("claim_ahead_test_job", {"n": n}) for n in range(1, 5)])
    worker = Worker(services, name="w")
    worker.handlers = {**worker.handlers, "claim_ahead_test_job": job}
    calls = []
    real = store.complete_and_claim
    store.complete_and_claim = lambda *a, **k: calls.append(a[0]) or real(*a, **k)
    try:
        worker.run(stop)
    finally:
        del store.complete_and_claim
    assert ran == [1, 2] and calls == ids[:2]
    third, fourth = store.job(ids[2]), store.job(ids[3])
    assert (third.state, third.attempts, third.worker) == ("queued", 0, "w")
    assert "released" in third.last_error and fourth.state == "queued"
    assert [store.job(i).state for i in ids[:2]] == ["done", "done"]
