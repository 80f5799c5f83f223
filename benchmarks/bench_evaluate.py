#!/usr/bin/env python3
"""What evaluating one candidate costs beyond the kernel's own time, and candidates/minute.

Evaluates the same candidates (softmax meta-parameter configs, all correct) through the
real cascade and sandbox, first one at a time, then ``--workers`` at once, and reports:

* per candidate: wall time of the whole evaluation, the time spent inside the kernel
  calls (candidate and reference, as the parent's clock measured them: ``kernel_s``, the
  timed calls ``kernel_timed_s`` and the untimed warm-up calls before them
  ``kernel_warmup_s``, which on a CPU include the interpreter's first launch), and the
  rest: the overhead (process start, imports, the plugin's checks, the protocol), split
  by stage: ``checks_s`` (the plugin's examples, properties and invariants in the
  sandbox: the same checks CI runs) and ``benchmarks_overhead_s`` (the timed stage less
  the kernel calls: sandbox start-up, imports, fresh inputs, the parent's output checks);
* ``checks_items_s``: the checks' own work inside the sandbox (their test items'
  setup, call and teardown, as pytest timed them there: the checks' kernel runs, the
  comparisons, Hypothesis's generation), and ``overhead_s``: what is left of the wall
  time after the timed kernel calls and the checks' own work (process start, imports,
  pytest's start-up, the sandbox, the protocol): what warm templates are for
  (``overhead_with_warmup_s`` counts the warm-up calls as overhead, as this script did
  before it told them apart);
* candidates per minute with 1 worker and with ``--workers``;
* with ``--phases``: where each sandbox's time goes (``phases_median``, per run: the
  checks, the candidate's timing, the reference's), median seconds per phase over the
  serial candidates, also printed as a table on stderr: ``folder`` (the sandbox folder,
  its files, the uid), ``spawn`` (the fork from the template), ``child.*`` (the child's
  own start-up steps: ``forked`` to ``unshare`` the namespaces, ``namespaces`` the PID 1
  fork and /proc, ``boot``/``config`` the configuration, ``worker`` the mounts and the
  worker's fork, ``confined`` the confinement), ``ready``/``floor``/``loaded``/``calls``
  (the timing protocol's steps: the kernel calls are in ``calls``), ``result`` (the
  checks' run, with ``pytest.*`` its steps: configuration, collection, the items,
  the end), ``finish`` (the parent's own work before ending the child),
  ``child.exited`` (the worker's exit, to PID 1's count of what was left), ``gone``
  (the rest of the child's exit), ``leftovers`` (proving nothing is left running), ``cleaned``
  (the output tails, the folder removed).

``overhead_after_first_s`` is the median overhead of the serial candidates after the
first, which alone pays what is done once per run (the reference's timing: see
``Setup.reference_once``; the parent's first imports).

``--compare REF`` measures another version of the repository (a folder, e.g. an export
of main: ``git archive main | tar -x -C /tmp/ref``) against this one in the same run:
``--rounds`` times, alternately, this script on REF's code then on this checkout's (each
in a process of its own, with the same arguments and candidates), and reports each
side's runs and its medians over them side by side (``before``/``after``).

Each stage is forked from the warm template (``Setup.warm``); ``--cold`` first runs the
same candidates with a new interpreter per stage (as before the templates), in the same
run, so the two are measured side by side. The template's own start-up (imports, once
per process) is reported apart and included in the warm candidates/minute.

    python benchmarks/bench_evaluate.py [--n 6] [--workers 2] [--cold] [--phases] [--spec PATH]
                                        [--compare REF [--rounds 2]]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cold", action="store_true", help="also run the same candidates cold (first), for comparison")
    ap.add_argument("--phases", action="store_true", help="report (and print) where each sandbox's time goes")
    ap.add_argument(
        "--spec",
        type=Path,
        default=Path("specs") / "softmax.yaml",
        help="the softmax spec to check against, relative to the repository (default: its own; a spec "
        "with fewer examples, inside the repository, makes a quicker run for the overhead, which does "
        "not depend on them)",
    )
    ap.add_argument("--root", type=Path, default=HERE, help="the repository whose code is measured (default: this one)")
    ap.add_argument("--compare", type=Path, help="another version of the repository to measure against this one")
    ap.add_argument("--rounds", type=int, default=2, help="with --compare: runs per side, alternating")
    ap.add_argument(
        "--check-wall-s", type=float, default=240.0, help="the checks' wall-clock limit (raise it on a loaded machine)"
    )
    args = ap.parse_args()
    if args.compare:
        return _compare(args)
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    from pytest_aina.changer import evaluate as E
    from pytest_aina.changer.evaluate import Setup, evaluate, workdir_for
    from pytest_aina.changer.model import Candidate
    from pytest_aina.checking.device import device

    setup = Setup(
        spec_path=root / args.spec,
        repo=root,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[{"dims": {"M": 16, "N": 1024}, "dtype": "float32", "label": "M=16,N=1024,float32"}],
        workdir=workdir_for(root, "bench-evaluate"),
        device=device(),
        check_wall_s=args.check_wall_s,
    )
    configs = [{"BLOCK_N": b, "ROWS_PER_PROGRAM": r} for b in (1024, 2048) for r in (1, 2, 4, 8, 16)][: args.n]

    def one(cfg, s):
        c = Candidate(kernel="softmax", proposer="bench", config=cfg)
        t = time.perf_counter()
        v = evaluate(c, s)
        wall = time.perf_counter() - t
        # the reference's calls count only where this evaluation made them (not a timing
        # reused from earlier in the run: Setup.reference_once)
        here = [x for x in v.timings if x.get("reference_timed_here", True)]
        # wall seconds (on a CPU the timings' samples are CPU time, the wall clock beside them)
        timed = sum(sum(x.get("wall_samples_s", x["samples_s"])) for x in v.timings) + sum(
            sum(x.get("reference_wall_samples_s", x["reference_samples_s"])) for x in here
        )
        warmup = sum(sum(x.get("warmup_samples_s", [])) for x in v.timings) + sum(
            sum(x.get("reference_warmup_samples_s", [])) for x in here
        )
        kernel = timed + warmup
        items = v.checks_items_s or 0.0
        return {
            "config": cfg,
            "passed": v.passed,
            "reason": v.reason,
            "start": v.sandbox.get("start"),
            "wall_s": wall,
            "kernel_s": kernel,
            "kernel_timed_s": timed,
            "kernel_warmup_s": warmup,
            "checks_items_s": items,
            "overhead_s": wall - kernel - items,
            "overhead_with_warmup_s": wall - timed - items,
            "checks_s": v.stage_s.get("checks", 0.0),
            "checks_overhead_s": v.stage_s.get("checks", 0.0) - items,
            "benchmarks_s": v.stage_s.get("benchmarks", 0.0),
            "benchmarks_overhead_s": v.stage_s.get("benchmarks", 0.0) - kernel,
            "phases": getattr(v, "phases", {}),  # absent from versions before --phases
        }

    def measure(warm: bool) -> dict:
        s = dataclasses.replace(setup, warm=warm)
        template_s = None
        t = time.perf_counter()
        if warm:  # the template's imports, once per process: counted in candidates/minute, shown apart
            E.template_for(s).start()
            template_s = time.perf_counter() - t
        serial = [one(cfg, s) for cfg in configs]
        serial_s = time.perf_counter() - t
        t = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            parallel = list(pool.map(lambda cfg: one(cfg, s), configs))
        parallel_s = time.perf_counter() - t
        keys = ("wall_s", "kernel_s", "kernel_timed_s", "kernel_warmup_s", "checks_items_s", "overhead_s")
        keys += ("overhead_with_warmup_s", "checks_s", "checks_overhead_s", "benchmarks_s", "benchmarks_overhead_s")
        out = {}
        if args.phases:
            runs = dict.fromkeys(run for r in serial for run in r["phases"])
            out["phases_median"] = {}
            for run in runs:  # over the candidates that had this run (the reference: the first)
                had = [r["phases"][run] for r in serial if run in r["phases"]]
                out["phases_median"][run] = {p: statistics.median(h.get(p, 0.0) for h in had) for p in had[0]}
            _print_phases("warm" if warm else "cold", out["phases_median"])
        later = [r["overhead_s"] for r in serial[1:]]
        return out | {
            "all_passed": all(r["passed"] for r in serial + parallel),
            "template_start_s": template_s,
            "per_candidate_median": {k: statistics.median(r[k] for r in serial) for k in keys},
            "overhead_after_first_s": statistics.median(later) if later else None,
            "candidates_per_minute": {
                "1 worker": 60 * len(configs) / serial_s,
                f"{args.workers} workers": 60 * len(configs) / parallel_s,
            },
            "serial": serial,
        }

    result = {"device": setup.device, "candidates": len(configs)}
    if args.cold:
        result["cold"] = measure(False)
    result["warm"] = measure(True)
    print(json.dumps(result, indent=2))
    return 0


def _compare(args) -> int:
    """Both versions, alternately, each run a process of its own; medians side by side."""
    import os
    import subprocess

    passed = [
        *("--n", str(args.n), "--workers", str(args.workers), "--spec", str(args.spec)),
        *("--check-wall-s", str(args.check_wall_s), *(["--phases"] if args.phases else [])),
    ]
    sides = {"before": args.compare.resolve(), "after": args.root.resolve()}
    runs: dict[str, list] = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, root in sides.items():
            env = dict(os.environ, PYTHONPATH=str(root))
            print(f"{side}: {root}", file=sys.stderr, flush=True)
            got = subprocess.run(
                [sys.executable, __file__, "--root", str(root), *passed],
                env=env,
                cwd=root,
                stdout=subprocess.PIPE,
                check=True,
            )
            runs[side].append(json.loads(got.stdout)["warm"])
    out = {"command": " ".join(sys.argv), "sides": {k: str(v) for k, v in sides.items()}}
    for side, got in runs.items():
        serial = [r for run in got for r in run["serial"]]
        keys = got[0]["per_candidate_median"]
        later = [r["overhead_s"] for run in got for r in run["serial"][1:]]
        out[side] = {
            "all_passed": all(run["all_passed"] for run in got),
            "per_candidate_median": {k: statistics.median(r[k] for r in serial) for k in keys},
            "overhead_after_first_s": statistics.median(later) if later else None,
            "candidates_per_minute": {
                k: statistics.median(run["candidates_per_minute"][k] for run in got)
                for k in got[0]["candidates_per_minute"]
            },
            "runs": got,
        }
    print(json.dumps(out, indent=2))
    return 0


def _print_phases(label: str, phases: dict) -> None:
    for run, ps in phases.items():
        # pytest.* are steps inside "result": not added twice
        total = sum(s for p, s in ps.items() if not p.startswith("pytest."))
        print(f"{label} {run}: {total:.3f} s", file=sys.stderr)
        for p, s in ps.items():
            print(f"    {p:<24} {s:8.3f}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
