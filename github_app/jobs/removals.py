"""Taking a variant out: the one home of the revert PR and the retire PR.

Two inputs decide a revert, one decides a retirement; each PR is built here, once:

* **Revert** (:func:`revert`): a variant slower in production than it claimed. Its inputs
  are the claim verification's *contradicted* (:func:`revert_claim`, called by
  :mod:`github_app.jobs.verification`) and the Reasoner's ``rollback`` hypothesis
  (:func:`act_on`, called by the reason job), for variants whose claim the App did not record
  (merged before the App verified claims, by a person, on another deployment) or whose claim
  verification has ended. Both build the same removal change
  (:func:`pytest_aina.changer.change.removal.removal_change`, kind ``rollback``) with the same
  body (:func:`revert_body`: claimed against measured, the stored telemetry windows cited,
  the method), under one key: the removal hypothesis's id depends on kernel and variant only,
  so the publish job's key, the PR's branch and the store's open PR for that id are the same
  whichever input came first, and the second finds the first's PR.
* **Retire** (:func:`retire_hypothesis`): the Reasoner's ``retire`` hypothesis, computed with
  the policy's ``retire.unused_days`` (:func:`github_app.bridge.reasoner_config`) and its
  guards (the kernel was called meanwhile, its telemetry reaches back that far, the variant
  merged before the stretch): a PR removing the variant, which waits for a person unless
  ``retire.automerge``.

**Which wins** when a ``rollback`` names a variant whose merged claim is recorded: the claim's
verification, while it is still verifying. It judges the PR's own claim per shape with a
stated method and confidence (policy ``verify:``), where the Reasoner compares a mean with a
point figure from the dispatch table and a fixed tolerance; so the rollback waits (the
dashboard's hypothesis stays listed) and a contradiction reverts through :func:`revert_claim`.
A claim already contradicted or reverted has its revert from the verification. After the
verification has ended (confirmed, or undecided after ``verify.max_days``) a rollback acts:
production has changed since, and nothing else watches it. Either way the key makes it one PR.

Not every ``rollback`` is acted on: the Reasoner gives none where going back to the generic
variant would not gain (slower than claimed, but faster than ``generic`` at the same
shapes); the policy's ``kernels`` and ``min_expected_gain`` apply as they do to evolution
runs; a removal a person closed unmerged is not opened again.
"""

from __future__ import annotations

import json
from typing import Any

from github_app import bridge
from github_app.github import pulls
from github_app.jobs import JobContext, dashboard_job, handler
from github_app.policy import Policy, PolicyError, load_policy
from pytest_aina.changer.change import Change, ChangeError
from pytest_aina.changer.change.removal import removal_change, removal_hypothesis, table_path
from pytest_aina.gate.verification import CONTRADICTED
from pytest_aina.reasoner.hypothesis import Hypothesis

REMOVAL_KINDS = ("rollback", "retire")


def removal_id(kind: str, kernel: str, variant: str) -> str:
    """The key of a variant's revert (``rollback``) or retire PR: the removal hypothesis's id."""
    return removal_hypothesis(kind, kernel, variant, title="", evidence={}).id


# -- deciding ------------------------------------------------------------------------------------


def _claim_for(claims: list[dict], kernel: str, variant: str) -> dict | None:
    """The latest recorded claim of ``variant`` (``store.claims`` is oldest merge first)."""
    mine = [c for c in claims if c["kernel"] == kernel and c["variant"] == variant]
    return mine[-1] if mine else None


