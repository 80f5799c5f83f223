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
* **Contradicted**: the same job builds the revert
  (:func:`pytest_aina.changer.change.removal.removal_change`: the variant leaves its
  dispatch table, its generated tests go, the spec's pinned examples stay) and queues it to
  the publish job, like any change. One revert PR per contradiction: the revert's hypothesis
  id is the variant's (the store keeps one open PR per hypothesis, the publish job's key is
  that id, and a PR is found again by its branch), and a job run again after a kill finds
  the claim decided and queues the same publish, which finds the same PR.
* **Retire**: a variant of a dispatch table on the default branch that no window of the last
  ``retire.unused_days`` used (while other variants of its kernel were called) gets a PR
  removing it; it merges on its own only when ``retire.automerge`` says so.

The track record (:func:`pytest_aina.gate.verification.track_record`) is read from the stored
claims: per kernel and per proposer, for the dashboard, every PR's body and
``automerge.track_record``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from github_app.github import pulls
from github_app.jobs import JobContext, dashboard_job, handler
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


def _revert(ctx: JobContext, row: dict, verification: dict) -> dict:
    """Queue the revert PR of a contradicted claim (the publish job opens it, or finds it)."""
    from github_app.jobs.evolution import publish_job
    from pytest_aina.changer.change.removal import removal_change, table_path

    p = ctx.payload
    name, inst, number = p["repository"], p["installation_id"], row["number"]
    if row.get("revert_number") is not None:
        return {"number": number, "status": CONTRADICTED, "revert": row["revert_number"]}
    repo = ctx.repo()
    base = repo.ref(f"heads/{repo.default_branch}").object.sha
    tree = repo.git_commit(base).tree.sha
    present = pulls.paths_at(repo, tree)
    kernel, variant = row["kernel"], row["variant"]
    table = table_path(kernel)
    if table not in present:
        return {
            "number": number,
            "status": CONTRADICTED,
            "revert": None,
            "note": f"{table} is not on the default branch",
        }
    table_text = pulls.file_at(repo, tree, table).decode("utf-8")
    try:
        change = removal_change(
            kind="rollback",
            kernel=kernel,
            variant=variant,
            base=base,
            table_text=table_text,
            present=present,
            title=f"{kernel}: revert {variant}, slower in production than claimed (#{number})",
            body=revert_body(row, verification),
            evidence={"reverts": number, "verification": verification},
            telemetry=json.dumps(sorted(_refs(verification))).encode(),
            labels=("risk:low",),
            metadata={"reverts": number},
        )
    except ChangeError as exc:
        # the variant is gone already (a person removed it): nothing to revert
        return {"number": number, "status": CONTRADICTED, "revert": None, "note": str(exc)}
    ctx.then(publish_job(name, inst, change))
    return {"number": number, "status": CONTRADICTED, "revert": change.branch}


def _refs(verification: dict) -> list[str]:
    return [ref for s in verification.get("shapes") or () for ref in s.get("refs") or ()]


def _us(s: float | None) -> str:
    return "–" if s is None else f"{s * 1e6:.1f} µs"


