"""The Reasoner: from production telemetry to ranked hypotheses of what is worth improving.

    from pytest_aina.reasoner import reason_about_file

    report = reason_about_file("telemetry/sample-fleet-day.jsonl", specs="specs", variants="kernels/variants")
    for h in report.hypotheses:          # ranked, most valuable first
        print(h.kind, h.kernel, h.expected_gain, h.title)

* :mod:`.inputs` — reading telemetry, specs, dispatch tables; refusing bad windows;
* :mod:`.profile` — the workload profile: shares, shape domains, the mix over time;
* :mod:`.detectors` — the five kinds of hypothesis and how their gains are estimated;
* :mod:`.hypothesis` — :class:`Hypothesis`, its stable id, the ranking;
* :mod:`.render` — the table a person reads.
"""

from pytest_aina.reasoner.detectors import ReasonerConfig
from pytest_aina.reasoner.hypothesis import KINDS, Hypothesis, hypothesis_id, rank
from pytest_aina.reasoner.reason import Report, reason, reason_about_file

__all__ = ["KINDS", "Hypothesis", "ReasonerConfig", "Report", "hypothesis_id", "rank", "reason", "reason_about_file"]
