"""The Reasoner job: on telemetry arrival (debounced), on a new baseline, on a schedule.

Its hypotheses go two ways: ``rollback`` and ``retire`` become removal PRs
(:func:`github_app.jobs.removals.act_on`: the revert and the retirement, one home each);
the others start evolution runs within the policy (:func:`github_app.bridge.worth_running`).
"""

from __future__ import annotations

import time

from github_app import bridge
from github_app.jobs import JobContext, dashboard_job, handler
from github_app.jobs.dashboard_updates import save_left_alone
from github_app.jobs.removals import act_on
from github_app.jobs.repository import evolve_job
from github_app.jobs.verification import verify_all_job
from github_app.policy import PolicyError, load_policy
from github_app.store import PENDING_STATES


@handler("reason")
def reason(ctx: JobContext):
    p = ctx.payload
    name, inst = p["repository"], p["installation_id"]
    row = ctx.store.repository(name)
    if row is None or not row["active"]:
        return {"skipped": "not served"}
    since = time.time() - ctx.config["TELEMETRY_RETENTION_DAYS"] * 86400
    rows = ctx.store.telemetry_rows(name, None, since=since)
    repo = ctx.repo()
    # the policy first: its retire.unused_days is the silence a retire hypothesis needs
    try:
        policy, policy_error = load_policy(repo, repo.default_branch), None
    except PolicyError as exc:
        policy, policy_error = None, str(exc)
    ref = row["baseline_sha"] or repo.ref(f"heads/{repo.default_branch}").object.sha
    checkout = bridge.cached_checkout(repo, ref, ctx.config["WORK_DIR"], name)
    merged_at = {(c["kernel"], c["variant"]): c["merged_at"] for c in ctx.store.claims(name)}
    report, notes = bridge.reasoner_report(rows, checkout, policy=policy, merged_at=merged_at)
    ranked = report.hypotheses
    ctx.store.replace_hypotheses(name, [h.to_json() for h in ranked])
    save_left_alone(ctx.store, name, report.left_alone)  # the dashboard's "left alone, and why"
    ctx.finally_(dashboard_job(name, inst))
    ctx.then(verify_all_job(name))  # new telemetry: the merged claims it may decide

    if policy is None:
        ctx.store.update_repository(name, policy_error=policy_error)
        return {"hypotheses": len(ranked), "started": [], "policy_error": policy_error}
    removals = act_on(ctx, policy, ranked)
    pulls_all = ctx.store.pulls(name, limit=500)
    open_ids = {x["hypothesis_id"] for x in pulls_all if x["state"] == "open"}
    rejected = {x["hypothesis_id"] for x in pulls_all if x["state"] != "open" and x["outcome"] != "merged"}
    queued = {
        str(j.payload["hypothesis"]["id"])
        for state in PENDING_STATES
        for j in ctx.store.jobs(state=state, kind="evolve", repository=name)
    }
    chosen = bridge.worth_running(ranked, policy, open_ids=open_ids, rejected_ids=rejected, queued_ids=queued)
    for h in chosen:
        ctx.then(evolve_job(name, inst, h))
    return {
        "windows": len(rows),
        "hypotheses": len(ranked),
        "started": [h.id for h in chosen],
        "removals": removals,
        "notes": notes[:20],
    }
