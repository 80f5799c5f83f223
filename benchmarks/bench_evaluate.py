#!/usr/bin/env python3
"""What evaluating one candidate costs beyond the kernel's own time, and candidates/minute.

Evaluates the same candidates (softmax meta-parameter configs, all correct) through the
real cascade and sandbox, first one at a time, then ``--workers`` at once, and reports:

* per candidate: wall time of the whole evaluation, the time spent inside the timed
  kernel calls (candidate and reference, as the parent's clock measured them), and the
  rest: the overhead (process start, imports, the plugin's checks, the protocol), split
  by stage: ``checks_s`` (the plugin's examples, properties and invariants in the
  sandbox: the same checks CI runs) and ``benchmarks_overhead_s`` (the timed stage less
  the kernel calls: sandbox start-up, imports, fresh inputs, the parent's output checks);
* candidates per minute with 1 worker and with ``--workers``.

    python benchmarks/bench_evaluate.py [--n 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from pytest_aina.changer.evaluate import Setup, evaluate, workdir_for
    from pytest_aina.changer.model import Candidate
    from pytest_aina.checking.device import device

    setup = Setup(
        spec_path=ROOT / "specs" / "softmax.yaml",
        repo=ROOT,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[{"dims": {"M": 16, "N": 1024}, "dtype": "float32", "label": "M=16,N=1024,float32"}],
        workdir=workdir_for(ROOT, "bench-evaluate"),
        device=device(),
    )
    configs = [{"BLOCK_N": b, "ROWS_PER_PROGRAM": r} for b in (1024, 2048) for r in (1, 2, 4, 8, 16)][: args.n]

    def one(cfg):
        c = Candidate(kernel="softmax", proposer="bench", config=cfg)
        t = time.perf_counter()
        v = evaluate(c, setup)
        wall = time.perf_counter() - t
        kernel = sum(sum(x["samples_s"]) + sum(x["reference_samples_s"]) for x in v.timings)
        return {
            "config": cfg,
            "passed": v.passed,
            "reason": v.reason,
            "wall_s": wall,
            "kernel_s": kernel,
            "overhead_s": wall - kernel,
            "checks_s": v.stage_s.get("checks", 0.0),
            "benchmarks_s": v.stage_s.get("benchmarks", 0.0),
            "benchmarks_overhead_s": v.stage_s.get("benchmarks", 0.0) - kernel,
        }

    t = time.perf_counter()
    serial = [one(cfg) for cfg in configs]
    serial_s = time.perf_counter() - t
    t = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        parallel = list(pool.map(one, configs))
    parallel_s = time.perf_counter() - t
    result = {
        "device": setup.device,
        "candidates": len(configs),
        "all_passed": all(r["passed"] for r in serial + parallel),
        "per_candidate_median": {
            k: statistics.median(r[k] for r in serial)
            for k in ("wall_s", "kernel_s", "overhead_s", "checks_s", "benchmarks_s", "benchmarks_overhead_s")
        },
        "candidates_per_minute": {
            "1 worker": 60 * len(configs) / serial_s,
            f"{args.workers} workers": 60 * len(configs) / parallel_s,
        },
        "serial": serial,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
