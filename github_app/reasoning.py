"""The Reasoner, seen from the App: stored windows in, ranked hypotheses out, and which of
them are worth an evolution run now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from github_app.dashboard_markdown import gain_of
from github_app.policy import Policy


def run_reasoner(windows: list[dict[str, Any]], checkout: Path) -> tuple[list[dict[str, Any]],
                                                                          list[str]]:
    """Ranked hypotheses (``aina reason --json`` objects: ``id``, ``kind``, ``kernel``,
    ``evidence``, ``expected_gain``, ...) from one repository's stored windows, with the
    specs and dispatch tables of ``checkout`` (the repository at its baseline); and the
    Reasoner's notes about its inputs."""
    from pytest_aina.devices import load_table
    from pytest_aina.reasoner import reason
    from pytest_aina.reasoner.inputs import load_specs, load_tables
    from pytest_aina.telemetry.window import Window

    specs, notes = load_specs(checkout / "specs")
    tables, table_notes = load_tables(checkout / "kernels" / "variants")
    report = reason([Window.from_dict(w, ref=f"app-store#{i}") for i, w in enumerate(windows)],
                    specs, tables=tables, devices=load_table(None))
    return report.as_json(), notes + table_notes + report.notes


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
