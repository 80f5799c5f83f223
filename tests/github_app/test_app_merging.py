"""Merging bot PRs, end to end on the fake through the real queue: the gate's check run
completes (its verdict in the artifact CI uploads), the App decides (merging's ``decide``)
and merges after the soak, asks for a review, refuses, or obeys ``/aina merge``; GitHub's
refusals are recorded, never forced; a worker killed mid-merge merges once."""

from __future__ import annotations

import signal

from app_helpers import drain, kill_worker_when_held, make_change, publish, start_worker, wait_until

from github_app.github import merges
from github_app.jobs.merging import merge_state

REPO = "octo-org/kernels"
AUTOMERGE_LOW = "automerge:\n  risk: [low]\n  min_age_hours: 0.002\nreviewers: [maintainer]\n"  # soak: 7.2 s


def verdict(head: str, status: str = "pass", risk: str = "low") -> dict:
    """A gate verdict (``aina-gate/v1``) as ``aina gate --json`` writes it, cut to what
    merging reads."""
    reasons = ["correctness: softmax_v2 differs from the reference at M=4096"] if status == "fail" else []
    return {
        "format": "aina-gate/v1",
        "verdict": status,
        "exit_code": {"pass": 0, "fail": 1}[status],
        "base": "0" * 40,
        "head": head,
        "reasons": reasons,
        "checks": [
            {"name": "policy", "status": "pass", "summary": "within the bot's paths", "data": {"risk": risk}},
            {"name": "correctness", "status": "fail" if status == "fail" else "pass", "summary": "", "data": {}},
        ],
    }


def run_due(services) -> None:
    """Run the jobs that are due now (not the ones delayed to later, unlike ``drain``)."""
    from github_app.worker import Worker

    worker = Worker(services, ("default",), name="test-worker")
    while worker.run_once() is not None:
        pass


def open_pr(fake, app, inst, repo, policy: str | None, hypothesis: str = "hyp-1", risk: str = "low"):
    if policy is not None:
        fake.push(repo, {".github/aina.yml": policy}, "policy", deliver=False)
    publish(app, inst, make_change(hypothesis, labels=[f"risk:{risk}"]))
    [pr] = [p for p in repo.pulls() if p.head_ref.endswith(hypothesis)]
    return pr


def soak_statuses(repo, sha: str) -> list[str]:
    return [s.state for s in repo.statuses if s.sha == sha and s.context == merges.SOAK_CONTEXT]


def comments(repo, pr) -> list[str]:
    return [repo.comments[c].body for c in pr.comments]


def test_a_low_risk_pass_soaks_then_merges(fake, app, onboarded):
    repo, inst = onboarded
    pr = open_pr(fake, app, inst, repo, AUTOMERGE_LOW)
    head = pr.head_sha
    fake.complete_gate(repo, head, verdict(head))
    run_due(app.services)

    assert pr.state == "open" and pr.merged_at is None
    assert soak_statuses(repo, head) == ["pending"]
    state = merge_state(app.services.store, REPO, pr.number)
    assert state["state"] == "soaking" and state["head"] == head and state["until"]
    dashboard = repo.issues[app.services.store.repository(REPO)["dashboard_issue"]].body
    assert f"| #{pr.number} | `hyp-1` | softmax | {head[:12]} | soaking until " in dashboard
    assert f"PR #{pr.number} awaits" not in dashboard

    drain(app.services, timeout=30)  # the look again at the soak's end
    assert pr.merged_at is not None and pr.state == "closed"
    assert fake.count("PUT", "pulls/merge", 200) == 1
    assert soak_statuses(repo, head) == ["pending", "success"]  # in the order made
    assert repo.refs["refs/heads/main"] == pr.merge_sha
    assert repo.git.commits[pr.merge_sha].tree == repo.git.commits[head].tree
    link = app.services.store.pull(REPO, pr.number)
    assert (link["state"], link["outcome"], link["closed_by"]) == ("closed", "merged", "aina")
    assert merge_state(app.services.store, REPO, pr.number)["state"] == "merged"
    assert any(c.startswith(f"Merged {head[:12]}: risk low: gate passed") for c in comments(repo, pr))


