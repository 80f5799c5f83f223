"""The Reasoner's report as text a person reads at a glance."""

from __future__ import annotations

from pytest_aina.reasoner.report import Report
from pytest_aina.telemetry.window import format_time


def _h(seconds: float) -> str:
    """GPU time per day, always in GPU-seconds per day (the unit of every gain, so figures
    compare at a glance, and the same as the JSON's ``gpu_s_per_day``)."""
    return f"{seconds:,.0f} GPU-s/day" if seconds >= 10 else f"{seconds:.1f} GPU-s/day"


def _domain(d: dict) -> str:
    dims = " ".join(
        f"{k}={lo}" if lo == hi else f"{k}={lo}..{'' if hi is None else hi}"
        for k, (lo, hi) in (d.get("dims") or {}).items()
    )
    return " ".join(x for x in (dims, d.get("dtype") or "", d.get("arch") or "") if x)


def render(report: Report, source: str, *, max_issues: int = 20) -> str:
    p = report.profile
    out = []
    refused = len({(i.source, i.line) for i in report.issues})
    out.append(
        f"{source}: {report.windows_read} windows read, {refused} refused, "
        f"{p.windows} used" + (f", in {report.seconds:.2f} s" if report.seconds else "")
    )
    if not p.windows:
        out.append("no usable windows: nothing to reason about")
    else:
        out.append(
            f"from {format_time(p.t0)} to {format_time(p.t1)} ({p.span_s / 3600:.1f} h): "
            f"{_h(p.total_time_s * p.per_day)} in {len(p.kernels)} kernel(s), {len(p.services)} service(s), "
            f"{len(p.devices)} device type(s)"
        )
        out.append("")
        mid = p.t0 + p.span_s / 2
        first = {k: p.kernel_time_between(k, p.t0, mid) for k in p.kernels}
        second = {k: p.kernel_time_between(k, mid, p.t1 + p.bin_s) for k in p.kernels}
        f_total, s_total = sum(first.values()) or 1.0, sum(second.values()) or 1.0
        out.append(f"  {'where the GPU time goes':<24} {'share':>7} {'GPU time':>16}   {'1st half':>8} {'2nd half':>8}")
        for k, a in sorted(p.kernels.items(), key=lambda kv: (-kv[1].time_s, kv[0])):
            out.append(
                f"  {k:<24} {p.share(a.time_s):>7.1%} {_h(a.time_s * p.per_day):>16}   "
                f"{first[k] / f_total:>8.1%} {second[k] / s_total:>8.1%}"
            )
        for title, table in (("device", p.devices), ("service", p.services)):
            parts = [
                f"{name} {p.share(a.time_s):.0%}"
                for name, a in sorted(table.items(), key=lambda kv: (-kv[1].time_s, kv[0]))
            ]
            out.append(f"  by {title}: " + ", ".join(parts))
    out.append("")
    if report.hypotheses:
        out.append(f"hypotheses, most valuable first ({len(report.hypotheses)}):")
        out.append(f"  {'#':>2}  {'kind':<18} {'kernel':<12} {'expected gain':>18} {'of fleet':>8}  {'domain':<40} id")
        for n, h in enumerate(report.hypotheses, 1):
            domain = _domain(h.domain) + (f" [{h.variant}]" if h.variant else "")
            share = "" if h.gain_share is None else f"{h.gain_share:.2%}"
            out.append(
                f"  {n:>2}  {h.kind:<18} {h.kernel:<12} {_h(h.expected_gain):>18} {share:>8}  {domain:<40} {h.id}"
            )
            out.append(f"      {h.title}")
            merged = h.evidence.get("merged") or []
            if merged:
                out.append(
                    "      merged: " + ", ".join(f"{m['kind']} {_h(m['expected_gain'])} ({m['id']})" for m in merged)
                )
    else:
        out.append("no hypotheses: nothing in this telemetry crosses a threshold")
    if report.left_alone:
        out.append("")
        out.append(f"hot kernels left alone, and why ({len(report.left_alone)}):")
        for x in report.left_alone:
            out.append(f"  {x.kernel:<24} {x.share:>7.1%} {_h(x.gpu_s_per_day):>16}   {x.reason}")
            out.append(f"      {x.detail}")
    notes = list(report.notes)
    if notes:
        out.append("")
        out += [f"note: {n}" for n in notes]
    if report.issues:
        out.append("")
        out.append(f"refused windows ({len(report.issues)} issue(s)):")
        shown = report.issues if max_issues <= 0 else report.issues[:max_issues]
        out += [f"  {i}" for i in shown]
        if len(shown) < len(report.issues):
            out.append(
                f"  ... and {len(report.issues) - len(shown)} more (--max-issues 0 lists all; "
                "`aina telemetry check FILE` checks the format alone)"
            )
    return "\n".join(out)
