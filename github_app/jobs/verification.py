"""After the merge: verify the claim in production, revert what production contradicts,
retire what no call uses.

* **At merge** (:func:`record_merged_claim`, called by merging's job and by GitHub's closed
  event) the App records what the PR claimed, read from its change's attestation: the
  variant, the hot shapes, the latency per case with its interval, the device, who proposed
  it (``store.record_claim``: once, whoever records it first). A revert or a retirement
  claims nothing; its merge marks the claim it undid ``reverted``.
* **As telemetry arrives** (the Reasoner's job after a batch, and every hour) a ``verify``
  job per open claim runs :func:`pytest_aina.gate.verification.verify` on the windows of
  its variant, with the policy's ``verify:`` settings, and keeps the answer
  (``store.settle_claim``: decided once; *not enough data yet* stays open until the
  policy's ``verify.max_days`` are over, then the claim is ``inconclusive``: final, shown on
  the dashboard, and counted in the track record as neither held nor broken).
* **Contradicted**: the same job hands the claim to the one revert
  (:func:`github_app.jobs.removals.revert_claim`: the variant leaves its dispatch table, its
  generated tests go, the spec's pinned examples stay), which the Reasoner's ``rollback``
  hypotheses also go through. One revert PR per variant: the revert's hypothesis id is the
  variant's (the store keeps one open PR per hypothesis, the publish job's key is that id,
  and a PR is found again by its branch), and a job run again after a kill finds the claim
  decided and queues the same publish, which finds the same PR.
* **Retire**: the Reasoner's ``retire`` hypotheses (:mod:`github_app.jobs.removals`, whose
  hourly ``retire`` job ``verify_all`` queues); a retire PR merges on its own only when
  ``retire.automerge`` says so.

The track record (:func:`pytest_aina.gate.verification.track_record`) is read from the stored
claims: per kernel and per proposer, for the dashboard, every PR's body and
``automerge.track_record``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from github_app.jobs import JobContext, dashboard_job, handler
from github_app.jobs.removals import retire_candidates  # noqa: F401 - the dashboard reads it here
from github_app.jobs.removals import revert_claim as _revert
from github_app.policy import PolicyError, load_policy
from github_app.store import JobSpec
from pytest_aina.changer.change import Change, ChangeError
from pytest_aina.gate.claims import Claim
from pytest_aina.gate.verification import (
    CONFIRMED,
    CONTRADICTED,
    INCONCLUSIVE,
    TrackRecord,
    claims_in,
    track_record,
    verify,
)
from pytest_aina.telemetry.window import Window


def verify_job(repository: str, installation_id: int, number: int) -> JobSpec:
    return JobSpec(
        "verify",
        {"repository": repository, "installation_id": installation_id, "number": number},
        key=f"verify:{repository}#{number}",
        repository=repository,
    )


def verify_all_job(repository: str | None = None) -> JobSpec:
    """Look at every open claim (of ``repository``, or of every repository) and every table."""
    return JobSpec(
        "verify_all",
        {"repository": repository} if repository else {},
        key=f"verify_all:{repository}" if repository else "verify_all",
        repository=repository,
    )


# -- at merge -------------------------------------------------------------------------------


def proposer_of(statement: dict) -> str | None:
    """Who proposed the winner: its candidate's proposer (``llm``, ``grid``, a team's own),
    from a change's in-toto statement."""
    for c in (statement.get("predicate") or {}).get("candidates") or ():
        if isinstance(c, dict) and c.get("role") == "winner" and isinstance(c.get("proposer"), str):
            return c["proposer"]
    return None


def claim_body(change: Change) -> dict[str, Any] | None:
    """What a merged change claimed, as the store keeps it; None for a change that claims
    no variant (a revert, a retirement)."""
    if change.metadata.get("kind") in ("rollback", "retire"):
        return None
    statement = change.statement
    claims = claims_in(statement, change.attestation)
    predicate = statement.get("predicate") or {}
    variant = (predicate.get("variant") or {}).get("name") if isinstance(predicate.get("variant"), dict) else None
    variant = variant or next((c.variant for c in claims if c.variant), None)
    if variant is None:
        return None
    return {
        "kernel": change.kernel or (claims[0].kernel if claims else None),
        "variant": variant,
        "proposer": proposer_of(statement),
        "device": claims[0].device_name if claims else None,
        "hypothesis_id": change.hypothesis_id,
        "title": change.title,
        "attestation": change.attestation,
        "hot_shapes": [c.label for c in claims],
        "claims": [asdict(c) for c in claims],
    }


def record_merged_claim(store, repository: str, installation_id: int, number: int) -> list[JobSpec]:
    """Record what merged PR ``number`` claimed (once), or, for a revert, that the claim it
    undid is reverted; the jobs that follow (its first verification)."""
    link = store.pull(repository, number)
    if link is None or not link.get("change"):
        return []
    try:
        change = Change.from_json(link["change"])
    except ChangeError:
        return []
    reverts = change.metadata.get("reverts")
    if change.metadata.get("kind") == "rollback" and isinstance(reverts, int):
        store.link_revert(repository, reverts, number, merged=True)
        return []
    body = claim_body(change)
    if body is None:
        return []
    store.record_claim(
        repository,
        number,
        kernel=body["kernel"],
        variant=body["variant"],
        proposer=body["proposer"],
        device=body["device"],
        merged_at=link.get("closed_at") or time.time(),
        body=body,
    )
    return [verify_job(repository, installation_id, number)]