def decide(
    hypotheses: list[Hypothesis], policy: Policy, *, claims: list[dict], pulls_known: list[dict]
) -> tuple[list[tuple[Hypothesis, dict | None]], dict[str, str]]:
    """The ``rollback`` and ``retire`` hypotheses to open a PR for, each with the recorded
    claim it undoes (or None), and why each other one is left (hypothesis id -> reason).
    ``pulls_known``: the store's bot PRs (open, merged, closed)."""
    act: list[tuple[Hypothesis, dict | None]] = []
    why: dict[str, str] = {}
    by_id: dict[str, list[dict]] = {}
    for x in pulls_known:
        by_id.setdefault(x["hypothesis_id"], []).append(x)
    for h in hypotheses:
        if h.kind not in REMOVAL_KINDS or not h.variant:
            continue
        key = removal_id(h.kind, h.kernel, h.variant)
        mine = by_id.get(key, [])
        if any(x["state"] == "open" for x in mine):
            why[h.id] = f"its PR #{next(x['number'] for x in mine if x['state'] == 'open')} is open"
            continue
        if any(x["state"] != "open" and x.get("outcome") not in ("merged", "superseded") for x in mine):
            why[h.id] = "a person closed its PR unmerged; asking again is theirs to do"
            continue
        if not policy.kernel_allowed(h.kernel):
            why[h.id] = f"the policy's kernels do not include {h.kernel!r}"
            continue
        claim = _claim_for(claims, h.kernel, h.variant)
        if h.kind == "rollback":
            if h.expected_gain <= 0 or h.expected_gain < policy.min_expected_gain:
                why[h.id] = f"gain {h.expected_gain:g} GPU-s/day is below the policy's min_expected_gain"
                continue
            if claim is not None and claim["status"] in (CONTRADICTED, "reverted"):
                why[h.id] = f"#{claim['number']}'s verification contradicted its claim and reverts it"
                continue
            if claim is not None and claim["status"] == "verifying" and not (claim["verification"] or {}).get("final"):
                why[h.id] = f"#{claim['number']}'s claim is being verified; its verification decides"
                continue
        act.append((h, claim))
    return act, why


def act_on(ctx: JobContext, policy: Policy, hypotheses: list[Hypothesis]) -> dict[str, Any]:
    """Open (through the publish job) the revert and retire PRs ``hypotheses`` call for;
    what was queued and what was left, and why."""
    name = ctx.payload["repository"]
    act, why = decide(hypotheses, policy, claims=ctx.store.claims(name), pulls_known=ctx.store.pulls(name, limit=500))
    queued = []
    for h, claim in act:
        if h.kind == "rollback":
            out = revert(ctx, h.kernel, h.variant, rollback_verification(h), claimed=_rollback_claimed(h, claim))
        else:
            out = retire_hypothesis(ctx, h, policy)
        if out.get("branch"):
            queued.append(out["branch"])
        else:
            why[h.id] = out.get("note", "")
    return {"publishing": queued, "left": why}


# -- the revert ----------------------------------------------------------------------------------


def revert_claim(ctx: JobContext, row: dict, verification: dict) -> dict:
    """Queue the revert PR of contradicted claim ``row`` (the publish job opens it, or finds it)."""
    number = row["number"]
    if row.get("revert_number") is not None:
        return {"number": number, "status": CONTRADICTED, "revert": row["revert_number"]}
    out = revert(ctx, row["kernel"], row["variant"], verification, claimed=row)
    return {"number": number, "status": CONTRADICTED, "revert": out.get("branch"), **_note(out)}


def _note(out: dict) -> dict:
    return {"note": out["note"]} if "note" in out else {}


def _rollback_claimed(h: Hypothesis, claim: dict | None) -> dict:
    """The PR a rollback undoes, as :func:`revert_body` names it: the recorded claim's, else
    the one the dispatch table's evidence names (``pr``), else none."""
    if claim is not None:
        return claim
    c = h.evidence.get("claimed") or {}
    pr = c.get("pr")
    return {"number": pr if isinstance(pr, int) else None, "kernel": h.kernel, "variant": h.variant,
            "device": c.get("device")}  # fmt: skip


def revert(ctx: JobContext, kernel: str, variant: str, verification: dict, *, claimed: dict) -> dict:
    """The one revert: queue the PR taking ``variant`` out of ``kernel``'s table, its body
    showing ``verification`` (:meth:`pytest_aina.gate.verification.Verification.as_dict`'s
    form, or :func:`rollback_verification`'s); ``claimed``: the PR undone (``number``, may be
    None) and its device. ``{"branch": ...}`` when queued, ``{"note": ...}`` when nothing is
    left to remove."""
    number = claimed.get("number")
    what = f"(#{number})" if number else "(its dispatch table's evidence)"
    return _publish_removal(
        ctx,
        kind="rollback",
        kernel=kernel,
        variant=variant,
        title=f"{kernel}: revert {variant}, slower in production than claimed {what}",
        body=revert_body(claimed, verification),
        evidence={"reverts": number, "verification": verification},
        refs=_refs(verification),
        metadata={"reverts": number} if isinstance(number, int) else {},
    )


