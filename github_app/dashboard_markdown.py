"""The dashboard issue: one per repository, rewritten by the App, read by the team.

In the manner of Renovate's Dependency Dashboard: the ranked hypotheses with their expected
gain, the open and recent bot PRs with their outcome, what waits for a human, and a
check-box per hypothesis that a maintainer ticks to ask for a run. A ticked box comes back
as an ``issues.edited`` webhook; :func:`ticked` reads it, and the next rendering clears it.
"""

from __future__ import annotations

import re
import time
from typing import Any

TITLE = "aina dashboard"
LABEL = "aina-dashboard"
MARKER = "<!-- aina:dashboard -->"
_BOX = "<!-- aina-run:{} -->"
_TICKED = re.compile(r"^\s*[-*] \[[xX]\] <!-- aina-run:([A-Za-z0-9_.:/@+=-]{1,200}) -->", re.MULTILINE)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:/@+=-]{1,200}$")


def gain_of(hypothesis: dict[str, Any]) -> float:
    """Expected gain in GPU-seconds per day (a number, or an object holding one)."""
    gain = hypothesis.get("expected_gain")
    if isinstance(gain, dict):
        for key in ("gpu_seconds_per_day", "gpu_s_per_day", "value"):
            if isinstance(gain.get(key), (int, float)) and not isinstance(gain.get(key), bool):
                return float(gain[key])
        return 0.0
    if isinstance(gain, (int, float)) and not isinstance(gain, bool):
        return float(gain)
    return 0.0


def format_gain(seconds_per_day: float) -> str:
    if seconds_per_day >= 3600:
        return f"{seconds_per_day / 3600:.1f} GPU-h/day"
    if seconds_per_day >= 60:
        return f"{seconds_per_day / 60:.1f} GPU-min/day"
    return f"{seconds_per_day:.1f} GPU-s/day"


