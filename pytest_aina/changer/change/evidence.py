"""The evidence a change carries: what triggered it, and what was measured.

* :func:`trigger`: the telemetry file's digest and the windows the hypothesis cites;
* :func:`measurements`: before/after per timed case, with confidence intervals and the
  share of the hardware limit (GPU only);
* :func:`table_evidence`: the dispatch entry's ``evidence`` (the hottest timed case);
* :func:`device`: what the timings were taken on, and whether they are GPU evidence.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest_aina.changer.change.attestation as att
import pytest_aina.changer.change.shapes as shapes
from pytest_aina.changer.change.model import ChangeError
from pytest_aina.changer.change.testgen import Shape
from pytest_aina.changer.model import Attempt, SearchRecord
from pytest_aina.devices import lookup
from pytest_aina.reasoner.hypothesis import Hypothesis


def trigger(hyp: Hypothesis, repo: Path, telemetry: str | Path | None) -> dict:
    """What set the change off: the telemetry file's digest, and the windows the evidence cites."""
    out: dict = {"hypothesis_kind": hyp.kind}
    if telemetry is not None:
        path = Path(telemetry)
        if not path.is_file():
            raise ChangeError(f"telemetry {path}: no such file")
        try:
            shown = path.resolve().relative_to(repo).as_posix()
        except ValueError:
            shown = path.name
        out["telemetry"] = {"path": shown, "sha256": att.sha256_file(path), "bytes": path.stat().st_size}
    refs, times = [], []

    def walk(v, depth=0):
        if depth > 6:
            return
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ("ref", "source") and isinstance(x, str):
                    refs.append(x)
                elif (
                    k in ("start", "end", "from", "to") and isinstance(x, (str, int, float)) and not isinstance(x, bool)
                ):
                    times.append(x)
                else:
                    walk(x, depth + 1)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, str) and re.search(r":\d+$", x):
                    refs.append(x)
                else:
                    walk(x, depth + 1)

    ev = hyp.evidence
    w = ev.get("windows")
    if isinstance(w, dict):  # the Reasoner's: count, from, to, and the top refs
        out["windows"] = {
            "count": w.get("count"),
            "start": w.get("from", w.get("start")),
            "end": w.get("to", w.get("end")),
            "refs": list(w.get("refs") or [])[:200],
        }
        return out
    walk(ev)
    windows: dict = {"count": len(refs)}
    if refs:
        windows["refs"] = refs[:200]
    same_type = [t for t in times if isinstance(t, type(times[0]))] if times else []
    if same_type:
        windows["start"], windows["end"] = min(same_type), max(same_type)
    out["windows"] = windows
    return out


# ---------------------------------------------------------------------------------------
# Measurements


def measurements(record: SearchRecord, winner: Attempt, spec, hot: list[Shape]) -> tuple[list[dict], str]:
    """Before/after per timed case: the baseline (the current dispatch's choice) against the
    winner, as they were timed side by side after the search (the figures the winner was
    decided on; a record without them: the search's own timings of each); without a
    baseline, the torch reference timed beside the winner."""
    base = {t.get("case"): t for t in (record.baseline.verdict.timings if record.baseline else [])}
    together = {c.get("case"): c for c in (record.side_by_side or {}).get("cases") or []}
    label = _before_label(record.baseline)
    order = {c: i for i, c in enumerate(record.benchmark_cases)}
    rows = []
    for t in sorted(winner.verdict.timings, key=lambda t: order.get(t.get("case"), len(order))):
        case = t.get("case")
        after = t.get("samples_s") or []
        clock = t.get("clock")
        if record.baseline:
            b = base.get(case)
            before = (b or {}).get("samples_s") or []
            pair = (together.get(case) or {}).get("samples_s") or {}
            if pair.get(record.baseline.candidate.id) and pair.get(winner.candidate.id):
                before, after = pair[record.baseline.candidate.id], pair[winner.candidate.id]
                clock = together[case].get("clock") or clock
        else:
            before = t.get("reference_samples_s") or []
        try:
            parsed = shapes.parse_label(case)
        except ChangeError:
            parsed = None
        row = {
            "case": case,
            "clock": clock,
            "before": att.summarize(before),
            "after": att.summarize(after),
            "speedup": att.ratio_ci(before, after),
            "reference": att.summarize(t.get("reference_samples_s")),
            "hot": bool(
                parsed and any(s.dims == shapes.order(spec, parsed["dims"]) and s.dtype == parsed["dtype"] for s in hot)
            ),
        }
        if parsed:
            row.update(_limit(record, spec, parsed, row["after"]))
        rows.append(row)
    return rows, label