def _ids(refs: list[str]) -> str:
    """``telemetry_windows#3..#9, #12`` for the body (every id is in the statement)."""
    ids = sorted(int(r.rpartition("#")[2]) for r in refs if r.rpartition("#")[2].isdigit())
    if not ids:
        return "none"
    runs, start, prev = [], ids[0], ids[0]
    for i in ids[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        runs.append(f"#{start}" if start == prev else f"#{start}–#{prev}")
        if i is not None:
            start = prev = i
    return "telemetry_windows " + ", ".join(runs)


def revert_body(row: dict, verification: dict) -> str:
    """The revert PR's body: which PR, what it claimed against what production measured, on
    which stored telemetry windows, by which method."""
    v = verification
    lines = [
        f"Reverts #{row['number']}: production contradicts its claim for `{row['kernel']}` "
        f"variant `{row['variant']}` on {row['device'] or 'its device'}.",
        "",
        f"**Verdict:** {v.get('reason', '')}",
        "",
        "| shape | claimed median [95% CI] | threshold | production median [interval] | measured/claimed | hours | windows | calls | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in v.get("shapes") or ():
        ci = s.get("claimed_ci_s") or [None, None]
        mci = s.get("measured_ci_s") or [None, None]
        ratio = f"{s['ratio']:.2f}" if s.get("ratio") else "–"
        lines.append(
            f"| {s['case']} | {_us(s.get('claimed_s'))} [{_us(ci[0])}, {_us(ci[1])}] | {_us(s.get('threshold_s'))} "
            f"| {_us(s.get('measured_s'))} [{_us(mci[0])}, {_us(mci[1])}] | {ratio} | {s.get('blocks', 0)} "
            f"| {s.get('windows', 0)} | {s.get('calls', 0)} | {s['status']} |"
        )
    m = v.get("method") or {}
    lines += [
        "",
        f"**Telemetry windows cited** (ids in the App's store): {_ids(_refs(v))}.",
        "",
        f"**Method:** {m.get('statistic', '')}; {m.get('interval', '')}; confidence {m.get('confidence')}, "
        f"noise margin {m.get('noise')} (policy `verify:`).",
        "",
        f"The variant leaves `kernels/variants/{row['kernel']}.yaml` (the generic variant serves its calls again) "
        "and its generated tests go with it; the spec's pinned examples stay (they are boundaries the generic "
        "variant still passes). This PR passes the gate like any change.",
    ]
    return "\n".join(lines) + "\n"


# -- retiring ---------------------------------------------------------------------------------


def _retire_key(repository: str) -> str:
    return f"retire-candidates:{repository}"


def retire_candidates(store, repository: str) -> list[dict[str, Any]]:
    """The variants the last ``retire`` look found unused, each with its PR when one is open."""
    raw = store.get_meta(_retire_key(repository))
    out = []
    for c in json.loads(raw) if raw else ():
        link = store.open_pull(repository, _retire_id(c))
        out.append(dict(c, number=link["number"] if link else None))
    return out


def unused_variants(
    tables: dict[str, Any], windows: list[Window], *, now: float, days: float, merged: dict
) -> list[dict]:
    """The non-generic variants of ``tables`` (kernel -> parsed table) that no window of the
    last ``days`` used, for kernels whose telemetry covers those days and was called in them
    (a kernel production stopped calling is not the variant's fault); ``merged``: (kernel,
    variant) -> when it merged (a variant younger than ``days`` has not had its chance)."""
    cutoff = now - days * 86400
    out = []
    for kernel, table in sorted(tables.items()):
        mine = [w for w in windows if w.kernel == kernel]
        if not mine or min(w.start for w in mine) > cutoff + 3600:
            continue  # telemetry does not reach back that far: no one can say "unused"
        recent = [w for w in mine if w.start >= cutoff and w.calls > 0]
        if not recent:
            continue
        used = {w.variant for w in recent}
        for v in table.variants:
            if v.is_generic or v.name in used or merged.get((kernel, v.name), 0) > cutoff:
                continue
            calls = sum(w.calls for w in recent)
            out.append(
                {
                    "kernel": kernel,
                    "variant": v.name,
                    "reason": f"no call in {days:g} days, while {calls} calls of {kernel} went to "
                    + ", ".join(f"`{u}`" for u in sorted(used)),
                }
            )
    return out


@handler("retire")
def retire(ctx: JobContext):
    """Variants no call used for ``retire.unused_days``: a PR removing each (merged on its own
    only when ``retire.automerge`` says so; merging's ``decide`` asks a person otherwise)."""
    from github_app.jobs.evolution import publish_job
    from pytest_aina.changer.change.removal import removal_change
    from pytest_aina.runtime.dispatch import DispatchTableError, parse_table

    p = ctx.payload
    name, inst = p["repository"], p["installation_id"]
    repo = ctx.repo()
    try:
        policy = load_policy(repo, repo.default_branch)
    except PolicyError as exc:
        return {"skipped": f"the policy cannot be read: {exc}"}
    base = repo.ref(f"heads/{repo.default_branch}").object.sha
    tree = repo.git_commit(base).tree.sha
    present = pulls.paths_at(repo, tree)
    texts, tables = {}, {}
    for path in sorted(x for x in present if x.startswith("kernels/variants/") and x.endswith(".yaml")):
        kernel = path.rpartition("/")[2][: -len(".yaml")]
        texts[kernel] = pulls.file_at(repo, tree, path).decode("utf-8")
        try:
            tables[kernel] = parse_table(texts[kernel], path, kernel=kernel)
        except DispatchTableError:
            continue  # a broken table is the gate's to report
    now = time.time()
    days = policy.retire.unused_days
    windows = []
    rows = {}
    for kernel in tables:
        for w in _windows(ctx.store.telemetry_rows(name, kernel, since=now - (days + 1) * 86400)):
            windows.append(w)
            rows.setdefault(kernel, []).append(w.ref)
    merged = {(c["kernel"], c["variant"]): c["merged_at"] for c in ctx.store.claims(name)}
    found = unused_variants(tables, windows, now=now, days=days, merged=merged)
    ctx.store.set_meta(_retire_key(name), json.dumps(found, sort_keys=True))
    opened = []
    for c in found:
        if ctx.store.open_pull(name, _retire_id(c)) is not None:
            continue
        change = removal_change(
            kind="retire",
            kernel=c["kernel"],
            variant=c["variant"],
            base=base,
            table_text=texts[c["kernel"]],
            present=present,
            title=f"{c['kernel']}: retire {c['variant']}, unused for {days:g} days",
            body=(
                f"Retires `{c['variant']}` of `{c['kernel']}`: {c['reason']} (the App's stored telemetry, "
                f"{len(rows.get(c['kernel'], []))} windows of the kernel). The variant leaves "
                f"`kernels/variants/{c['kernel']}.yaml`; its generated tests go with it; the spec's pinned "
                "examples stay. A retirement merges on its own only when the policy's `retire.automerge` is true.\n"
            ),
            evidence={"unused_days": days, "reason": c["reason"], "windows": rows.get(c["kernel"], [])[-200:]},
            telemetry=json.dumps(sorted(rows.get(c["kernel"], []))).encode(),
            labels=("risk:low",),
        )
        ctx.then(publish_job(name, inst, change))
        opened.append(change.branch)
    ctx.finally_(dashboard_job(name, inst))
    return {"candidates": [f"{c['kernel']}/{c['variant']}" for c in found], "publishing": opened}


def _retire_id(c: dict) -> str:
    from pytest_aina.changer.change.removal import removal_hypothesis

    return removal_hypothesis("retire", c["kernel"], c["variant"], title="", evidence={}).id