# -- the track record ---------------------------------------------------------------------------


def records(store, repository: str) -> tuple[dict[str, TrackRecord], dict[str, TrackRecord]]:
    """The track record per kernel and per proposer, from the stored claims."""
    rows = store.claims(repository)
    kernels = {
        k: track_record(r for r in rows if r["kernel"] == k) for k in sorted({r["kernel"] for r in rows if r["kernel"]})
    }
    proposers = {
        p: track_record(r for r in rows if r["proposer"] == p)
        for p in sorted({r["proposer"] for r in rows if r["proposer"]})
    }
    return kernels, proposers


def record_sentence(store, repository: str, kernel: str | None, proposer: str | None = None) -> str:
    """The line every new PR's body carries: how the earlier claims for its kernel (and of
    its proposer) fared in production."""
    rows = store.claims(repository)
    text = track_record(r for r in rows if r["kernel"] == kernel).sentence(kernel or "this kernel")
    if proposer:
        text += "; " + track_record(r for r in rows if r["proposer"] == proposer).sentence(f"proposer {proposer}")
    return f"Track record: {text}."


def kernel_streak(store, repository: str, kernel: str | None) -> int:
    """Claims of ``kernel`` that held since its last contradicted one (automerge.track_record)."""
    return track_record(r for r in store.claims(repository) if r["kernel"] == kernel).streak


# -- verifying ---------------------------------------------------------------------------------


def _claims(body: dict) -> list[Claim]:
    out = []
    for c in body.get("claims") or ():
        c = dict(c)
        for key in ("ci", "latency_ci"):
            c[key] = tuple(c[key]) if c.get(key) else None
        out.append(Claim(**c))
    return out


def _windows(rows, variant: str | None = None) -> list[Window]:
    """Stored windows (of ``variant``), each citing its store id; the intake validated them,
    and one that no longer reads (a format older than this App) is left out, not fatal."""
    out = []
    for i, body in rows:
        if variant is not None and body.get("variant") != variant:
            continue
        try:
            out.append(Window.from_dict(body, ref=f"telemetry_windows#{i}"))
        except (KeyError, TypeError, ValueError):
            continue
    return out


@handler("verify_all")
def verify_all(ctx: JobContext):
    only = ctx.payload.get("repository")
    looked = {}
    for repo in ctx.store.repositories():
        name = repo["full_name"]
        if (only and name != only) or not repo["active"]:
            continue
        open_ = ctx.store.claims(name, "verifying")
        # a contradiction whose revert PR is not recorded yet (a job killed before it queued it)
        open_ += [c for c in ctx.store.claims(name, CONTRADICTED) if c["revert_number"] is None]
        for c in open_:
            ctx.then(verify_job(name, repo["installation_id"], c["number"]))
        if not only:  # retirement is a matter of days: the hourly schedule looks, not each batch
            ctx.then(
                JobSpec(
                    "retire",
                    {"repository": name, "installation_id": repo["installation_id"]},
                    key=f"retire:{name}",
                    repository=name,
                )
            )

        looked[name] = [c["number"] for c in open_]
    return {"claims": looked}


@handler("verify")
def verify_claim(ctx: JobContext):
    p = ctx.payload
    name, inst, number = p["repository"], p["installation_id"], p["number"]
    row = ctx.store.claim_of(name, number)
    if row is None:
        return {"skipped": f"no claim recorded for #{number}"}
    if row["status"] == CONTRADICTED:
        return _revert(ctx, row, row["verification"])  # decided earlier: the revert is what is left
    if row["status"] != "verifying":
        return {"skipped": f"#{number} is {row['status']}"}
    repo = ctx.repo()
    try:
        policy = load_policy(repo, repo.default_branch)
    except PolicyError as exc:
        ctx.store.update_repository(name, policy_error=str(exc))
        return {"skipped": f"the policy cannot be read: {exc}"}
    windows = _windows(ctx.store.telemetry_rows(name, row["kernel"], since=row["merged_at"] - 86400), row["variant"])
    result = verify(_claims(row["body"]), windows, policy=policy.verify, since=row["merged_at"], now=time.time(),
                    variant=row["variant"])  # fmt: skip
    data = result.as_dict()
    if result.status == CONTRADICTED:
        ctx.store.settle_claim(name, number, CONTRADICTED, data)
        ctx.finally_(dashboard_job(name, inst))
        return _revert(ctx, ctx.store.claim_of(name, number), data)
    # undecided when nothing more will decide it (max_days over, or a claim production
    # cannot compare with): inconclusive, final, never counted as held
    status = CONFIRMED if result.status == CONFIRMED else INCONCLUSIVE if result.final else "verifying"
    ctx.store.settle_claim(name, number, status, data)
    ctx.finally_(dashboard_job(name, inst))
    return {"number": number, "status": status, "reason": result.reason}
