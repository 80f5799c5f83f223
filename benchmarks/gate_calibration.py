#!/usr/bin/env python3
"""Calibrating the merge gate's performance statistics on this machine.

How often does ``aina gate`` call a regression when base and head are the same code (A/A),
and how often does it catch a head made 10% or 25% slower? Two steps:

1. **measure** (``--out FILE``): streams of interleaved (base, head) pairs, recorded with the
   gate's own measurement (:func:`pytest_aina.gate.measure.run_batch`: one sandboxed
   session, base and head alternating call by call, fresh inputs, outputs checked). The
   kernel is a CPU torch op of ~10 ms on an idle core (201 x tanh over 64 x 1024 float32); base and head are two
   checkouts of it. Conditions: ``aa`` (identical code), ``slow10`` and ``slow25`` (the
   head does 10% / 25% more of the same work per call: 220 / 250 passes instead of 200;
   an injected busy-wait would not do: on a loaded machine, time added at the end of a
   call is preempted more often than the call's first milliseconds and measured ~2.5x). Sessions of the
   three conditions alternate, so the machine's load varies alike for all.
2. **replay** (``--replay FILE``): the gate's sequential procedure
   (:func:`pytest_aina.gate.performance.measure_case`, with :func:`pytest_aina.gate.stats.compare`)
   run over the recorded streams, for each setting (noise threshold, confidence, pairs
   per batch, maximum pairs): the rate of each outcome per condition, and what one
   comparison costs (pairs used, batches = sandbox sessions, seconds at the measured
   rates). A comparison starts at every 4th pair of a stream and consumes consecutive
   batches from there, so comparisons overlap and are not independent; ``--disjoint``
   replays non-overlapping comparisons only (fewer, independent).

    PYTHONPATH=. python benchmarks/gate_calibration.py --out benchmarks/gate-calibration-cpu.json
    PYTHONPATH=. python benchmarks/gate_calibration.py --replay benchmarks/gate-calibration-cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = """aina: 1
name: calop
implementation: calkern.op:calop
reference: calkern.op:calop_reference
inputs:
  x: {shape: [M, N]}
dims:
  M: {min: 1, max: 4096}
  N: {min: 1, max: 4096}
dtypes: [float32]
tolerance:
  float32: {atol: 1.0e-5, rtol: 1.0e-5}
invariants:
  - close_to_reference
examples:
  - {dims: {M: 2, N: 3}}
benchmarks:
  - {dims: {M: 64, N: 1024}, dtype: float32, devices: [cpu, cuda]}
