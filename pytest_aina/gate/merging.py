"""What to do with a bot PR now: merge it, ask for a review, wait, or refuse.

The gate (:mod:`pytest_aina.gate.run`) says whether a change *may* merge; this module says
whether it merges *now, on its own*, from the gate's verdict (its JSON form,
``aina-gate/v1``: :func:`pytest_aina.gate.as_json`) and the PR's circumstances: its risk
tier, how long its current head has been up, the policy's ``automerge``, ``reviewers`` and
``retire`` keys, the kernel's track record in production, and whether a person with write
access commanded ``/aina merge``. It lives beside the verdict it reads and the policy it
applies; it is pure (no clock, no GitHub), so the App calls it with what it fetched and
every rule is a table test.

The rules, in order:

1. No verdict, or one for another commit than the PR's head: **wait** for the gate.
2. ``fail``: **refuse** (the reasons are the gate's). Nothing merges on a failed verdict,
   not even on command.
3. ``needs-evidence``: when the only thing missing is the approving review the policy
   wants for this tier (the gate's ``policy`` check), **review**; otherwise **refuse**:
   evidence is missing, and no command replaces it.
4. ``pass`` and ``/aina merge`` from someone with write access: **merge**, whatever the
   tier, the soak and the track record (a person took the decision).
5. ``pass`` otherwise: a retirement merges on its own only when ``retire.automerge`` says
   so; a variant only when its tier is in ``automerge.risk`` and the kernel's earlier
   claims held in production at least ``automerge.track_record`` times in a row. If not:
   **review**. If so, it **waits** until its head is ``automerge.min_age_hours`` old (the
   soak, so a person can still look), then **merges**.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pytest_aina.gate.policy import RISK_TIERS, Policy
from pytest_aina.gate.verdict import FAIL, NEEDS, PASS

MERGE, REVIEW, WAIT, REFUSE = "merge", "review", "wait", "refuse"
ACTIONS = (MERGE, REVIEW, WAIT, REFUSE)
VERDICT_FORMAT = "aina-gate/v1"


@dataclass(frozen=True)
class MergeCommand:
    """A ``/aina merge`` comment: who wrote it, and whether they have write access (the
    caller asks GitHub; a command from anyone else is ignored)."""

    login: str
    can_write: bool


@dataclass(frozen=True)
class Decision:
    action: str  # merge | review | wait | refuse
    reason: str
    reviewers: tuple[str, ...] = ()  # review: whom to ask
    team_reviewers: tuple[str, ...] = ()
    until: datetime | None = None  # wait: when to look again (None: when the gate reports)
    merge_method: str | None = None  # merge: squash | merge | rebase
    reasons: tuple[str, ...] = ()  # refuse: the gate's reasons, one per deciding check

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "reason": self.reason,
            "reviewers": list(self.reviewers),
            "team_reviewers": list(self.team_reviewers),
            "until": self.until.isoformat() if self.until else None,
            "merge_method": self.merge_method,
            "reasons": list(self.reasons),
        }


def decide(
    verdict: Mapping[str, Any] | None,
    *,
    risk: str,
    opened_at: datetime,
    now: datetime,
    policy: Policy,
    track_record: int = 0,
    command: MergeCommand | None = None,
    head: str | None = None,
    retire: bool = False,
) -> Decision:
    """The action for one bot PR now.

    ``verdict``: the gate's JSON verdict for the PR (None: not reported yet). ``risk``: the
    change's tier (its ``risk:`` label). ``opened_at``: when the PR got its current head
    (opened, or last pushed to): the soak restarts with what would be merged. ``now``: the
    caller's clock, same timezone awareness as ``opened_at``. ``track_record``: claims of the
    kernel that held in production since its last contradicted one
    (:func:`pytest_aina.gate.verification.track_record`). ``head``: the PR's head commit, to tell a
    stale verdict. ``retire``: the PR retires an unused variant.
    """
    if verdict is None:
        return Decision(WAIT, "the gate has not reported on this PR yet")
    if not isinstance(verdict, Mapping) or verdict.get("format") != VERDICT_FORMAT:
        return Decision(REFUSE, f"not a gate verdict in the {VERDICT_FORMAT} format")
    if head is not None and verdict.get("head") != head:
        judged = str(verdict.get("head") or "?")[:12]
        return Decision(WAIT, f"the gate judged {judged}, not the PR's head {head[:12]}: waiting for its new verdict")
    status = verdict.get("verdict")
    reasons = tuple(str(r) for r in verdict.get("reasons") or ())
    if status == FAIL:
        return Decision(REFUSE, "the gate failed: " + ("; ".join(reasons) or "no reason given"), reasons=reasons)
    if status == NEEDS:
        if _only_review_missing(verdict):
            return _review(policy, f"risk {risk}: the policy wants an approving review before the gate passes")
        return Decision(
            REFUSE, "the gate needs evidence: " + ("; ".join(reasons) or "no reason given"), reasons=reasons
        )
    if status != PASS:
        return Decision(REFUSE, f"the gate's verdict is {status!r}, not pass")

    method = policy.automerge.merge_method
    if command is not None and command.can_write:
        return Decision(MERGE, f"/aina merge by @{command.login} on a passed gate", merge_method=method)
    ignored = f" (/aina merge by @{command.login} ignored: no write access)" if command is not None else ""
    auto = policy.automerge
    if retire:
        if not policy.retire.automerge:
            return _review(policy, "a retirement merges on its own only with retire.automerge: true" + ignored)
    elif risk not in RISK_TIERS:
        return _review(policy, f"unknown risk tier {risk!r}: a person decides" + ignored)
    elif not auto.enabled:
        return _review(policy, "automerge is off in the policy: a person merges" + ignored)
    elif risk not in auto.risk:
        return _review(policy, f"risk {risk} is not among automerge.risk {list(auto.risk)}" + ignored)
    elif track_record < auto.track_record:
        return _review(
            policy,
            f"the kernel's claims held in production {track_record} time(s) in a row; "
            f"automerge.track_record wants {auto.track_record}" + ignored,
        )
    ready = opened_at + timedelta(hours=auto.min_age_hours)
    if now < ready:
        left = ready - now
        return Decision(
            WAIT,
            f"soak: {_hours(left)} of automerge.min_age_hours ({auto.min_age_hours:g} h) left" + ignored,
            until=ready,
        )
    what = "retirement" if retire else f"risk {risk}"
    return Decision(MERGE, f"{what}: gate passed, soak of {auto.min_age_hours:g} h over" + ignored, merge_method=method)


def _only_review_missing(verdict: Mapping[str, Any]) -> bool:
    """Whether the gate's one undecided check is the policy's wait for an approving review."""
    undecided = [c for c in verdict.get("checks") or () if isinstance(c, Mapping) and c.get("status") in (FAIL, NEEDS)]
    return bool(undecided) and all(c.get("name") == "policy" and c.get("status") == NEEDS for c in undecided)


def _review(policy: Policy, why: str) -> Decision:
    who = [*(f"@{r}" for r in policy.reviewers), *(f"team {t}" for t in policy.team_reviewers)]
    whom = ", ".join(who) if who else "anyone with write access (the policy names no reviewers)"
    return Decision(
        REVIEW,
        f"{why}; review by {whom}",
        reviewers=policy.reviewers,
        team_reviewers=policy.team_reviewers,
    )


def _hours(delta: timedelta) -> str:
    h = delta.total_seconds() / 3600
    return f"{h:.1f} h" if h >= 1 else f"{max(1, round(h * 60))} min"
