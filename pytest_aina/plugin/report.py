"""What a ``pytest --aina`` run reports: one JSON document (``--aina-report``) and the
terminal summary.

:class:`AinaReport` is registered as a plugin next to the session; it records every spec
item's outcome (and benchmark statistics) as the item finishes, and writes the document
with the environment the figures were measured on when the session ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pytest_aina import environment
from pytest_aina.plugin.items import SpecItem
from pytest_aina.plugin.session import AinaSession

REPORT_VERSION = 1


class AinaReport:
    def __init__(self, session: AinaSession):
        self.session = session

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if not isinstance(item, SpecItem):
            return report
        if report.when == "call" or (report.when == "setup" and not report.passed):
            entry = {
                "nodeid": item.nodeid,
                "spec": item.spec.name,
                "kind": item.kind,
                "case": item.case.as_dict() if item.case else None,
                "outcome": report.outcome,
                "duration_s": round(report.duration, 6),
            }
            if report.skipped and isinstance(report.longrepr, tuple):
                entry["reason"] = report.longrepr[2]
            elif report.failed:
                entry["message"] = str(report.longrepr)
            bm = getattr(item, "funcargs", {}).get("benchmark")
            # a round whose output check failed leaves no timing: pytest-benchmark's stats
            # of no data raise, and the failure (the finding) would become an INTERNALERROR
            if bm is not None and getattr(bm, "stats", None) is not None and bm.stats.stats.data:
                entry["benchmark"] = {"stats": bm.stats.stats.as_dict(), "extra_info": dict(bm.extra_info)}
            self.session.results.append(entry)
        return report

    def pytest_sessionfinish(self, session, exitstatus):
        s = self.session
        if not s.report_path:
            return
        counts: dict[str, int] = {}
        for r in s.results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        doc = {
            "aina_report": REPORT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration_s": round(time.time() - s.started, 3),
            "profile": s.profile_name,
            "implementation_override": s.impl_override,
            "environment": environment.collect(with_torch=s.started_device is not None, cwd=str(s.config.rootpath)),
            "specs": {
                name: {"path": str(spec.path), "implementation": spec.implementation, "reference": spec.reference}
                for name, spec in s.specs.items()
            },
            "summary": counts,
            "items": s.results,
        }
        path = Path(s.report_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")

    def pytest_terminal_summary(self, terminalreporter):
        s = self.session
        if not s.results:
            return
        tr = terminalreporter
        tr.section("aina")
        by_spec: dict[str, dict[str, int]] = {}
        for r in s.results:
            c = by_spec.setdefault(r["spec"], {})
            c[r["outcome"]] = c.get(r["outcome"], 0) + 1
        dev = s.started_device or "not started"
        tr.write_line(f"profile {s.profile_name} on {dev}" + (" (Triton interpreter)" if dev == "cpu" else ""))
        width = max(len(name) for name in by_spec)
        for name, c in sorted(by_spec.items()):
            tr.write_line(f"  {name:<{width}}  " + ", ".join(f"{n} {k}" for k, n in sorted(c.items())))
        if s.bench_results:
            tr.write_line("")
            tr.write_line(f"  {'benchmark':<{width + 40}} {'median':>12} {'throughput':>14} {'% of limit':>10}  clock")
            for b in s.bench_results:
                thr = (
                    f"{b['bytes_per_s'] / 1e9:.3g} GB/s"
                    if "bytes_per_s" in b
                    else (f"{b['flop_per_s'] / 1e12:.3g} TFLOP/s" if "flop_per_s" in b else "-")
                )
                pct = b.get("pct_of_hbm", b.get("pct_of_flops"))
                name = f"{b['spec']} {b['case']} ({b['which']})"
                tr.write_line(
                    f"  {name:<{width + 40}} {b['median_s'] * 1e3:>9.3f} ms {thr:>14} "
                    f"{(f'{pct:.1f}%' if pct is not None else '-'):>10}  {b['clock']}"
                )
        if s.report_path:
            tr.write_line(f"report written to {s.report_path}")
