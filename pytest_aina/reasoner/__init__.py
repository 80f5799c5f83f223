"""The Reasoner: from production telemetry to ranked hypotheses of what is worth improving.

    from pytest_aina.reasoner import reason_about_file

    report = reason_about_file("telemetry/sample-fleet-day.jsonl", specs="specs", variants="kernels/variants")
    for h in report.hypotheses:          # ranked, most valuable first
        print(h.kind, h.kernel, h.expected_gain, h.title)

* :mod:`.inputs` — reading telemetry, specs, dispatch tables; refusing bad windows;
* :mod:`.profile` — the workload profile: shares, shape domains, the mix over time;
* :mod:`.detectors` — the five kinds of hypothesis and how their gains are estimated;
* :mod:`.hypothesis` — :class:`Hypothesis` (what the Reasoner hands on, and its JSON form), its
  stable id, the ranking, and which kinds the Changer acts on;
* :mod:`.merge` — one hypothesis per domain: the detectors' overlapping specialisations merged;
* :mod:`.left_alone` — why a hot kernel got no hypothesis, computed from the data;
* :mod:`.report` — putting it together: :func:`reason`, :func:`reason_about_file`, :class:`Report`;
* :mod:`.render` — the table a person reads.

The names below load on first use: the GitHub App's web process needs :class:`Hypothesis`
(its settings and events name it) without the detectors and their inputs.
"""

from __future__ import annotations

import importlib

__all__ = [
    "ACTIONABLE",
    "KINDS",
    "Hypothesis",
    "HypothesisError",
    "ReasonerConfig",
    "Report",
    "hypothesis_id",
    "rank",
    "reason",
    "reason_about_file",
]

_WHERE = {
    "ACTIONABLE": "pytest_aina.reasoner.hypothesis",
    "KINDS": "pytest_aina.reasoner.hypothesis",
    "Hypothesis": "pytest_aina.reasoner.hypothesis",
    "HypothesisError": "pytest_aina.reasoner.hypothesis",
    "hypothesis_id": "pytest_aina.reasoner.hypothesis",
    "rank": "pytest_aina.reasoner.hypothesis",
    "ReasonerConfig": "pytest_aina.reasoner.detectors",
    "Report": "pytest_aina.reasoner.report",
    "reason": "pytest_aina.reasoner.report",
    "reason_about_file": "pytest_aina.reasoner.report",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pytest_aina.reasoner' has no attribute {name!r}")
