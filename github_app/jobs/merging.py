"""Merging bot PRs: the gate reported, a soak ended, or someone wrote ``/aina merge``.

One job kind, ``merge``, for one PR: it reads what :func:`pytest_aina.gate.merging.decide`
needs from GitHub (the gate's verdict on the PR's head, the head's age, the risk tier, the
policy on the default branch, a ``/aina merge`` given for this head), decides, remembers
the decision in its checkpoint, then acts:

* **merge**: ``PUT .../merge`` with ``sha`` = the judged head (a newer push is never
  merged); GitHub's refusal (405, 409) is recorded and commented, never forced;
* **review**: the policy's ``reviewers``/``team_reviewers`` are requested, the reason commented;
* **wait** with a time: a pending ``aina / soak`` status, and the same job again then;
* **refuse**: nothing merges; the reason is commented.

Crash safety: a job run again (its worker killed) first asks GitHub whether the PR is
merged already (then it only records it), and acts on the decision in its checkpoint when
it was taken for the same head; every side effect is looked up or harmless when repeated
(comments are posted once, reviewer requests and statuses are idempotent on GitHub).

What the App last decided for each open PR is kept in the store's meta table
(:func:`merge_state`, shown on the dashboard); a merge is recorded on the PR's row
(outcome ``merged``).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from github_app.github import merges, pulls
from github_app.jobs import JobContext, dashboard_job, handler
from github_app.jobs.verification import kernel_streak, record_merged_claim
from github_app.policy import PolicyError, load_policy
from github_app.store import JobSpec
from pytest_aina.gate.merging import MERGE, REFUSE, REVIEW, WAIT, Decision, MergeCommand, decide
from pytest_aina.gate.policy import RISK_TIERS

#: The states :func:`merge_state` records (the dashboard's words for them:
#: :data:`github_app.dashboard_markdown.MERGING_WORDS`).
STATES = ("awaiting-gate", "soaking", "awaiting-review", "refused", "merge-refused", "merged")


def merge_job(
    repository: str,
    installation_id: int,
    number: int,
    head_sha: str | None,
    *,
    command: dict[str, Any] | None = None,
    delay: float = 0.0,
) -> JobSpec:
    """A look at PR ``number``: for the gate's report (or the soak's end) on ``head_sha``,
    or for a ``/aina merge`` (``command``: login and comment id; the PR's head then)."""
    key = f"merge:{repository}:{number}:" + (f"command:{command['comment_id']}" if command else str(head_sha))
    return JobSpec(
        "merge",
        {
            "repository": repository,
            "installation_id": installation_id,
            "number": number,
            "head_sha": head_sha,
            "command": command,
        },
        key=key,
        repository=repository,
        delay=delay,
    )


def _state_key(repository: str, number: int) -> str:
    return f"merging:{repository}#{number}"


def _command_key(repository: str, number: int) -> str:
    return f"merge-command:{repository}#{number}"


def merge_state(store, repository: str, number: int) -> dict[str, Any] | None:
    """What the App last decided about PR ``number`` (``state``: a key of :data:`STATES`,
    ``head``, ``reason``, ``until``), or None."""
    raw = store.get_meta(_state_key(repository, number))
    return json.loads(raw) if raw else None


def _record(ctx: JobContext, state: str, head: str, reason: str, until: str | None = None) -> None:
    p = ctx.payload
    ctx.store.set_meta(
        _state_key(p["repository"], p["number"]),
        json.dumps({"state": state, "head": head, "reason": reason, "until": until}, sort_keys=True),
    )


def _decision(data: dict[str, Any]) -> Decision:
    until = data.get("until")
    return Decision(
        action=data["action"],
        reason=data["reason"],
        reviewers=tuple(data.get("reviewers") or ()),
        team_reviewers=tuple(data.get("team_reviewers") or ()),
        until=datetime.fromisoformat(until) if until else None,
        merge_method=data.get("merge_method"),
        reasons=tuple(data.get("reasons") or ()),
    )


def _risk(verdict: dict[str, Any] | None, labels) -> str:
    """The change's tier: the gate's policy check says it (``data.risk``), else the PR's
    ``risk:`` label, else the highest."""
    for check in (verdict or {}).get("checks") or ():
        if isinstance(check, dict) and check.get("name") == "policy":
            risk = (check.get("data") or {}).get("risk")
            if risk in RISK_TIERS:
                return risk
    for name in labels:
        if name.startswith("risk:") and name[5:] in RISK_TIERS:
            return name[5:]
    return "high"


def _when(iso: str | None) -> datetime:
    if not iso:
        return datetime.now(UTC)  # no date: the soak starts now (the safe side)
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _command(ctx: JobContext, head: str) -> MergeCommand | None:
    """A ``/aina merge`` given for ``head`` (a newer push needs a new command)."""
    p = ctx.payload
    key = _command_key(p["repository"], p["number"])
    if p.get("command"):  # the command job checked write access before queueing this
        ctx.store.set_meta(key, json.dumps({"login": p["command"]["login"], "head": head}, sort_keys=True))
    raw = ctx.store.get_meta(key)
    given = json.loads(raw) if raw else None
    if given and given.get("head") == head:
        return MergeCommand(given["login"], True)
    return None


def _decide(ctx: JobContext, repo, pr, head: str, command: MergeCommand | None) -> Decision:
    p = ctx.payload
    link = ctx.store.pull(p["repository"], p["number"]) or {}
    report = merges.gate_report(repo, head)
    if report.conclusion is None:
        return Decision(WAIT, "the gate has not reported on this head yet")
    verdict = report.verdict
    if verdict is None:
        return Decision(
            WAIT,
            f"the gate's check concluded {report.conclusion}, but its verdict "
            f"(artifact `{merges.artifact_name(head)}`) cannot be read",
        )
    if verdict.get("verdict") == "pass" and report.conclusion != "success":
        return Decision(REFUSE, f"the gate's verdict says pass but its check concluded {report.conclusion}")
    try:
        policy = load_policy(repo, repo.default_branch)
    except PolicyError as exc:
        return Decision(REFUSE, f"the policy cannot be read: {exc}")
    labels = [lab["name"] for lab in (pr.labels or []) if isinstance(lab, dict) and "name" in lab]
    return decide(
        verdict,
        risk=_risk(verdict, labels),
        opened_at=_when(merges.head_time(repo, head)),
        now=datetime.now(UTC),
        policy=policy,
        command=command,
        head=head,
        # claims of the kernel that held in production since its last contradicted one; a
        # revert claims nothing (it gives the generic variant its calls back), so no
        # record is asked of it
        track_record=2**31
        if "aina:rollback" in labels
        else kernel_streak(ctx.store, p["repository"], link.get("kernel")),
        retire="aina:retire" in labels,
    )


@handler("merge")
def merge(ctx: JobContext):
    p = ctx.payload
    name, number = p["repository"], p["number"]
    link = ctx.store.pull(name, number)
    if link is None:
        return {"skipped": "not a bot PR"}
    repo = ctx.repo()
    pr = repo.pull_request(number)
    earlier = ctx.job.checkpoint.get("decision")
    if pr.merged:  # merged by an earlier try of this job, by another, or by a person
        person = pr.merged_by.login if pr.merged_by is not None else None
        return _merged(ctx, repo, pr.head.sha, earlier, sha=pr.merge_commit_sha, by=person)
    if pr.state != "open" or link["state"] != "open":
        return {"skipped": f"PR #{number} is closed"}
    head = pr.head.sha
    if p.get("head_sha") and p["head_sha"] != head:
        return {"skipped": f"head moved from {p['head_sha'][:12]} to {head[:12]}: the gate judges the new one"}
    command = _command(ctx, head)
    if earlier and earlier.get("head") == head:
        decision = _decision(earlier)
    else:
        decision = _decide(ctx, repo, pr, head, command)
        ctx.checkpoint(decision={**decision.as_dict(), "head": head, "by": command.login if command else None})
    return _act(ctx, repo, head, decision, command)


def _act(ctx: JobContext, repo, head: str, decision: Decision, command: MergeCommand | None):
    p = ctx.payload
    number = p["number"]
    short = head[:12]
    if decision.action == MERGE:
        if command is None:
            merges.soak_status(repo, head, "success", "soak over: merging")
        outcome = merges.merge(repo, number, head, decision.merge_method or "squash")
        if outcome.merged:
            return _merged(ctx, repo, head, ctx.job.checkpoint.get("decision"), sha=outcome.sha)
        again = repo.pull_request(number)
        if again.merged:  # another look merged it meanwhile
            return _merged(ctx, repo, again.head.sha, ctx.job.checkpoint.get("decision"), sha=again.merge_commit_sha)
        why = f"GitHub refused to merge {short} ({outcome.status}: {outcome.message or 'no reason given'})"
        _record(ctx, "merge-refused", head, why)
        pulls.comment_once(repo, number, f"Not merged: {why}. Decided: {decision.reason}.")
        ctx.finally_(dashboard_job(p["repository"], p["installation_id"]))
        return {"action": MERGE, "merged": False, "status": outcome.status, "message": outcome.message}
    if decision.action == REVIEW:
        refused = merges.request_reviewers(repo, number, decision.reviewers, decision.team_reviewers)
        note = f" (GitHub refused the review request: {refused})" if refused else ""
        _record(ctx, "awaiting-review", head, decision.reason + note)
        pulls.comment_once(repo, number, f"Not merging {short} on its own: {decision.reason}.{note}")
        ctx.finally_(dashboard_job(p["repository"], p["installation_id"]))
        return {"action": REVIEW, "reviewers": list(decision.reviewers), "teams": list(decision.team_reviewers)}
    if decision.action == WAIT:
        if decision.until is None:
            _record(ctx, "awaiting-gate", head, decision.reason)
            if command is not None:
                pulls.comment_once(
                    repo, number, f"@{command.login} `/aina merge` noted for {short}: {decision.reason}."
                )
            return {"action": WAIT, "reason": decision.reason}
        until = decision.until.astimezone(UTC)
        at = until.strftime("%Y-%m-%d %H:%M UTC")
        merges.soak_status(repo, head, "pending", f"soaking: merges on its own at {at} unless stopped")
        _record(ctx, "soaking", head, decision.reason, until.isoformat())
        delay = max(0.0, until.timestamp() - time.time()) + 1.0
        ctx.then(merge_job(p["repository"], p["installation_id"], number, head, delay=delay))
        ctx.finally_(dashboard_job(p["repository"], p["installation_id"]))
        return {"action": WAIT, "until": until.isoformat()}
    if decision.action == REFUSE:
        _record(ctx, "refused", head, decision.reason)
        pulls.comment_once(repo, number, f"Not merging {short}: {decision.reason}.")
        ctx.finally_(dashboard_job(p["repository"], p["installation_id"]))
        return {"action": REFUSE, "reason": decision.reason}
    raise ValueError(f"unknown decision {decision.action!r}")


def _merged(
    ctx: JobContext, repo, head: str, decision: dict[str, Any] | None, *, sha: str | None, by: str | None = None
):
    """Record a merged PR (once; a second call finds it recorded) and say why it merged.
    ``decision``: this job's (None: someone else merged it, ``by``)."""
    p = ctx.payload
    name, number = p["repository"], p["number"]
    by = (decision or {}).get("by") or (by if decision is None else None) or "aina"
    reason = (decision or {}).get("reason") or "merged"
    if not ctx.store.close_pull(name, number, "merged", by) and (decision or {}).get("by"):
        # GitHub's closed event got there first (a worker killed after the merge): it names
        # the App, which pressed the button; the merge was this person's command
        ctx.store.attribute_merge(name, number, by)
    _record(ctx, "merged", head, reason)
    # what it claimed, to verify in production (recorded once, whoever records the merge)
    for spec in record_merged_claim(ctx.store, name, p["installation_id"], number):
        ctx.then(spec)
    if decision is not None:
        pulls.comment_once(repo, number, f"Merged {head[:12]}: {reason}.")
    ctx.store.release_deferred(name)
    ctx.finally_(dashboard_job(name, p["installation_id"]))
    return {"action": MERGE, "merged": True, "sha": sha}
