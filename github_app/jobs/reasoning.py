"""The Reasoner job: on telemetry arrival (debounced), on a new baseline, on a schedule."""

from __future__ import annotations

import time

from github_app import bridge
from github_app.jobs import JobContext, dashboard_job, handler
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
    windows = ctx.store.telemetry_windows(name, since=since)
    repo = ctx.repo()
    ref = row["baseline_sha"] or repo.ref(f"heads/{repo.default_branch}").object.sha
    checkout = bridge.cached_checkout(repo, ref, ctx.config["WORK_DIR"], name)
    ranked, notes = bridge.run_reasoner(windows, checkout)
    ctx.store.replace_hypotheses(name, [h.to_json() for h in ranked])
    ctx.finally_(dashboard_job(name, inst))
    ctx.then(verify_all_job(name))  # new telemetry: the merged claims it may decide

    try:
        policy = load_policy(repo, repo.default_branch)
    except PolicyError as exc:
        ctx.store.update_repository(name, policy_error=str(exc))
        return {"hypotheses": len(ranked), "started": [], "policy_error": str(exc)}
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
    return {"windows": len(windows), "hypotheses": len(ranked), "started": [h.id for h in chosen], "notes": notes[:20]}
