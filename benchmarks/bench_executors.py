#!/usr/bin/env python3
"""Candidates per minute with each executor, on the same candidates.

Runs the same softmax configurations (all correct) through the real cascade and sandbox,
as a search does (``run_search``, a checkpoint, the verdicts), with:

* the local pool, 1 worker and 2 workers (``aina evolve``'s default on 2 cores);
* a Ray cluster of ``--nodes`` nodes with one CPU each, started on loopback by
  tests/changer/executors/local_cluster.py (its start-up is not counted: a cluster is
  started once and serves many searches), one evaluation per CPU.

Each verdict must be the same under every executor (pass/fail, stages, reason); the
figures are wall-clock, so on a shared machine they say what that machine could do at
that moment: the load average before and after each run is recorded beside them.

    python benchmarks/bench_executors.py [--n 4] [--nodes 2] [--stand-in SECONDS] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_HELPERS = ROOT / "tests" / "changer" / "executors"


class _Listed:
    """Proposes the given configurations, in order, once each."""

    name = "bench"

    def __init__(self, configs):
        self.configs = list(configs)

    def propose(self, ctx, n):
        from pytest_aina.changer.model import Candidate

        out = []
        while self.configs and len(out) < n:
            out.append(Candidate(kernel="softmax", proposer=self.name, config=self.configs.pop(0)))
        return out


def _run(label: str, executor, setup, configs, work: Path, evaluation=None) -> dict:
    from pytest_aina.changer.executors import Evaluation
    from pytest_aina.changer.proposers import ProposalContext
    from pytest_aina.changer.search import Checkpoint, run_search
    from pytest_aina.changer.settings import Budget
    from pytest_aina.reasoner import Hypothesis

    ctx = ProposalContext(
        kernel="softmax",
        spec=setup.spec,
        spec_text="",
        kernel_source="",
        function="softmax",
        hypothesis=Hypothesis.from_json({"id": "bench", "kind": "hot_unspecialised", "kernel": "softmax"}),
        tunables={},
    )
    load = os.getloadavg()[0]
    t = time.perf_counter()
    out = run_search(
        ctx,
        [_Listed(configs)],
        evaluation or Evaluation(setup),
        Budget(evaluations=len(configs), wall_s=1e9),
        checkpoint=Checkpoint(work / f"{label}.jsonl"),
        executor=executor,
    )
    wall = time.perf_counter() - t
    rows = [
        {
            "config": a.candidate.config,
            "passed": a.verdict.passed,
            "stages": a.verdict.stages,
            "reason": a.verdict.reason,
            "wall_s": round(a.verdict.wall_s, 2),
            "where": a.verdict.ran_on.get("node_ip", "local"),
            "start": a.verdict.sandbox.get("start"),  # warm (forked from the template) or cold, and why
        }
        for a in out.attempts
    ]
    res = {
        "executor": label,
        "slots": executor.slots,
        "candidates": len(rows),
        "wall_s": round(wall, 1),
        "candidates_per_min": round(60 * len(rows) / wall, 3),
        "mean_evaluation_wall_s": round(sum(r["wall_s"] for r in rows) / len(rows), 1),
        "load_avg_1m_before": round(load, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "attempts": rows,
    }
    print(
        f"{label:<22} {res['candidates']} candidates in {res['wall_s']:7.1f} s: "
        f"{res['candidates_per_min']:.2f}/min (mean evaluation {res['mean_evaluation_wall_s']} s; "
        f"load {res['load_avg_1m_before']} -> {res['load_avg_1m_after']}); where: "
        + ", ".join(sorted({r["where"] for r in rows})),
        flush=True,
    )
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="candidates per executor (default: 4)")
    ap.add_argument("--nodes", type=int, default=2, help="nodes of the Ray cluster, one CPU each (default: 2)")
    ap.add_argument(
        "--check-wall-s",
        type=float,
        default=1200,
        help="limit of one candidate's checks (default: 1200; evolve's 240 times out on a loaded machine)",
    )
    ap.add_argument(
        "--stand-in",
        type=float,
        metavar="SECONDS",
        help="instead of the real cascade, an evaluation that sleeps this long: the executors' own "
        "cost, free of the machine's load",
    )
    ap.add_argument("--out", help="write the figures here as JSON")
    args = ap.parse_args()
    sys.path.insert(0, str(CLUSTER_HELPERS))
    from local_cluster import LocalRayCluster

    from pytest_aina.changer.evaluate import Setup, workdir_for
    from pytest_aina.changer.executors import LocalExecutor, RayExecutor
    from pytest_aina.checking.device import device

    setup = Setup(
        spec_path=ROOT / "specs" / "softmax.yaml",
        repo=ROOT,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[{"dims": {"M": 16, "N": 1024}, "dtype": "float32", "label": "M=16,N=1024,float32"}],
        workdir=workdir_for(ROOT, "bench-executors"),
        device=device(),
        check_wall_s=args.check_wall_s,
        bench_wall_s=args.check_wall_s / 2,
    )
    evaluation = None
    if args.stand_in is not None:
        from standins import Slow

        evaluation = Slow(args.stand_in)
    configs = [{"BLOCK_N": b, "ROWS_PER_PROGRAM": r} for b in (1024, 2048) for r in (1, 2, 4, 8, 16)][: args.n]
    work = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    results = []
    for workers in (1, 2):
        with LocalExecutor(workers) as ex:
            results.append(_run(f"local, {workers} worker(s)", ex, setup, configs, work, evaluation))
    t = time.perf_counter()
    with LocalRayCluster(nodes=args.nodes, cpus_per_node=1, pythonpath=[str(ROOT), str(CLUSTER_HELPERS)]) as cluster:
        started = time.perf_counter() - t
        print(f"ray cluster of {args.nodes} nodes up in {started:.0f} s (not counted)", flush=True)
        with RayExecutor(cluster.address) as ex:
            results.append(_run(f"ray, {args.nodes} nodes", ex, setup, configs, work, evaluation))
    shutil.rmtree(work, ignore_errors=True)
    verdicts = {r["executor"]: [(a["passed"], a["stages"], a["reason"]) for a in r["attempts"]] for r in results}
    same = len({json.dumps(v) for v in verdicts.values()}) == 1
    print("same verdicts under every executor:", same)
    what = (
        f"a stand-in evaluation sleeping {args.stand_in} s (the executors' own cost)"
        if evaluation
        else "softmax meta-parameter candidates through the real cascade and sandbox (Triton interpreter on CPU)"
    )
    report = {
        "what": what + ", the same candidates under each executor",
        "machine": f"{os.cpu_count()} cores, shared with other work while measured (see load averages)",
        "device": setup.device,
        "cluster_start_s": round(started, 1),
        "same_verdicts": same,
        "results": results,
        "command": "python benchmarks/bench_executors.py " + " ".join(sys.argv[1:]),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
