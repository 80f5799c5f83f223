"""Jobs about one repository's events: baseline, bot PR outcomes, checks, commands."""

from __future__ import annotations

from github_app import bridge
from github_app.github import pulls
from github_app.jobs import EVOLUTION_QUEUE, JobContext, Permanent, dashboard_job, handler
from github_app.jobs.merging import merge_job
from github_app.jobs.verification import record_merged_claim
from github_app.store import JobSpec
from pytest_aina.changer.change import Change
from pytest_aina.reasoner.hypothesis import Hypothesis


def reason_job(repository: str, installation_id: int, delay: float = 0.0) -> JobSpec:
    return JobSpec(
        "reason",
        {"repository": repository, "installation_id": installation_id},
        key=f"reason:{repository}",
        repository=repository,
        delay=delay,
    )


def evolve_job(
    repository: str, installation_id: int, hypothesis: Hypothesis, *, requested_by: str | None = None
) -> JobSpec:
    """An evolution run for ``hypothesis``; it waits in the queue in its JSON form."""
    return JobSpec(
        "evolve",
        {
            "repository": repository,
            "installation_id": installation_id,
            "hypothesis": hypothesis.to_json(),
            "requested_by": requested_by,
        },
        key=f"evolve:{repository}:{hypothesis.id}",
        queue=EVOLUTION_QUEUE,
        repository=repository,
    )


@handler("baseline")
def baseline(ctx: JobContext):
    """A push to the default branch: the new baseline the next evolution starts from."""
    p = ctx.payload
    ctx.store.upsert_repository(p["repository"], p["installation_id"], default_branch=p["default_branch"])
    ctx.store.update_repository(p["repository"], baseline_sha=p["sha"])
    if ctx.store.telemetry_summary(p["repository"])["windows"]:
        ctx.then(reason_job(p["repository"], p["installation_id"]))
    ctx.finally_(dashboard_job(p["repository"], p["installation_id"]))
    return {"baseline": p["sha"]}


@handler("pull_closed")
def pull_closed(ctx: JobContext):
    """Record how a bot PR ended; a slot frees up for deferred changes."""
    p = ctx.payload
    outcome = "merged" if p["merged"] else "closed"
    recorded = ctx.store.close_pull(p["repository"], p["number"], outcome, p.get("by"))
    if p["merged"]:  # merged by a person: its claim is verified as the App's merges are
        for spec in record_merged_claim(ctx.store, p["repository"], p["installation_id"], p["number"]):
            ctx.then(spec)
    released = ctx.store.release_deferred(p["repository"])
    ctx.finally_(dashboard_job(p["repository"], p["installation_id"]))
    return {"recorded": recorded, "outcome": outcome, "released": released}


@handler("provenance")
def provenance(ctx: JobContext):
    """The App's check run on a bot PR: do the committed files match the attestation?"""
    p = ctx.payload
    link = ctx.store.pull_by_head(p["repository"], p["head_sha"])
    if link is None or not link.get("change"):
        return {"skipped": "not a bot PR head"}
    change = Change.from_json(link["change"])
    repo = ctx.repo()
    conclusion, title, summary = pulls.check_provenance(repo, p["head_sha"], change)
    check_id = pulls.post_check(repo, p["head_sha"], conclusion, title, summary, external_id=change.hypothesis_id)
    return {"conclusion": conclusion, "check_run": check_id}


@handler("command")
def command(ctx: JobContext):
    """``/aina rebase|retry|close|merge`` from a comment on a bot PR."""
    p = ctx.payload
    name, number, user, cmd = p["repository"], p["number"], p["user"], p["command"]
    link = ctx.store.pull(name, number)
    if link is None:
        return {"skipped": "not a bot PR"}
    repo = ctx.repo()
    reply = f"@{user} `/aina {cmd}` (comment {p['comment_id']}): "
    if not pulls.has_write_access(repo, user):
        pulls.comment_once(repo, number, reply + "refused: commands need write access to this repository.")
        return {"refused": user}
    if link["state"] != "open":
        pulls.comment_once(repo, number, reply + f"nothing to do: this PR is {link['outcome']}.")
        return {"skipped": "closed"}
    if cmd == "merge":  # merging's own job decides (on a passed gate only) and answers
        ctx.then(
            merge_job(name, p["installation_id"], number, None, command={"login": user, "comment_id": p["comment_id"]})
        )
        return {"merge": number}
    change = Change.from_json(link["change"])
    if cmd == "close":
        pulls.close_pull(repo, number, reply + "closing as asked.")
        ctx.store.close_pull(name, number, "closed-by-command", user)
        ctx.store.release_deferred(name)
        ctx.finally_(dashboard_job(name, p["installation_id"]))
        return {"closed": number}
    if cmd == "rebase":
        base = repo.default_branch
        published = pulls.publish(
            repo, change, base_branch=base, existing_number=number, existing_branch=link["branch"]
        )
        ctx.store.save_pull(
            name,
            change.hypothesis_id,
            number,
            published.branch,
            head_sha=published.head_sha,
            title=change.title,
            kernel=change.kernel,
            change=change.to_json(),
        )
        pulls.comment_once(repo, number, reply + f"rebased on `{base}`; head is now {published.head_sha[:12]}.")
        ctx.then(
            JobSpec(
                "provenance",
                {"repository": name, "installation_id": p["installation_id"], "head_sha": published.head_sha},
                key=f"provenance:{name}:{published.head_sha}",
                repository=name,
            )
        )
        return {"rebased": published.head_sha}
    if cmd == "retry":
        hypothesis = next(
            (h for h in bridge.stored_hypotheses(ctx.store.hypotheses(name)) if h.id == change.hypothesis_id), None
        )
        if hypothesis is None:
            pulls.comment_once(
                repo,
                number,
                reply + f"the Reasoner no longer ranks hypothesis `{change.hypothesis_id}`; nothing to retry.",
            )
            return {"skipped": "hypothesis gone"}
        ctx.then(evolve_job(name, p["installation_id"], hypothesis, requested_by=user))
        pulls.comment_once(
            repo, number, reply + "evolution queued again; this PR will be updated in place with the result."
        )
        return {"retry": change.hypothesis_id}
    raise Permanent(f"unknown command {cmd!r}")
