"""Keeping the dashboard issue current, and acting on its ticked boxes; and the Reasoner's
left-alone list it shows (why a hot kernel got no hypothesis), kept between the reason job
that finds it and the dashboard job that draws it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from github_app import bridge, dashboard_markdown
from github_app.github import issues, pulls
from github_app.jobs import JobContext, dashboard_job, handler, merging, verification
from github_app.jobs.repository import evolve_job
from github_app.store import DEFERRED, FAILED, PENDING_STATES


def _left_alone_key(repository: str) -> str:
    return f"left-alone:{repository}"


def save_left_alone(store, repository: str, found: Iterable[Any]) -> None:
    """Keep the Reasoner's latest left-alone list for ``repository`` (its
    :class:`~pytest_aina.reasoner.left_alone.LeftAlone` objects, or their JSON form),
    replacing the one before: the reason job calls this with ``report.left_alone``
    next to ``store.replace_hypotheses``."""
    rows = [x.to_json() if hasattr(x, "to_json") else dict(x) for x in found]
    store.set_meta(_left_alone_key(repository), json.dumps(rows, sort_keys=True))


def left_alone(store, repository: str) -> list[dict[str, Any]]:
    """The left-alone list the last reason job kept (empty before one did)."""
    raw = store.get_meta(_left_alone_key(repository))
    return json.loads(raw) if raw else []


def _queued(ctx: JobContext, name: str) -> set[str]:
    out = set()
    for state in PENDING_STATES:
        for job in ctx.store.jobs(state=state, kind="evolve", repository=name):
            out.add(str(job.payload["hypothesis"]["id"]))
    return out


def _waiting(ctx: JobContext, name: str) -> list[str]:
    out = []
    for job in ctx.store.jobs(state=DEFERRED, repository=name, limit=20):
        out.append(f"A change waits for a free PR slot ({job.last_error}).")
    for job in ctx.store.jobs(state=FAILED, repository=name, limit=200)[-10:]:
        if job.kind in ("publish", "command", "provenance"):
            out.append(f"Job `{job.kind}` failed: {job.last_error}")
    return out


@handler("dashboard")
def update(ctx: JobContext):
    p = ctx.payload
    name = p["repository"]
    row = ctx.store.repository(name)
    if row is None or not row["active"]:
        return {"skipped": "not served"}
    pulls_all = ctx.store.pulls(name, limit=40)
    body = dashboard_markdown.render(
        repository=row,
        hypotheses=ctx.store.hypotheses(name),
        left_alone=left_alone(ctx.store, name),
        open_pulls=[
            dict(x, merging=merging.merge_state(ctx.store, name, x["number"]))
            for x in pulls_all
            if x["state"] == "open"
        ],
        recent_pulls=[x for x in pulls_all if x["state"] != "open"][:10],
        runs=ctx.store.runs(name),
        waiting=_waiting(ctx, name),
        queued=_queued(ctx, name),
        telemetry=ctx.store.telemetry_summary(name),
        claims=ctx.store.claims(name),
        records=verification.records(ctx.store, name),
        retire_candidates=verification.retire_candidates(ctx.store, name),
    )
    repo = ctx.repo()
    issue = issues.find_issue(
        repo, row.get("dashboard_issue"), label=dashboard_markdown.LABEL, marker=dashboard_markdown.MARKER
    )
    if issue is None:
        issue = issues.create_issue(repo, dashboard_markdown.TITLE, body, label=dashboard_markdown.LABEL)
        ctx.store.update_repository(name, dashboard_issue=issue.number)
        return {"issue": issue.number, "created": True}
    if row.get("dashboard_issue") != issue.number:
        ctx.store.update_repository(name, dashboard_issue=issue.number)
    return {"issue": issue.number, "edited": issues.set_body(issue, body)}


@handler("dashboard_edit")
def edited(ctx: JobContext):
    """A box was ticked: queue the runs a maintainer asked for, then redraw."""
    p = ctx.payload
    name, inst, sender = p["repository"], p["installation_id"], p["sender"]
    repo = ctx.repo()
    issue = repo.issue(p["number"])
    wanted = dashboard_markdown.ticked(issue.body)
    ctx.finally_(dashboard_job(name, inst))
    if not wanted:
        return {"ticked": []}
    if not pulls.has_write_access(repo, sender):
        pulls.comment_once(
            repo,
            p["number"],
            f"@{sender}: only people with write access can start evolution runs; the boxes were cleared.",
        )
        return {"refused": sender}
    by_id = {h.id: h for h in bridge.stored_hypotheses(ctx.store.hypotheses(name))}
    queued = []
    for hid in wanted:
        if hid in by_id and ctx.store.open_pull(name, hid) is None:
            ctx.then(evolve_job(name, inst, by_id[hid], requested_by=sender))
            queued.append(hid)
    return {"ticked": wanted, "queued": queued}
