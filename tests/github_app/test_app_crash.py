"""A worker killed mid-job (kill -9) and an App that was down: nothing is lost, nothing
happens twice."""

from __future__ import annotations

import signal

from app_helpers import drain, kill_worker_when_held, make_change, start_worker, wait_until

from github_app.store import JobSpec

REPO = "octo-org/kernels"


def test_a_worker_killed_mid_job_finishes_the_job_exactly_once(fake, app, onboarded, app_key, tmp_path):
    repo, inst = onboarded
    store = app.services.store
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    base = repo.refs["refs/heads/main"]

    # GitHub creates the PR, but its answer never reaches the worker: killed first.
    hold = fake.hold("POST", r"/pulls$")
    [job_id] = store.enqueue(
        [
            JobSpec(
                "publish",
                {"repository": REPO, "installation_id": inst.id, "change": make_change("hyp-1")},
                key=f"publish:{REPO}:hyp-1",
                repository=REPO,
            )
        ]
    )
    first = kill_worker_when_held(fake, app, key_file, tmp_path / "worker1.log", hold)
    assert first.returncode == -signal.SIGKILL
    assert len(repo.pulls()) == 1
    assert store.job(job_id).state == "running"  # held by a dead worker's lease

    second = start_worker(fake, app, key_file, tmp_path / "worker2.log")
    try:
        wait_until(lambda: store.job(job_id).state == "done", 60, "the job to be taken over and finished")
        wait_until(lambda: not store.jobs(state="queued") and not store.jobs(state="running"), 60, "the follow-up jobs")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    log = (tmp_path / "worker2.log").read_text()
    assert second.returncode == 0, log

    job = store.job(job_id)
    assert job.attempts == 2
    [pr] = repo.pulls()
    assert fake.count("POST", "pulls/create") == 1, "the resumed job opened a second PR"
    assert pr.labels == ["aina", "kernel:softmax", "risk:low"]
    assert repo.git.commits[pr.head_sha].parents == (base,)
    assert [p["number"] for p in store.pulls(REPO)] == [pr.number]
    assert job.result["number"] == pr.number and job.result["created"] is False
    assert len([c for c in repo.check_runs if c.head_sha == pr.head_sha]) == 1


def test_deliveries_missed_while_down_are_asked_for_again(fake, make_app, installed):
    repo, inst = installed
    app = make_app()
    fake.deliver_event("installation", fake.installation_payload(inst, "created"))
    drain(app.services)

    # The App goes down; GitHub's deliveries fail and GitHub does not retry them.
    url = fake.app.webhook_url
    fake.app.webhook_url = "http://127.0.0.1:9/webhook"  # nothing listens on the discard port
    new_base = fake.push(repo, {"README.md": "# changed while the App was down\n"}, "docs")
    missed = fake.deliveries[-1]
    assert (missed.event, missed.status_code) == ("push", 0)
    fake.app.webhook_url = url

    app.services.store.enqueue([JobSpec("redeliver", {}, key="redeliver")])
    drain(app.services)
    wait_until(lambda: app.services.store.delivery_seen(missed.guid), 10, "the redelivery")
    drain(app.services)
    assert app.services.store.repository(REPO)["baseline_sha"] == new_base
    redelivered = [d for d in fake.deliveries if d.guid == missed.guid]
    assert [d.redelivery for d in redelivered] == [False, True]
    assert redelivered[-1].status_code == 202

    # Asking again later redelivers nothing: the missed event is handled now.
    app.services.store.enqueue([JobSpec("redeliver", {}, key="redeliver")])
    [run] = [j for j in drain(app.services) if j.kind == "redeliver"]
    assert app.services.store.job(run.id).result["redelivered"] == 0
    assert fake.count("POST", "apps/redeliver-webhook-delivery") == 1