def test_a_medium_risk_pass_asks_the_policy_reviewers(fake, app, onboarded):
    repo, inst = onboarded
    pr = open_pr(fake, app, inst, repo, AUTOMERGE_LOW + "team_reviewers: [kernels]\n", risk="medium")
    fake.complete_gate(repo, pr.head_sha, verdict(pr.head_sha, risk="medium"))
    drain(app.services)
    assert pr.state == "open" and fake.count("PUT", "pulls/merge") == 0
    assert pr.requested_reviewers == ["maintainer"] and pr.requested_teams == ["kernels"]
    assert merge_state(app.services.store, REPO, pr.number)["state"] == "awaiting-review"
    dashboard = repo.issues[app.services.store.repository(REPO)["dashboard_issue"]].body
    assert f"{pr.head_sha[:12]} | awaiting review |" in dashboard
    assert f"PR #{pr.number} awaits a person: awaiting review." in dashboard
    [said] = [c for c in comments(repo, pr) if c.startswith("Not merging")]
    assert "risk medium is not among automerge.risk ['low']" in said and "@maintainer, team kernels" in said
    assert soak_statuses(repo, pr.head_sha) == []


def test_a_failed_gate_merges_nothing_and_says_why(fake, app, onboarded):
    repo, inst = onboarded
    pr = open_pr(fake, app, inst, repo, AUTOMERGE_LOW)
    fake.complete_gate(repo, pr.head_sha, verdict(pr.head_sha, "fail"), conclusion="failure")
    drain(app.services)
    assert pr.state == "open" and fake.count("PUT", "pulls/merge") == 0
    assert merge_state(app.services.store, REPO, pr.number)["state"] == "refused"
    assert any("the gate failed: correctness: softmax_v2 differs" in c for c in comments(repo, pr))
    # /aina merge does not override a failed gate
    fake.comment_as(repo, pr.number, "maintainer", "/aina merge")
    drain(app.services)
    assert pr.state == "open" and fake.count("PUT", "pulls/merge") == 0


def test_aina_merge_from_a_writer_merges_whatever_the_tier_and_from_a_reader_does_nothing(fake, app, onboarded):
    repo, inst = onboarded
    pr = open_pr(fake, app, inst, repo, None, risk="high")  # no policy: nothing merges on its own
    fake.complete_gate(repo, pr.head_sha, verdict(pr.head_sha, risk="high"))
    drain(app.services)
    assert pr.state == "open" and merge_state(app.services.store, REPO, pr.number)["state"] == "awaiting-review"

    fake.comment_as(repo, pr.number, "drive-by", "/aina merge")
    drain(app.services)
    assert pr.state == "open" and fake.count("PUT", "pulls/merge") == 0
    assert any(c.startswith("@drive-by `/aina merge`") and "refused" in c for c in comments(repo, pr))

    fake.comment_as(repo, pr.number, "maintainer", "please /aina merge")  # not at a line's start: ignored
    fake.comment_as(repo, pr.number, "maintainer", "/aina merge")
    drain(app.services)
    assert pr.merged_at is not None and fake.count("PUT", "pulls/merge") == 1
    link = app.services.store.pull(REPO, pr.number)
    assert (link["outcome"], link["closed_by"]) == ("merged", "maintainer")
    assert any("/aina merge by @maintainer on a passed gate" in c for c in comments(repo, pr))


def test_aina_merge_before_the_gate_reports_waits_for_it(fake, app, onboarded):
    repo, inst = onboarded
    pr = open_pr(fake, app, inst, repo, None, risk="medium")
    fake.comment_as(repo, pr.number, "maintainer", "/aina merge")
    drain(app.services)
    assert pr.state == "open"
    assert any("`/aina merge` noted" in c and "not reported" in c for c in comments(repo, pr))
    fake.complete_gate(repo, pr.head_sha, verdict(pr.head_sha, risk="medium"))
    drain(app.services)
    assert pr.merged_at is not None


