"""From a hypothesis to a change (evolve), and from a change to a PR (publish).

The two are separate jobs because they fail differently: evolution takes minutes and
runs on its own queue (so webhooks' jobs never wait behind it); publishing takes seconds
and is retried through GitHub's bad moments without evolving again.
"""

from __future__ import annotations

import time

from github_app import bridge
from github_app.github import pulls
from github_app.jobs import Deferred, JobContext, Permanent, dashboard_job, handler
from github_app.jobs.verification import proposer_of, record_sentence
from github_app.policy import PolicyError, load_policy
from github_app.store import JobSpec
from pytest_aina.changer.change import Change, ChangeError
from pytest_aina.reasoner.hypothesis import Hypothesis, HypothesisError


def publish_job(repository: str, installation_id: int, change: Change) -> JobSpec:
    return JobSpec(
        "publish",
        {"repository": repository, "installation_id": installation_id, "change": change.to_json()},
        key=f"publish:{repository}:{change.hypothesis_id}",
        repository=repository,
    )


@handler("evolve")
def evolve(ctx: JobContext):
    p = ctx.payload
    name, inst = p["repository"], p["installation_id"]
    try:
        hypothesis = Hypothesis.from_json(p["hypothesis"])
    except HypothesisError as exc:
        raise Permanent(f"malformed hypothesis: {exc}") from exc
    repo_row = ctx.store.repository(name)
    if repo_row is None or not repo_row["active"]:
        raise Permanent(f"{name} is no longer served by the App")
    if not p.get("requested_by") and ctx.store.open_pull(name, hypothesis.id):
        return {"skipped": "a PR is open for this hypothesis"}  # queued behind the run
    run_id = ctx.job.checkpoint.get("run_id")
    if run_id is None:
        run_id = ctx.store.start_run(name, hypothesis.id, ctx.job.id)
        ctx.checkpoint(run_id=run_id)
    repo = ctx.repo()
    ref = repo_row["baseline_sha"] or repo.ref(f"heads/{repo.default_branch}").object.sha
    # The checkout lives as long as the job, so a worker killed mid-search leaves the loop's
    # checkpoint for the next attempt to resume from.
    root = bridge.job_checkout(repo, ref, ctx.config["WORK_DIR"], ctx.job.id)
    # the telemetry the App holds now is what the change's attestation digests
    windows = ctx.store.telemetry_windows(name, since=time.time() - ctx.config["TELEMETRY_RETENTION_DAYS"] * 86400)
    try:
        change = bridge.evolve(root, hypothesis, ctx.config["EVOLUTION"], base=ref, windows=windows)
    except bridge.NoChange as exc:
        ctx.store.finish_run(run_id, "no-change", str(exc))
        bridge.drop_job_checkout(ctx.config["WORK_DIR"], ctx.job.id)
        ctx.finally_(dashboard_job(name, inst))
        return {"run": run_id, "no_change": str(exc)}
    except ChangeError as exc:
        ctx.store.finish_run(run_id, "failed", str(exc))
        bridge.drop_job_checkout(ctx.config["WORK_DIR"], ctx.job.id)
        ctx.finally_(dashboard_job(name, inst))
        raise Permanent(str(exc)) from exc
    bridge.drop_job_checkout(ctx.config["WORK_DIR"], ctx.job.id)
    if change.hypothesis_id != hypothesis.id:
        ctx.store.finish_run(run_id, "failed", "the change is for another hypothesis")
        raise Permanent(f"evolution returned a change for {change.hypothesis_id!r}, not {hypothesis.id!r}")
    ctx.store.finish_run(run_id, "change", change.title)
    ctx.then(publish_job(name, inst, change))
    ctx.finally_(dashboard_job(name, inst))
    return {"run": run_id, "branch": change.branch}


@handler("publish")
def publish(ctx: JobContext):
    """Open the change's PR, or update the open one for its hypothesis in place."""
    p = ctx.payload
    name, inst = p["repository"], p["installation_id"]
    try:
        change = Change.from_json(p["change"])
    except ChangeError as exc:
        raise Permanent(f"malformed change: {exc}") from exc
    repo_row = ctx.store.repository(name)
    if repo_row is None or not repo_row["active"]:
        raise Permanent(f"{name} is no longer served by the App")
    repo = ctx.repo()
    base_branch = repo.default_branch
    try:
        policy = load_policy(repo, base_branch)
    except PolicyError as exc:
        ctx.store.update_repository(name, policy_error=str(exc))
        ctx.finally_(dashboard_job(name, inst))
        raise Permanent(str(exc)) from exc
    if repo_row.get("policy_error"):
        ctx.store.update_repository(name, policy_error=None)
    refused = policy.refused_paths(change.files)
    if refused:
        raise Permanent(f"policy {policy.source} does not let the bot change: " + ", ".join(refused))
    if not policy.kernel_allowed(change.kernel):
        raise Permanent(f"policy {policy.source} does not let the bot evolve kernel {change.kernel!r}")

    existing = ctx.store.open_pull(name, change.hypothesis_id)
    if existing is None:
        adopted = pulls.find_pull(repo, change.branch)  # opened by a run that died after
        if adopted is not None:
            existing = {"number": adopted.number, "branch": change.branch}
    if existing is None:
        others = [x for x in ctx.store.pulls(name, state="open") if x["hypothesis_id"] not in change.supersedes]
        if len(others) >= policy.max_open_prs:
            raise Deferred(f"{len(others)} bot PR(s) open; policy allows {policy.max_open_prs}")

    published = pulls.publish(
        repo,
        change,
        base_branch=base_branch,
        existing_number=existing["number"] if existing else None,
        existing_branch=existing["branch"] if existing else None,
        note=record_sentence(ctx.store, name, change.kernel, proposer_of(change.statement)),
    )
    if existing and existing["number"] != published.number:
        # The PR we knew was closed on GitHub without our hearing of it.
        ctx.store.close_pull(name, existing["number"], "closed", None)
    ctx.store.save_pull(
        name,
        change.hypothesis_id,
        published.number,
        published.branch,
        head_sha=published.head_sha,
        title=change.title,
        kernel=change.kernel,
        change=change.to_json(),
    )

    reverts = change.metadata.get("reverts")
    if isinstance(reverts, int):  # a revert PR: the contradicted claim names it
        ctx.store.link_revert(name, reverts, published.number)

    superseded = []
    for old in change.supersedes:
        link = ctx.store.open_pull(name, old)
        if link is None or link["number"] == published.number:
            continue
        pulls.close_pull(repo, link["number"], f"Superseded by #{published.number}.")
        ctx.store.close_pull(name, link["number"], "superseded", None)
        superseded.append(link["number"])

    ctx.then(
        JobSpec(
            "provenance",
            {"repository": name, "installation_id": inst, "head_sha": published.head_sha},
            key=f"provenance:{name}:{published.head_sha}",
            repository=name,
        )
    )
    ctx.finally_(dashboard_job(name, inst))
    return {
        "number": published.number,
        "created": published.created,
        "head_sha": published.head_sha,
        "superseded": superseded,
    }
