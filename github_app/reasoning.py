"""The Reasoner, seen from the App: stored windows in, ranked hypotheses out, and which of
them are worth an evolution run now."""

from __future__ import annotations

from typing import Any

from github_app.dashboard import gain_of
from github_app.policy import Policy


def run_reasoner(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranked hypotheses (JSON objects with at least ``id``, ``kind``, ``kernel``,
    ``evidence`` and ``expected_gain``) from the wire-format windows of one repository."""
    try:
        from pytest_aina import reasoner
    except ImportError:
        raise NotImplementedError("pytest_aina.reasoner is not available (issue 4, the "
                                  "Reasoner)") from None
    from pytest_aina.telemetry.window import Window

    api = getattr(reasoner, "reason", None)
    if api is None:
        raise NotImplementedError("pytest_aina.reasoner has no reason(windows) yet")
    found = api([Window.from_dict(w, ref=f"store#{i}") for i, w in enumerate(windows)])
    out = []
    for h in found:
        data = h if isinstance(h, dict) else h.to_json()
        if "id" not in data:
            raise ValueError(f"a hypothesis from the Reasoner has no id: {sorted(data)}")
        out.append(data)
    return out


def worth_running(hypotheses: list[dict[str, Any]], policy: Policy, *, open_ids: set[str],
                  rejected_ids: set[str], queued_ids: set[str]) -> list[dict[str, Any]]:
    """The hypotheses to start evolution runs for, best first.

    At most one open PR (or queued run) per hypothesis; none for a hypothesis a human
    already turned down (its PR was closed unmerged: asking again is their call, through
    the dashboard or ``/aina retry``); within the policy's kernels, gain threshold, and
    free PR slots (open PRs plus runs already queued count against ``max_open_prs``).
    """
    if not policy.automatic:
        return []
    slots = policy.max_open_prs - len(open_ids) - len(queued_ids - open_ids)
    chosen: list[dict[str, Any]] = []
    for h in hypotheses:
        if slots <= 0:
            break
        hid = str(h.get("id"))
        if hid in open_ids or hid in queued_ids or hid in rejected_ids:
            continue
        if gain_of(h) < policy.min_expected_gain or gain_of(h) <= 0:
            continue
        if not policy.kernel_allowed(h.get("kernel") if isinstance(h.get("kernel"), str)
                                     else None):
            continue
        chosen.append(h)
        slots -= 1
    return chosen
