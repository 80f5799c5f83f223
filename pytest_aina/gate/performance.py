"""Performance, measured here: every benchmark case of every affected kernel that can run on
this machine, base against head, interleaved, with sequential sampling within a budget.

For each case, batches of ``policy.gate.pairs`` pairs (:func:`.measure.run_batch`, one
sandboxed session each) are added until :func:`.stats.compare` says the answer is clear,
or ``max_pairs`` is reached, or the case's share of the time budget is spent. Cases come
from the *base's* spec (a pull request cannot drop the case it regresses), plus the cases a
bot's attestation claims a speedup on, so the claim can be checked.

``--reports DIR`` adds rows measured elsewhere (the GPU runner runs ``aina gate
--measure-only --json ...`` on the same commits): their pairs are judged with this policy.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_aina.gate import stats
from pytest_aina.gate.measure import Session, run_batch
from pytest_aina.gate.verdict import FAIL, NEEDS, PASS, SKIPPED, Annotation, CheckResult

CHECK = "performance"
MEASURED, FAILED, NOT_RUN = "measured", "failed", "not run"
#: What a busy machine can cause without any fault of the code (the scheduler delays a
#: thread past the deferred-work allowance, a no-op outlasts a call, a session its limit):
#: such a batch is run once more with new seeds before it counts against anyone.
RETRYABLE = frozenset({"deferred work", "measurement error", "timeout"})


@dataclass
class Case:
    kernel: str
    label: str
    dims: dict
    dtype: str
    devices: tuple[str, ...]
    line: int | None = None
    claimed: bool = False


@dataclass
class Row:
    kernel: str
    case: str
    dims: dict
    dtype: str
    device: str
    source: str = "measured here"
    status: str = NOT_RUN
    reason: str = ""
    base_s: list[float] = field(default_factory=list)
    head_s: list[float] = field(default_factory=list)
    comparison: dict | None = None
    batches: int = 0
    wall_s: float = 0.0
    spec_file: str | None = None
    line: int | None = None
    side_at_fault: str | None = None
    retried: list[str] = field(default_factory=list)  # reasons of batches run again

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str) -> Row:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**dict(known, source=source))


def local_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cases_of(kernel: str, spec, claims: list[dict]) -> list[Case]:
    out = [Case(kernel, b.label(), b.dim_map, b.dtype, tuple(b.devices), b.line) for b in spec.benchmarks]
    seen = {c.label for c in out}
    for claim in claims:
        if claim["label"] not in seen and claim["dims"]:
            out.append(Case(kernel, claim["label"], claim["dims"], claim["dtype"], (claim["device"],), claimed=True))
            seen.add(claim["label"])
    return out


def measure_case(
    session: Session | None,
    case: Case,
    *,
    noise: float,
    confidence: float,
    pairs: int,
    max_pairs: int,
    deadline: float,
    device: str,
    batch=None,
) -> Row:
    """Batches until the answer is clear, ``max_pairs`` pairs are in, or the next batch
    would pass ``deadline`` (time.monotonic()); at least one batch. ``batch(seed)`` runs
    one (default: :func:`.measure.run_batch` on ``session``; the calibration replays
    recorded streams through the same loop)."""
    if batch is None:

        def batch(seed: int):
            return run_batch(session, case.dims, case.dtype, pairs, seed=seed)

    row = Row(case.kernel, case.label, case.dims, case.dtype, device, line=case.line)
    seed0 = zlib.crc32(f"{case.kernel}/{case.label}".encode())
    start = time.monotonic()
    while len(row.base_s) < max_pairs:
        b = batch(seed0 + row.batches)
        row.batches += 1
        if not b.ok and b.status in RETRYABLE and len(row.retried) < 1:
            row.retried.append(b.reason)
            b = batch(seed0 + 7919 * (row.batches + len(row.retried)))
        if not b.ok:
            row.status, row.reason, row.side_at_fault = FAILED, b.reason, b.side_at_fault
            break
        row.base_s += b.base_s
        row.head_s += b.head_s
        row.status = MEASURED
        cmp = stats.compare(stats.pair_log_ratios(row.base_s, row.head_s), noise=noise, confidence=confidence)
        row.comparison = cmp.as_dict()
        per_batch = (time.monotonic() - start) / row.batches
        if cmp.clear or time.monotonic() + per_batch > deadline:
            break
    row.wall_s = time.monotonic() - start
    return row


def rejudge(row: Row, *, noise: float, confidence: float) -> Row:
    if row.base_s and row.head_s and len(row.base_s) == len(row.head_s):
        row.comparison = stats.compare(
            stats.pair_log_ratios(row.base_s, row.head_s), noise=noise, confidence=confidence
        ).as_dict()
        row.status = MEASURED
    return row


def load_reports(
    folder: str | Path, base: str, head: str, *, noise: float, confidence: float
) -> tuple[list[Row], list[str]]:
    """Rows measured by other jobs on the same commits; notes on reports that do not apply."""
    rows, notes = [], []
    root = Path(folder)
    if not root.is_dir():
        return [], [f"--reports {folder}: no such folder (no report from another job)"]
    for path in sorted(root.rglob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            notes.append(f"{path.name}: not JSON ({exc}); ignored")
            continue
        if not isinstance(doc, dict) or "evidence" not in doc:
            notes.append(f"{path.name}: not an aina gate report; ignored")
            continue
        if doc.get("base") != base or doc.get("head") != head:
            notes.append(
                f"{path.name}: measured {str(doc.get('base'))[:12]}..{str(doc.get('head'))[:12]}, not "
                f"{base[:12]}..{head[:12]}; ignored"
            )
            continue
        for r in doc["evidence"]:
            if isinstance(r, dict) and r.get("source", "measured here") == "measured here":
                rows.append(rejudge(Row.from_dict(r, f"report {path.name}"), noise=noise, confidence=confidence))
    return rows, notes


def check(
    rows: list[Row], kernels: list[str], unrunnable: dict[str, list[str]], notes: list[str], noise: float
) -> CheckResult:
    if not kernels:
        return CheckResult(CHECK, SKIPPED, "no kernel affected: no benchmark run")
    annotations, details = [], list(notes)
    regressions, unclear, broken, wrong = [], [], [], []
    for r in rows:
        c = r.comparison
        name = f"{r.kernel} {r.case} on {r.device}"
        if r.status == FAILED:
            (wrong if r.side_at_fault == "head" else broken).append(
                f"{name}: {r.reason.splitlines()[0] if r.reason else ''}"
            )
            continue
        if r.status != MEASURED or c is None:
            unclear.append(f"{name}: {r.reason or 'not measured'}")
            continue
        text = (
            f"{name}: head/base {c['ratio']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}] over {c['n']} pairs "
            f"({r.source}): {c['outcome']}"
        )
        details.append(text)
        if c["outcome"] == stats.REGRESSION:
            regressions.append(text)
            annotations.append(
                Annotation(
                    r.spec_file,
                    r.line,
                    f"{r.kernel} {r.case}: {c['ratio']:.2f}x the base's "
                    f"time (95% CI {c['ci'][0]:.2f}-{c['ci'][1]:.2f}), beyond the "
                    f"{noise:.0%} noise threshold",
                    title="aina gate: slower",
                )
            )
        elif c["outcome"] == stats.INCONCLUSIVE:
            unclear.append(text)
    measured_kernels = {r.kernel for r in rows if r.status == MEASURED}
    for k in kernels:
        if k not in measured_kernels and unrunnable.get(k):
            unclear.append(f"{k}: no case can run here ({', '.join(unrunnable[k])}) and no report covers it")
    details += [f"not measured: {u}" for u in unclear if u not in details]
    data = {"noise": noise, "rows": len(rows), "regressions": len(regressions)}
    if wrong or regressions:
        what = [f"{len(regressions)} case(s) slower beyond noise"] if regressions else []
        what += [f"the head failed the timing protocol in {len(wrong)} case(s): {wrong[0]}"] if wrong else []
        return CheckResult(CHECK, FAIL, "; ".join(what), details + wrong, annotations, data)
    if broken or unclear:
        first = (broken + unclear)[0]
        return CheckResult(
            CHECK,
            NEEDS,
            f"{len(broken) + len(unclear)} case(s) without a clear answer: {first}",
            details + broken,
            annotations,
            data,
        )
    return CheckResult(
        CHECK, PASS, f"{len(rows)} case(s) measured, none slower beyond {noise:.0%}", details, annotations, data
    )