def rollback_verification(h: Hypothesis) -> dict:
    """A ``rollback`` hypothesis's comparison in the verification's form, so that one body
    shows either: one row (the evidence's shape, or its bandwidth), the windows it cites, and
    the method (a mean against the evidence's figure, the Reasoner's tolerance)."""
    ev = h.evidence
    c, m = ev.get("claimed") or {}, ev.get("measured") or {}
    ratio = float(ev.get("slowdown") or 0.0)
    claimed_s = c.get("latency_s")
    dims = m.get("dims") or c.get("dims") or {}
    case = ",".join(f"{k}={v}" for k, v in dims.items()) + (f",{c['dtype']}" if c.get("dtype") else "")
    if m.get("method") != "same_shape":  # bandwidth: the latency at the evidence's shape it amounts to
        case += " (bandwidth)"
    tol = float(ev.get("tolerance") or 0.0)
    windows = ev.get("windows") or {}
    shape = {
        "case": case,
        "dims": dims,
        "dtype": c.get("dtype"),
        "device": c.get("device"),
        "status": CONTRADICTED,
        "claimed_s": claimed_s,
        "claimed_ci_s": None,
        "threshold_s": claimed_s * (1 + tol) if claimed_s else None,
        "measured_s": m.get("latency_s") or (claimed_s * ratio if claimed_s else None),
        "measured_ci_s": None,
        "ratio": ratio or None,
        "level": None,
        "blocks": None,
        "windows": windows.get("count", 0),
        "calls": m.get("calls", 0),
        "refs": list(windows.get("refs") or ()),
        "first": windows.get("from"),
        "last": windows.get("to"),
        "note": ev.get("comparison"),
    }
    return {
        "kernel": h.kernel,
        "variant": h.variant,
        "status": CONTRADICTED,
        "reason": f"{h.title} ({ev.get('comparison', '')}); the Reasoner's rollback hypothesis {h.id}",
        "final": True,
        "method": {
            "statistic": "mean latency per call (GPU time over calls) of the variant's production windows, "
            "against the latency in the dispatch table's evidence (the Reasoner's rollback detector)",
            "interval": "no interval: a point comparison with a tolerance",
            "confidence": None,
            "noise": tol,
        },
        "shapes": [shape],
    }


def _refs(verification: dict) -> list[str]:
    return [ref for s in verification.get("shapes") or () for ref in s.get("refs") or ()]


def _us(s: float | None) -> str:
    return "–" if s is None else f"{s * 1e6:.1f} µs"


