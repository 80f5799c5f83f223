"""How far the loop's decision figure moves: a candidate's speedup over the baseline as the
search sees it, against the side-by-side timing the loop now decides on.

    .venv/bin/python benchmarks/side_by_side_decision.py [--reps 4] [--rounds 3[,5...]] [--json FILE]

The repository is the demo's scratch copy (the launcher heuristic deliberately untuned), the
case is the one ``aina evolve`` times on a CPU for the sample day's top hypothesis (rms_norm,
16 rows of 4096, bfloat16, in Triton's interpreter), and the sides are the baseline (the
heuristic) and two configurations: one a little away from it, one far ahead.

Per repetition, two figures for each configuration:

* **as the search sees it**: the baseline and the configuration each timed once
  (:func:`pytest_aina.sandbox.time_calls`, the evaluator's protocol and clock), each while
  another evaluation's timing runs beside it, as with ``--workers 2`` (the default on 2
  cores): the neighbour is the timing of the other configurations, in a loop;
* **side by side**: :func:`pytest_aina.changer.sidebyside.side_by_side`, the baseline and
  both configurations in alternating rounds, one session at a time, nothing beside them;
  once per number of rounds in ``--rounds`` (the loop's default is 3), in the same repetition.

It prints, per configuration and way, the speedups of the repetitions, their median and
their spread (max/min), and whether each repetition's decision (> 1.05x: a change) agrees
with the majority. On a quiet machine the two ways agree; what the side-by-side timing buys
is how little its figure moves when the search's does.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "near": {"BLOCK_N": 512, "ROWS_PER_PROGRAM": 8},
    "far": {"BLOCK_N": 1024, "ROWS_PER_PROGRAM": 16},
}


def _scratch(dest: Path) -> Path:
    spec = importlib.util.spec_from_file_location("aina_demo", ROOT / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo.make_scratch_repo(dest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=4, help="repetitions of both ways (default 4)")
    ap.add_argument(
        "--rounds",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[3],
        help="rounds of the side-by-side timing, comma-separated for several (default 3)",
    )
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    os.environ.setdefault("TRITON_INTERPRET", "1")
    from pytest_aina import sandbox
    from pytest_aina.changer import pipeline
    from pytest_aina.changer.evaluate import candidate_file, cpu_clock, figures, template_for, timing_args
    from pytest_aina.changer.model import Candidate
    from pytest_aina.changer.sidebyside import side_by_side
    from pytest_aina.reasoner import reason_about_file

    work = Path(tempfile.mkdtemp(prefix="aina-sbs-"))
    repo = _scratch(work / "repo")
    sys.path.insert(0, str(repo))
    hyps = reason_about_file(
        repo / "telemetry/sample-fleet-day.jsonl", specs=repo / "specs", variants=repo / "kernels/variants"
    )
    plan = pipeline.plan(repo, hyps.hypotheses, device="cpu")
    setup = plan.setup(repo, workdir=work / "eval", device="cpu")
    base = Candidate(kernel=plan.kernel, proposer="baseline", config={})
    cands = {name: Candidate(kernel=plan.kernel, proposer="metaparams", config=cfg) for name, cfg in CONFIGS.items()}
    files = {c.id: candidate_file(c, setup) for c in [base, *cands.values()]}
    template = template_for(setup)
    print(
        f"case {plan.bench_cases[0]['label']}; baseline = heuristic; "
        + ", ".join(f"{k} = {v}" for k, v in CONFIGS.items())
    )

    def timed(c: Candidate, seed: int):
        t = sandbox.time_calls(f"{files[c.id]}:{setup.function}", **timing_args(setup, 0, template=template, seed=seed))
        if not t.ok:
            raise SystemExit(f"{c.describe()}: {t.status}: {t.reason}")
        return t

    def beside(c: Candidate, neighbours: list[Candidate], seed: int):
        """``c`` timed while the neighbours' timings run in a loop beside it."""
        stop = threading.Event()

        def loop():
            k = 0
            while not stop.is_set():
                timed(neighbours[k % len(neighbours)], seed + 1 + k)
                k += 1

        th = threading.Thread(target=loop, daemon=True)
        th.start()
        time.sleep(1.0)  # the neighbour's session is under way
        try:
            return timed(c, seed)
        finally:
            stop.set()
            th.join()

    ways = ["search", *(f"side_by_side_{r}" for r in args.rounds)]
    got: dict[str, dict[str, list[float]]] = {w: {n: [] for n in cands} for w in ways}
    started = time.monotonic()
    for rep in range(args.reps):
        seed = 1000 * rep
        others = list(cands.values())
        tb = beside(base, others, seed)
        for name, c in cands.items():
            tc = beside(c, [base, *(o for o in others if o is not c)], seed)
            cpu = cpu_clock(setup, tb, tc)
            got["search"][name].append(figures(tb, cpu)[1] / figures(tc, cpu)[1])
        for r in args.rounds:
            out = side_by_side(base, list(cands.values()), setup, rounds=r)
            if out.get("error") or out["failed"]:
                raise SystemExit(f"side by side: {out.get('error') or out['failed']}")
            for name, c in cands.items():
                got[f"side_by_side_{r}"][name].append(out["speedups"][c.id])
        print(
            f"rep {rep + 1}/{args.reps}: "
            + "; ".join(f"{n}: " + ", ".join(f"{w} {got[w][n][-1]:.2f}x" for w in ways) for n in cands)
            + f"  ({time.monotonic() - started:.0f} s)",
            flush=True,
        )

    def summary(xs: list[float]) -> dict:
        changes = [x > 1 + pipeline.NOISE_MARGIN for x in xs]
        majority = statistics.mode(changes)
        return {
            "speedups": [round(x, 4) for x in xs],
            "median": round(statistics.median(xs), 4),
            "spread": round(max(xs) / min(xs), 4),
            "decisions_against_majority": sum(1 for c in changes if c != majority),
        }

    figures_out = {name: {"config": CONFIGS[name]} | {w: summary(got[w][name]) for w in ways} for name in cands}
    print()
    print(f"{'config':<8} {'way':<16} {'median':>8} {'spread':>8} {'decisions off':>14}  speedups")
    for name, f in figures_out.items():
        for way in ways:
            s = f[way]
            print(
                f"{name:<8} {way:<16} {s['median']:>7.2f}x {s['spread']:>7.2f}x {s['decisions_against_majority']:>14}  "
                + " ".join(f"{x:.2f}" for x in s["speedups"])
            )
    if args.json:
        doc = {
            "benchmark": "side_by_side_decision",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "case": plan.bench_cases[0]["label"],
            "reps": args.reps,
            "rounds": args.rounds,
            "calls": setup.calls,
            "wall_s": round(time.monotonic() - started, 1),
            "configs": figures_out,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