def sentence(hypothesis: dict[str, Any]) -> str:
    for key in ("summary", "sentence", "title", "description"):
        value = hypothesis.get(key)
        if isinstance(value, str) and value.strip():
            return _cell(value.strip().splitlines()[0])
    return _cell(f"{hypothesis.get('kind', 'hypothesis')} on {hypothesis.get('kernel', '?')}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _share(value: Any) -> str:
    return f"{_number(value):.0%}"


def _when(ts: float | None) -> str:
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def ticked(body: str | None) -> list[str]:
    """Hypothesis ids whose box is ticked in ``body``, in order, without repeats."""
    seen: list[str] = []
    for match in _TICKED.finditer(body or ""):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


#: What the merging job last decided (github_app.jobs.merging.STATES), as the dashboard says it.
MERGING_WORDS = {
    "awaiting-gate": "awaiting gate",
    "soaking": "soaking",
    "awaiting-review": "awaiting review",
    "refused": "not merging",
    "merge-refused": "merge refused by GitHub",
    "merged": "merged",
}


#: A merged claim's stage (the store's claim states), as the dashboard and PR bodies say it.
CLAIM_WORDS = {
    "verifying": "merged and verifying",
    "confirmed": "confirmed",
    "contradicted": "contradicted",
    "reverted": "contradicted and reverted",
    "inconclusive": "inconclusive",
}


def claim_stage(claim: dict[str, Any]) -> str:
    """A merged claim's stage, with its revert PR and the latest look's reason."""
    word = CLAIM_WORDS.get(str(claim.get("status")), str(claim.get("status")))
    if claim.get("revert_number"):
        word += (
            f" (revert #{claim['revert_number']})"
            if claim.get("status") == "contradicted"
            else f" by #{claim['revert_number']}"
        )
    v = claim.get("verification") or {}
    if claim.get("status") == "verifying":
        word += ": " + (str(v.get("reason")) if v else "no production telemetry of the variant yet")
    elif claim.get("status") == "inconclusive":
        word += ": " + str(v.get("reason") or "not enough data")
    return word


def _ratio(claim: dict[str, Any]) -> str:
    ratios = [s.get("ratio") for s in (claim.get("verification") or {}).get("shapes") or () if s.get("ratio")]
    return f"{sorted(ratios)[len(ratios) // 2]:.2f}" if ratios else "–"


def merging_state(pull: dict[str, Any]) -> str:
    """An open bot PR's merging state: awaiting gate (nothing decided for its head yet),
    soaking (until when), awaiting review, not merging (why), merged."""
    state = pull.get("merging")
    if not isinstance(state, dict) or state.get("head") != pull.get("head_sha"):
        return "awaiting gate"
    word = MERGING_WORDS.get(str(state.get("state")), str(state.get("state")))
    if state.get("state") == "soaking" and state.get("until"):
        return f"{word} until {str(state['until'])[:16].replace('T', ' ')} UTC"
    if state.get("state") in ("refused", "merge-refused"):
        return f"{word}: {str(state.get('reason') or '')[:200]}"
    return word


def _awaits_person(pull: dict[str, Any]) -> bool:
    """Whether a person is what an open bot PR waits for (not the gate, not its soak)."""
    said = merging_state(pull)
    return not said.startswith(("awaiting gate", "soaking", "merged"))


def render(
    *,
    repository: dict[str, Any],
    hypotheses: list[dict[str, Any]],
    open_pulls: list[dict[str, Any]],
    recent_pulls: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    waiting: list[str],
    queued: set[str],
    telemetry: dict[str, Any],
    telemetry_url: str | None = None,
    claims: list[dict[str, Any]] = (),
    records: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
    retire_candidates: list[dict[str, Any]] = (),
    left_alone: list[dict[str, Any]] = (),
) -> str:
    """The dashboard's markdown. Deterministic for the same inputs (no clock in it), so
    an unchanged dashboard is not edited again."""
    open_by_hyp = {p["hypothesis_id"]: p for p in open_pulls}
    lines = [
        MARKER,
        "",
        "This issue is kept up to date by the aina App. Tick a box to ask for an "
        "evolution run; the App clears it when the run is queued.",
        "",
    ]
    baseline = repository.get("baseline_sha")
    lines.append(
        f"**Baseline:** `{repository.get('default_branch') or '?'}` at "
        f"{baseline[:12] if baseline else 'unknown'} · **Telemetry:** "
        f"{telemetry.get('windows') or 0} windows from "
        f"{telemetry.get('services') or 0} service(s), last received "
        f"{_when(telemetry.get('last_received'))}"
    )
    if telemetry_url:
        lines.append(f"\nProduction sends telemetry to `{telemetry_url}`.")

    lines += ["", "## Hypotheses, ranked by expected gain", ""]
    if not hypotheses:
        lines.append("None yet: the Reasoner runs when telemetry arrives and on a schedule.")
    for rank, h in enumerate(hypotheses[:30], 1):
        hid = str(h.get("id"))
        status = ""
        if hid in open_by_hyp:
            status = f" — PR #{open_by_hyp[hid]['number']} open"
        elif hid in queued:
            status = " — run queued"
        text = (
            f"**#{rank}** {_cell(str(h.get('kind', '?')))} on "
            f"`{_cell(str(h.get('kernel', '?')))}` (`{_cell(hid)}`): {sentence(h)} — "
            f"expected gain {format_gain(gain_of(h))}{status}"
        )
        if _SAFE_ID.match(hid) and hid not in open_by_hyp and hid not in queued:
            lines.append(f"- [ ] {_BOX.format(hid)} {text}")
        else:
            lines.append(f"- {text}")

    if left_alone:
        # the Reasoner's silence explained: a hot kernel with no hypothesis is not an oversight
        lines += ["", "## Hot kernels left alone, and why", ""]
        lines += [
            f"- `{_cell(str(x.get('kernel', '?')))}` ({_share(x.get('share_of_gpu_time'))} of GPU time, "
            f"{format_gain(_number(x.get('gpu_s_per_day')))}): {_cell(str(x.get('detail') or x.get('reason') or ''))}"
            for x in left_alone[:20]
        ]

    lines += ["", "## Open bot PRs", ""]
    if open_pulls:
        lines += ["| PR | hypothesis | kernel | head | merging |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| #{p['number']} | `{_cell(p['hypothesis_id'])}` | {_cell(p.get('kernel') or '')}"
            f" | {(p.get('head_sha') or '')[:12]} | {_cell(merging_state(p))} |"
            for p in open_pulls
        ]
    else:
        lines.append("None.")

    lines += ["", "## Recent bot PRs", ""]
    if recent_pulls:
        lines += ["| PR | hypothesis | outcome | by | closed |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| #{p['number']} | `{_cell(p['hypothesis_id'])}` | {p.get('outcome') or ''}"
            f" | {_cell(p.get('closed_by') or '')} | {_when(p.get('closed_at'))} |"
            for p in recent_pulls
        ]
    else:
        lines.append("None.")

    lines += ["", "## In production: merged claims", ""]
    if claims:
        lines += ["| PR | kernel | variant | stage | measured/claimed |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| #{c['number']} | {_cell(c.get('kernel') or '')} | `{_cell(c.get('variant') or '')}`"
            f" | {_cell(claim_stage(c))} | {_ratio(c)} |"
            for c in sorted(claims, key=lambda c: -(c.get("merged_at") or 0))[:20]
        ]
    else:
        lines.append("None yet: a merged bot PR's claim is verified against production telemetry.")

    kernels, proposers = records
    if kernels or proposers:
        lines += ["", "## Track record", ""]
        lines += [f"- {_cell(r.sentence(k))}." for k, r in kernels.items()]
        lines += [f"- {_cell(r.sentence(f'proposer {k}'))}." for k, r in proposers.items()]

    lines += ["", "## Retire candidates", ""]
    if retire_candidates:
        lines += [
            f"- `{_cell(c['kernel'])}` variant `{_cell(c['variant'])}`: {_cell(c.get('reason') or '')}"
            + (f" — PR #{c['number']}" if c.get("number") else "")
            for c in retire_candidates
        ]
    else:
        lines.append("None.")

    lines += ["", "## Waiting for a human", ""]
    needs = list(waiting)
    needs += [f"PR #{p['number']} awaits a person: {_cell(merging_state(p))}." for p in open_pulls if _awaits_person(p)]
    failed_runs = [r for r in runs if r.get("outcome") == "failed"][:10]
    needs += [f"Run for `{_cell(r['hypothesis_id'])}` failed: {_cell(r.get('detail') or '')}" for r in failed_runs]
    if repository.get("policy_error"):
        needs.insert(0, f"The policy file is wrong: {_cell(repository['policy_error'])}")
    lines += [f"- {n}" for n in needs] or ["Nothing."]
    return "\n".join(lines) + "\n"