"""

OP = '''"""A CPU op for calibrating the gate: ~200 x tanh, ~10 ms on an idle core (compute-bound, small I/O)."""
import torch

PASSES = {passes!r}  # 200 at the base; 220 / 250 for a head 10% / 25% slower: more of the same work


def calop(x):
    for _ in range(PASSES - 1):  # work that reaches no output: the reference need not repeat it
        torch.tanh(x)
    return torch.tanh(x)


def calop_reference(x):
    return torch.tanh(x.float())
'''

CONDITIONS = {"aa": 0.0, "slow10": 0.10, "slow25": 0.25}
#: A/A needs the most comparisons (its rate is the one to bound at 1%): 3 sessions in 5
ROTATION = ("aa", "slow10", "slow25", "aa", "aa")
DIMS, DTYPE = {"M": 64, "N": 1024}, "float32"


def checkout(top: Path, name: str, slow: float) -> Path:
    root = top / name
    (root / "calkern").mkdir(parents=True)
    (root / "specs").mkdir()
    (root / "calkern" / "__init__.py").write_text("")
    (root / "calkern" / "op.py").write_text(OP.format(passes=round(200 * (1 + slow))))
    (root / "specs" / "calop.yaml").write_text(SPEC)
    return root


def measure(args) -> dict:
    from pytest_aina.gate.measure import Session, run_batch

    rotation = [c for c in ROTATION if not args.conditions or c in args.conditions.split(",")]

    top = Path(tempfile.mkdtemp(prefix="aina-gate-calibration-"))
    base = checkout(top, "base", 0.0)
    heads = {c: checkout(top, f"head-{c}", slow) for c, slow in CONDITIONS.items()}
    doc = {
        "what": "interleaved (base, head) pairs, seconds per call after the protocol floor",
        "kernel": "201 x torch.tanh over 64 x 1024 float32 (CPU, one thread)",
        "dims": DIMS,
        "dtype": DTYPE,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "sessions": [],
    }
    if args.append and Path(args.out).exists():  # more sessions into an earlier run's file
        doc = json.loads(Path(args.out).read_text())
        doc.setdefault("appended", []).append(datetime.now(UTC).isoformat(timespec="seconds"))
    for i in range(args.startup):  # a session of one pair: what a batch costs before its calls
        session = Session(
            base,
            heads["aa"],
            "calkern.op:calop",
            "calkern.op:calop",
            base / "specs" / "calop.yaml",
            ["calkern"],
            top / f"startup-{i}",
            device="cpu",
            wall_s=900,
        )
        t0 = time.monotonic()
        b = run_batch(session, DIMS, DTYPE, 1, seed=99 + i)
        doc.setdefault("startup", []).append(
            {"wall_s": time.monotonic() - t0, "ok": b.ok, "loadavg_1min": os.getloadavg()[0]}
        )
        print(f"startup {i}: a one-pair session in {doc['startup'][-1]['wall_s']:.1f} s", flush=True)
    t_end = time.monotonic() + args.minutes * 60
    k = 0
    while time.monotonic() < t_end and k < args.sessions:
        cond = rotation[k % len(rotation)]
        session = Session(
            base,
            heads[cond],
            "calkern.op:calop",
            "calkern.op:calop",
            base / "specs" / "calop.yaml",
            ["calkern"],
            top / f"work-{k}",
            device="cpu",
            wall_s=900,
        )
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        b = run_batch(session, DIMS, DTYPE, args.pairs, seed=1000 + len(doc["sessions"]))
        wall = time.monotonic() - t0
        doc["sessions"].append(
            {
                "condition": cond,
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "ok": b.ok,
                "reason": b.reason,
                "wall_s": wall,
                "session_wall_s": b.wall_s,
                "floor_s": b.floor_s,
                "loadavg_1min": load,
                "base_s": b.base_s,
                "head_s": b.head_s,
            }
        )
        print(
            f"session {k} {cond}: {len(b.base_s)} pairs in {wall:.1f} s, load {load:.1f}, ok={b.ok} {b.reason[:80]}",
            flush=True,
        )
        k += 1
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")  # partial results survive an interrupt
    doc["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def _streams(doc: dict, cond: str) -> list[tuple[list[float], list[float], dict]]:
    return [(s["base_s"], s["head_s"], s) for s in doc["sessions"] if s["condition"] == cond and s["ok"]]


def replay(
    doc: dict, *, noise: float, confidence: float, pairs: int, max_pairs: int, disjoint: bool = False, step: int = 4
) -> dict:
    """Outcome rates per condition for one setting, and the cost of a comparison."""
    from pytest_aina.gate import performance
    from pytest_aina.gate.measure import Batch

    case = performance.Case("calop", "M=64,N=1024,float32", DIMS, DTYPE, ("cpu",))
    sessions = doc["sessions"]
    # what a batch costs in the gate: a session's start-up plus its calls, from the measured sessions
    med0 = lambda xs: sorted(xs)[len(xs) // 2] if xs else 0.0  # noqa: E731
    start = med0([x["wall_s"] for x in doc.get("startup", []) if x["ok"]])
    per_pair = [(s["wall_s"] - start) / len(s["base_s"]) for s in sessions if s["ok"] and s["base_s"]]
    startup = [start]
    out = {}
    for cond in CONDITIONS:
        counts, used, batches, n = {}, [], [], 0
        for base_s, head_s, _ in _streams(doc, cond):
            start = 0
            while start + pairs <= len(base_s):
                pos = [start]

                def batch(seed, pos=pos):
                    a = pos[0]
                    if a + pairs > len(base_s):
                        return Batch(ok=False, status="exhausted", reason="stream exhausted")
                    pos[0] += pairs
                    return Batch(base_s=base_s[a : a + pairs], head_s=head_s[a : a + pairs])

                row = performance.measure_case(
                    None,
                    case,
                    noise=noise,
                    confidence=confidence,
                    pairs=pairs,
                    max_pairs=max_pairs,
                    deadline=math.inf,
                    device="cpu",
                    batch=batch,
                )
                if row.status == performance.FAILED and not row.base_s:
                    break
                if row.status == performance.FAILED:  # ran out of stream before the procedure ended
                    if disjoint:
                        break
                    outcome = "truncated"
                else:
                    outcome = row.comparison["outcome"]
                counts[outcome] = counts.get(outcome, 0) + 1
                used.append(len(row.base_s))
                batches.append(row.batches)
                n += 1
                start = pos[0] if disjoint else start + step
        judged = n - counts.get("truncated", 0)
        out[cond] = {
            "comparisons": n,
            "judged": judged,
            "rates": {k: v / judged for k, v in sorted(counts.items()) if k != "truncated"} if judged else {},
            "counts": counts,
            "mean_pairs": sum(used) / len(used) if used else None,
            "mean_batches": sum(batches) / len(batches) if batches else None,
        }
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else float("nan")  # noqa: E731
    return {
        "setting": {
            "noise": noise,
            "confidence": confidence,
            "pairs": pairs,
            "max_pairs": max_pairs,
            "disjoint": disjoint,
            "step": step,
        },
        "per_pair_s": med(per_pair),
        "session_startup_s": med(startup),
        "conditions": out,
    }


def bootstrap(
    doc: dict,
    *,
    noise: float,
    confidence: float,
    pairs: int,
    max_pairs: int,
    n: int = 2000,
    seed: int = 0,
    one_session: bool = False,
) -> dict:
    """The same procedure over ``n`` comparisons per condition made by a block bootstrap:
    each batch is ``pairs`` consecutive measured pairs (as one sandbox session gives them)
    from a session drawn at random, as in the gate, where every batch is a session of its
    own. ``one_session``: all batches of a comparison from one session, which keeps a
    session's own bias for the whole comparison (conservative). Independent comparisons as
    many as wanted, under one assumption: the batches of a condition are exchangeable."""
    import random

    from pytest_aina.gate import performance
    from pytest_aina.gate.measure import Batch

    rng = random.Random(seed)
    case = performance.Case("calop", "M=64,N=1024,float32", DIMS, DTYPE, ("cpu",))
    out = {}
    for cond in CONDITIONS:
        blocks = [
            [(b[i : i + pairs], h[i : i + pairs]) for i in range(0, len(b) - pairs + 1, pairs)]
            for b, h, _ in _streams(doc, cond)
        ]
        blocks = [bs for bs in blocks if bs]
        counts, used, batches = {}, [], []
        for _ in range(n if blocks else 0):
            mine = rng.choice(blocks)

            def batch(seed, mine=mine):
                b, h = rng.choice(mine if one_session else rng.choice(blocks))
                return Batch(base_s=list(b), head_s=list(h))

            row = performance.measure_case(
                None,
                case,
                noise=noise,
                confidence=confidence,
                pairs=pairs,
                max_pairs=max_pairs,
                deadline=math.inf,
                device="cpu",
                batch=batch,
            )
            outcome = row.comparison["outcome"]
            counts[outcome] = counts.get(outcome, 0) + 1
            used.append(len(row.base_s))
            batches.append(row.batches)
        total = sum(counts.values())
        out[cond] = {
            "comparisons": total,
            "judged": total,
            "counts": counts,
            "rates": {k: v / total for k, v in sorted(counts.items())} if total else {},
            "mean_pairs": sum(used) / len(used) if used else None,
            "mean_batches": sum(batches) / len(batches) if batches else None,
        }
    return out


def upper95(events: int, n: int) -> float:
    """One-sided 95% upper bound of a rate seen ``events`` times in ``n`` (Clopper-Pearson)."""
    if n == 0:
        return float("nan")
    if events >= n:
        return 1.0
    lo, hi = events / n, 1.0
    for _ in range(60):  # bisection on P(X <= events | p) = 0.05
        mid = (lo + hi) / 2
        cdf = sum(math.comb(n, k) * mid**k * (1 - mid) ** (n - k) for k in range(events + 1))
        lo, hi = (mid, hi) if cdf > 0.05 else (lo, mid)
    return hi


def cost_s(r: dict, cond: str) -> float:
    c = r["conditions"][cond]
    if c["mean_pairs"] is None:
        return float("nan")
    return c["mean_batches"] * r["session_startup_s"] + c["mean_pairs"] * r["per_pair_s"]


SETTINGS = (
    [dict(noise=0.03, confidence=cf, pairs=24, max_pairs=192) for cf in (0.95, 0.99)]
    + [
        dict(noise=0.05, confidence=cf, pairs=p, max_pairs=m)
        for cf in (0.95, 0.99)
        for p, m in ((12, 60), (24, 96), (24, 192), (24, 288))
    ]
    + [dict(noise=0.10, confidence=cf, pairs=24, max_pairs=192) for cf in (0.95, 0.99)]
)


def report(doc: dict, settings=SETTINGS, *, boot: int = 2000) -> list[dict]:
    rows = []
    sessions = [s for s in doc["sessions"] if s["ok"] and s["base_s"]]
    print(
        f"{len(doc['sessions'])} sessions: "
        + ", ".join(f"{c} {sum(len(s['base_s']) for s in sessions if s['condition'] == c)} pairs" for c in CONDITIONS)
        + f"; 1-min load average {min(s['loadavg_1min'] for s in doc['sessions']):.1f}"
        f"-{max(s['loadavg_1min'] for s in doc['sessions']):.1f}"
    )
    for s in sessions:
        lr = sorted(math.log(h / b) for b, h in zip(s["base_s"], s["head_s"]))
        q = lambda f: lr[int(f * (len(lr) - 1))]  # noqa: E731
        print(
            f"  {s['condition']:<7} {len(lr):4d} pairs  base median {sorted(s['base_s'])[len(lr) // 2] * 1e3:7.2f} ms"
            f"  log(head/base) quartiles {q(0.25):+.3f} {q(0.5):+.3f} {q(0.75):+.3f}  {s['wall_s']:6.1f} s"
            f"  load {s['loadavg_1min']:.1f}"
        )
    head = (
        f"{'noise':>5} {'conf':>5} {'pairs':>5} {'max':>4} | {'A/A regr':>8} {'(95% ub)':>8} {'A/A ?':>6} | "
        f"{'10% det':>7} {'10% ?':>6} | {'25% det':>7} {'25% ?':>6} | {'A/A pairs':>9} {'10% pairs':>9} "
        f"{'cost s':>7} | {'n A/A':>5}"
    )
    for title, fn in (
        ("replay of the measured streams (overlapping comparisons)", None),
        (f"block bootstrap, {boot} comparisons per condition, each batch from a random session", "boot"),
        (f"block bootstrap, {boot} comparisons per condition, all batches from one session", "boot-one-session"),
    ):
        print(f"\n{title}\n{head}")
        for st in settings:
            r = (
                replay(doc, **st)
                if fn is None
                else dict(
                    replay(doc, **st),
                    conditions=bootstrap(
                        doc,
                        noise=st["noise"],
                        confidence=st["confidence"],
                        pairs=st["pairs"],
                        max_pairs=st["max_pairs"],
                        n=boot,
                        one_session=fn == "boot-one-session",
                    ),
                )
            )
            c = r["conditions"]
            rate = lambda cond, k: c[cond]["rates"].get(k, 0.0) if c[cond]["judged"] else float("nan")  # noqa: E731
            n_aa = c["aa"]["judged"]
            ub = upper95(c["aa"]["counts"].get("regression", 0), n_aa)
            print(
                f"{st['noise']:5.2f} {st['confidence']:5.2f} {st['pairs']:5d} {st['max_pairs']:4d} | "
                f"{rate('aa', 'regression'):8.1%} {ub:8.1%} {rate('aa', 'inconclusive'):6.1%} | "
                f"{rate('slow10', 'regression'):7.1%} {rate('slow10', 'inconclusive'):6.1%} | "
                f"{rate('slow25', 'regression'):7.1%} {rate('slow25', 'inconclusive'):6.1%} | "
                f"{c['aa']['mean_pairs'] or float('nan'):9.1f} {c['slow10']['mean_pairs'] or float('nan'):9.1f} "
                f"{cost_s(r, 'aa'):7.1f} | {n_aa:5d}"
            )
            rows.append(dict(r, method=fn or "replay"))
    start = [x["wall_s"] for x in doc.get("startup", []) if x["ok"]]
    print(
        f"\ncost s: mean seconds of one A/A comparison at this machine's measured rates: batches x session "
        f"start-up ({', '.join(f'{x:.1f}' for x in start) or 'not measured'} s for a one-pair session) + pairs x "
        "seconds per pair"
    )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="measure, writing the streams here")
    ap.add_argument("--replay", help="replay the gate's procedure over recorded streams")
    ap.add_argument("--sessions", type=int, default=40, help="sessions at most, all conditions (default 40)")
    ap.add_argument("--pairs", type=int, default=120, help="pairs per session (default 120)")
    ap.add_argument("--minutes", type=float, default=13.0, help="stop starting sessions after this long")
    ap.add_argument("--conditions", help="measure only these (comma-separated: aa,slow10,slow25)")
    ap.add_argument("--append", action="store_true", help="add the sessions to --out's existing file")
    ap.add_argument("--startup", type=int, default=3, help="one-pair sessions timed first (default 3)")
    ap.add_argument("--disjoint", action="store_true", help="replay with non-overlapping comparisons only")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap comparisons per condition (default 2000)")
    args = ap.parse_args()
    if args.out:
        doc = measure(args)
    elif args.replay:
        doc = json.loads(Path(args.replay).read_text())
    else:
        ap.error("give --out FILE (measure) or --replay FILE")
    settings = [dict(s, disjoint=args.disjoint) for s in SETTINGS]
    report(doc, settings, boot=args.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