def _before_label(baseline: Attempt | None) -> str:
    """What 'before' is: the variant the current dispatch chose (the search measured it as
    its baseline), or the torch reference when the search had no baseline."""
    if baseline is None:
        return "torch reference"
    c = baseline.candidate
    named = c.meta.get("variant") if isinstance(c.meta, dict) else None
    if c.config is not None:
        what = named or "generic"
        return f"{what} ({c.describe()})" if c.config else what
    return named or f"current dispatch ({c.proposer})"


def _limit(record: SearchRecord, spec, parsed: dict, after: dict | None) -> dict:
    """% of the hardware limit at this case (GPU only): the spec's bytes/FLOPs model at the
    median latency, against the device's datasheet (or configured) limits."""
    try:
        nbytes = spec.bytes_for(shapes.order(spec, parsed["dims"]), parsed["dtype"])
        nflops = spec.flops_for(shapes.order(spec, parsed["dims"]), parsed["dtype"])
    except (KeyError, ValueError, ZeroDivisionError):
        return {"limit_note": "the spec's model does not evaluate at this case"}
    out: dict = {"bytes": nbytes, "flops": nflops}
    if record.device != "cuda" or not after:
        out["pct_of_limit"] = None
        out["limit_note"] = "CPU: Triton's interpreter has no hardware limit to compare with"
        return out
    name = ((record.environment or {}).get("device") or {}).get("name") or ""
    limits = lookup(name) if name else None
    if limits is None:
        out["pct_of_limit"] = None
        out["limit_note"] = f"no known limits for device {name!r} (pytest_aina/data/devices.json, AINA_DEVICES)"
        return out
    t = after["median_s"]
    pcts = []
    if nbytes:
        pcts.append((limits.pct_of_bandwidth(nbytes / t), "HBM bandwidth", spec.bytes_expr))
    if nflops:
        p = limits.pct_of_flops(nflops / t, parsed["dtype"])
        if p is not None:
            pcts.append((p, f"dense {parsed['dtype']} FLOP/s", spec.flops_expr))
    if not pcts:
        out["pct_of_limit"] = None
        out["limit_note"] = "the spec has no bytes or FLOPs model"
        return out
    pct, what, model = max(pcts)
    out["pct_of_limit"] = round(pct, 2)
    out["limit"] = {"what": what, "device": limits.name, "source": limits.source, "model": model}
    return out


def table_evidence(record: SearchRecord, rows: list[dict], created: str, stmt_rel: str) -> dict:
    """The table entry's evidence (pytest_aina.runtime.dispatch's keys): the hottest timed case."""
    row = next((r for r in rows if r["hot"] and r.get("after")), next((r for r in rows if r.get("after")), None))
    if row is None:
        return {}
    try:
        parsed = shapes.parse_label(row["case"])
    except ChangeError:
        parsed = None
    env = record.environment or {}
    dev = (env.get("device") or {}).get("name") or record.device
    ev: dict = {"device": dev if record.device == "cuda" else f"cpu, Triton interpreter ({dev})"}
    if parsed:
        ev["dims"] = parsed["dims"]
        ev["dtype"] = parsed["dtype"]
    # four significant digits: the interval is wider than that
    ev["latency_s"] = float(f"{row['after']['median_s']:.4g}")
    if row.get("before"):
        ev["baseline_latency_s"] = float(f"{row['before']['median_s']:.4g}")
    commit = (env.get("git") or {}).get("commit")
    if commit:
        ev["commit"] = commit
    ev["measured_at"] = record.finished or created
    sp = row.get("speedup")
    note = f"{sp['value']:.2f}x, 95% CI [{sp['ci95'][0]:.2f}, {sp['ci95'][1]:.2f}]; " if sp else ""
    if record.device != "cuda":
        note += "interpreter clock, not GPU evidence; "
    ev["note"] = note + f"provenance: {stmt_rel}"
    return ev


def device(record: SearchRecord, winner: Attempt) -> dict:
    env_dev = (record.environment or {}).get("device") or {}
    clocks = sorted({t.get("clock") for t in winner.verdict.timings if t.get("clock")})
    d = {
        "kind": record.device,
        "name": env_dev.get("name") or record.device,
        "clock": ", ".join(clocks) or None,
        "gpu_evidence": record.device == "cuda",
    }
    if record.device != "cuda":
        d["note"] = "timings from Triton's interpreter on a CPU: not GPU evidence"
    for k in ("capability", "driver", "cuda"):
        if env_dev.get(k):
            d[k] = env_dev[k]
    return d