def test_a_merge_github_refuses_is_recorded_not_forced(fake, app, onboarded):
    repo, inst = onboarded
    pr = open_pr(fake, app, inst, repo, None)
    pr.mergeable = False  # a conflict, or a required check missing
    fake.complete_gate(repo, pr.head_sha, verdict(pr.head_sha))
    fake.comment_as(repo, pr.number, "maintainer", "/aina merge")
    drain(app.services)
    assert pr.state == "open" and pr.merged_at is None
    assert fake.count("PUT", "pulls/merge", 405) == 1 and fake.count("PUT", "pulls/merge") == 1
    state = merge_state(app.services.store, REPO, pr.number)
    assert state["state"] == "merge-refused" and "405: Pull Request is not mergeable" in state["reason"]
    assert any(c.startswith("Not merged: GitHub refused to merge") for c in comments(repo, pr))
    assert app.services.store.pull(REPO, pr.number)["state"] == "open"
    assert not app.services.store.jobs(state="failed")


def test_a_head_that_moved_is_not_merged(fake, app, onboarded):
    repo, inst = onboarded
    pr = open_pr(fake, app, inst, repo, AUTOMERGE_LOW)
    judged = pr.head_sha
    fake.complete_gate(repo, judged, verdict(judged))
    run_due(app.services)
    assert soak_statuses(repo, judged) == ["pending"]
    # someone pushes to the PR during the soak: the look at the soak's end skips
    fake.push(repo, {"kernels/softmax_v2.py": "def softmax_v2(x):\n    return -x\n"}, "oops", branch=pr.head_ref)
    assert pr.head_sha != judged
    drain(app.services, timeout=30)
    assert pr.state == "open" and fake.count("PUT", "pulls/merge") == 0
    [look] = [j for j in app.services.store.jobs(kind="merge", state="done") if j.result.get("skipped")]
    assert "head moved" in look.result["skipped"]

    # and GitHub itself refuses a merge of a head that is not the PR's any more (409)
    client = app.services.auth.installation_client(inst.id).repository("octo-org", "kernels")
    outcome = merges.merge(client, pr.number, judged, "squash")
    assert (outcome.merged, outcome.status) == (False, 409) and "modified" in outcome.message
    assert pr.state == "open"


def test_the_gate_check_of_another_head_or_another_name_is_ignored(fake, app, onboarded):
    repo, inst = onboarded
    open_pr(fake, app, inst, repo, AUTOMERGE_LOW)
    fake.complete_gate(repo, repo.refs["refs/heads/main"], verdict(repo.refs["refs/heads/main"]))
    drain(app.services)
    assert app.services.store.jobs(kind="merge") == []


def test_a_worker_killed_mid_merge_merges_once_and_records_it(fake, app, onboarded, app_key, tmp_path):
    repo, inst = onboarded
    store = app.services.store
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    pr = open_pr(fake, app, inst, repo, None)
    fake.complete_gate(repo, pr.head_sha, verdict(pr.head_sha))
    drain(app.services)
    # GitHub merges, but its answer never reaches the worker: killed first.
    hold = fake.hold("PUT", r"/pulls/\d+/merge$")
    fake.comment_as(repo, pr.number, "maintainer", "/aina merge")
    kill_worker_when_held(fake, app, key_file, tmp_path / "worker1.log", hold)
    assert pr.merged_at is not None
    [job] = [j for j in store.jobs(kind="merge") if j.payload.get("command")]
    assert job.state == "running" and job.checkpoint["decision"]["action"] == "merge"

    second = start_worker(fake, app, key_file, tmp_path / "worker2.log")
    try:
        wait_until(lambda: store.job(job.id).state == "done", 60, "the merge job to be taken over")
        wait_until(lambda: not store.jobs(state="queued") and not store.jobs(state="running"), 60, "follow-ups")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert fake.count("PUT", "pulls/merge") == 1, "merged twice"
    link = store.pull(REPO, pr.number)
    assert (link["outcome"], link["closed_by"]) == ("merged", "maintainer")
    assert sum(c.startswith("Merged ") for c in comments(repo, pr)) == 1