def _ids(refs: list[str]) -> str:
    """``telemetry_windows#3..#9, #12`` for the body (every id is in the statement)."""
    ids = sorted({int(r.rpartition("#")[2]) for r in refs if r.rpartition("#")[2].isdigit()})
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
    undone = f"Reverts #{row['number']}" if row.get("number") else f"Reverts `{row['variant']}`"
    against = "its claim" if v.get("method", {}).get("confidence") is not None else "the evidence it was merged with"
    lines = [
        f"{undone}: production contradicts {against} for `{row['kernel']}` "
        f"variant `{row['variant']}` on {row.get('device') or 'its device'}.",
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
        hours = "–" if s.get("blocks") is None else s["blocks"]
        lines.append(
            f"| {s['case']} | {_us(s.get('claimed_s'))} [{_us(ci[0])}, {_us(ci[1])}] | {_us(s.get('threshold_s'))} "
            f"| {_us(s.get('measured_s'))} [{_us(mci[0])}, {_us(mci[1])}] | {ratio} | {hours} "
            f"| {s.get('windows', 0)} | {s.get('calls', 0)} | {s['status']} |"
        )
    m = v.get("method") or {}
    lines += [
        "",
        f"**Telemetry windows cited** (ids in the App's store): {_ids(_refs(v))}.",
        "",
        f"**Method:** {m.get('statistic', '')}; {m.get('interval', '')}; confidence {m.get('confidence')}, "
        f"noise margin {m.get('noise')}"
        + (" (policy `verify:`)." if m.get("confidence") is not None else " (the Reasoner's rollback tolerance)."),
        "",
        f"The variant leaves `kernels/variants/{row['kernel']}.yaml` (the generic variant serves its calls again) "
        "and its generated tests go with it; the spec's pinned examples stay (they are boundaries the generic "
        "variant still passes). This PR passes the gate like any change.",
    ]
    return "\n".join(lines) + "\n"


# -- the retirement ------------------------------------------------------------------------------


def retire_hypothesis(ctx: JobContext, h: Hypothesis, policy: Policy) -> dict:
    """Queue the PR retiring ``h.variant`` (a ``retire`` hypothesis), citing its evidence."""
    ev = h.evidence
    days = policy.retire.unused_days
    while_idle = ev.get("kernel_windows_while_idle") or {}
    refs = list(while_idle.get("refs") or ())
    last = ev.get("last_call")
    return _publish_removal(
        ctx,
        kind="retire",
        kernel=h.kernel,
        variant=h.variant,
        title=f"{h.kernel}: retire {h.variant}, unused for {days:g} days",
        body=(
            f"Retires `{h.variant}` of `{h.kernel}`: no call "
            + (f"since {last}" if last else "in the App's stored telemetry")
            + f" (from {ev.get('telemetry_from')}), while `{h.kernel}` ran "
            f"{while_idle.get('count', 0)} windows in the silent stretch {ev.get('idle_from')} – {ev.get('idle_to')} "
            f"(policy `retire.unused_days: {days:g}`; the Reasoner's retire hypothesis {h.id}).\n\n"
            f"**Telemetry windows cited** (ids in the App's store, the kernel's busiest in the stretch): {_ids(refs)}.\n\n"
            f"The variant leaves `kernels/variants/{h.kernel}.yaml`; its generated tests go with it; the spec's "
            "pinned examples stay. A retirement merges on its own only when the policy's `retire.automerge` is true.\n"
        ),
        evidence={"unused_days": days, "hypothesis": h.id, **ev},
        refs=refs,
        metadata={},
    )


def _publish_removal(
    ctx: JobContext,
    *,
    kind: str,
    kernel: str,
    variant: str,
    title: str,
    body: str,
    evidence: dict,
    refs: list[str],
    metadata: dict,
) -> dict:
    """Build the removal change on the default branch's head and queue its publish job."""
    # evolution imports verification (the track record for a PR's body), which imports this
    # module for its revert: the publish job's spec is read here, when a removal is queued
    from github_app.jobs.evolution import publish_job

    p = ctx.payload
    repo = ctx.repo()
    base = repo.ref(f"heads/{repo.default_branch}").object.sha
    tree = repo.git_commit(base).tree.sha
    present = pulls.paths_at(repo, tree)
    table = table_path(kernel)
    if table not in present:
        return {"note": f"{table} is not on the default branch"}
    try:
        change: Change = removal_change(
            kind=kind,
            kernel=kernel,
            variant=variant,
            base=base,
            table_text=pulls.file_at(repo, tree, table).decode("utf-8"),
            present=present,
            title=title,
            body=body,
            evidence=evidence,
            telemetry=json.dumps(sorted(set(refs))).encode(),
            labels=("risk:low",),
            metadata=metadata,
        )
    except ChangeError as exc:
        # the variant is gone already (a person removed it, or the other input's PR merged)
        return {"note": str(exc)}
    ctx.then(publish_job(p["repository"], p["installation_id"], change))
    return {"branch": change.branch}


# -- what the dashboard shows, and the hourly look -------------------------------------------------


def retire_candidates(store, repository: str) -> list[dict[str, Any]]:
    """The variants the Reasoner's last look found unused (its ``retire`` hypotheses), each
    with its PR when one is open."""
    out = []
    for h in bridge.stored_hypotheses(store.hypotheses(repository)):
        if h.kind != "retire" or not h.variant:
            continue
        link = store.open_pull(repository, removal_id("retire", h.kernel, h.variant))
        out.append({"kernel": h.kernel, "variant": h.variant, "reason": h.title, "number": link and link["number"]})
    return out


@handler("retire")
def retire(ctx: JobContext):
    """The hourly look (queued by ``verify_all``): the removals the Reasoner's stored
    hypotheses call for and that no PR carries yet (a reason job that failed after storing
    them, a policy that changed since). The reason job does the same after each batch."""
    p = ctx.payload
    name, inst = p["repository"], p["installation_id"]
    repo = ctx.repo()
    try:
        policy = load_policy(repo, repo.default_branch)
    except PolicyError as exc:
        return {"skipped": f"the policy cannot be read: {exc}"}
    done = act_on(ctx, policy, bridge.stored_hypotheses(ctx.store.hypotheses(name)))
    ctx.finally_(dashboard_job(name, inst))
    return done
