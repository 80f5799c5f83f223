#!/usr/bin/env python3
"""How close does the meta-parameter search get to the exhaustive optimum, and how fast?

1. Measure every configuration of a kernel's interpreter-visible tunables at one shape
   (exhaustive search), interleaving rounds so machine drift hits every config alike.
2. Replay the search's proposer (``MetaParamProposer``, the one ``aina evolve`` uses)
   against that table for many seeds: it sees only the scores of what it proposed.
3. Report, per budget, the median ratio best-found / exhaustive-best, and how many
   evaluations it takes to get within 5% and to the optimum.

On a CPU the clock is Triton's interpreter's: the figures say how well the *search*
works, not how fast the kernel is on a GPU.

    TRITON_INTERPRET=1 python benchmarks/search_vs_exhaustive.py --kernel softmax --M 8 --N 2048 --out T.json
    python benchmarks/search_vs_exhaustive.py --replay T.json   # the search again, same table, no measuring
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(args) -> tuple[dict, str, list[dict], dict[int, float], dict | None]:
    """Time every configuration of the kernel's tunables (interleaved rounds); returns the
    space, the device, the configurations ({} first: the heuristic), their medians and the
    heuristic's own point."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from importlib import import_module

    from pytest_aina.changer.pipeline import GPU_ONLY_TUNABLES

    mod = import_module(f"kernels.{args.kernel}")
    generic = getattr(mod, f"{args.kernel}_generic")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    space = {k: v for k, v in mod.TUNABLES.items() if device == "cuda" or k not in GPU_ONLY_TUNABLES}
    names = sorted(space)
    # {} is the launcher's heuristic: the baseline, measured in the same interleaved rounds
    configs = [{}] + [dict(zip(names, vals)) for vals in itertools.product(*(space[k] for k in names))]
    x = torch.randn(args.M, args.N, dtype=getattr(torch, args.dtype), device=device)
    extra = []
    if args.kernel in ("rms_norm", "layer_norm"):
        extra.append(torch.randn(args.N, dtype=x.dtype, device=device))
        if args.kernel == "layer_norm":
            extra.append(torch.randn(args.N, dtype=x.dtype, device=device))

    def timed(cfg) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        generic(x, *extra, **cfg)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    samples: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    for cfg in configs:  # warm-up (and compile on a GPU)
        generic(x, *extra, **cfg)
    t0 = time.perf_counter()
    for r in range(args.rounds):
        for i, cfg in enumerate(configs):
            samples[i].append(timed(cfg))
        print(f"round {r + 1}/{args.rounds} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    median = {i: statistics.median(s) for i, s in samples.items()}
    heuristic_point = getattr(mod, f"{args.kernel}_config", lambda *a: None)(x, *extra)
    return space, device, configs, median, heuristic_point


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="softmax")
    ap.add_argument("--M", type=int, default=8)
    ap.add_argument("--N", type=int, default=2048)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--out", default=None, help="write the table and the replay as JSON")
    ap.add_argument(
        "--replay",
        metavar="FILE",
        default=None,
        help="measure nothing: replay the search against the table in FILE (an earlier --out)",
    )
    args = ap.parse_args()
    if args.replay:
        saved = json.loads(Path(args.replay).read_text())
        if "table" not in saved:
            sys.exit(f"{args.replay} holds no table (written before --out saved one): measure again")
        # the search again on the measured table: no kernel runs, so no torch or Triton
        args.kernel, args.M, args.N, args.dtype = (
            saved["kernel"],
            saved["shape"]["M"],
            saved["shape"]["N"],
            saved["dtype"],
        )
        space, device, heuristic_point = saved["space"], saved["device"], saved["heuristic_point"]
        configs = [row["config"] for row in saved["table"]]
        median = {i: row["median_s"] for i, row in enumerate(saved["table"])}
    else:
        space, device, configs, median, heuristic_point = measure(args)

    from pytest_aina.changer.model import Verdict
    from pytest_aina.changer.proposers import MetaParamProposer, ProposalContext

    best_i = min(median, key=median.get)
    best_t = median[best_i]
    heuristic_t = median[0]

    def score(cfg: dict) -> float:
        return 1.0 / median[configs.index(cfg or {})]

    budgets = [4, 8, 12, 16, 24, 32, 48]

    def replay(start: dict | None) -> dict:
        found = {b: [] for b in budgets}
        to_within5, to_best = [], []
        for seed in range(args.seeds):
            ctx = ProposalContext(
                kernel=args.kernel,
                spec=None,
                spec_text="",
                kernel_source="",
                function=args.kernel,
                hypothesis={},
                tunables=space,
                seed=seed,
                heuristic=start,
            )
            prop = MetaParamProposer()
            best_so_far, hit5, hit = float("inf"), None, None
            for n in range(1, max(budgets) + 1):
                cands = prop.propose(ctx, 1)
                if not cands:
                    break
                c = cands[0]
                s = score(c.config)
                ctx.history.append((c, Verdict(c.id, True, score=s)))
                best_so_far = min(best_so_far, 1 / s)
                if hit5 is None and best_so_far <= best_t * 1.05:
                    hit5 = n
                if hit is None and best_so_far <= best_t * (1 + 1e-12):
                    hit = n
                if n in found:
                    found[n].append(best_t / best_so_far)
            to_within5.append(hit5)
            to_best.append(hit)
        return {
            "fraction_of_best_by_budget": {
                str(b): {"median": med(found[b]), "min": min(found[b])} for b in budgets if found[b]
            },
            "evaluations_to_within_5pct": {
                "median": med(to_within5),
                "max": max((v for v in to_within5 if v), default=None),
                "never": sum(v is None for v in to_within5),
            },
            "evaluations_to_best": {"median": med(to_best), "never": sum(v is None for v in to_best)},
        }

    def med(xs):
        xs = [v for v in xs if v is not None]
        return statistics.median(xs) if xs else None

    result = {
        "kernel": args.kernel,
        "shape": {"M": args.M, "N": args.N},
        "dtype": args.dtype,
        "device": device,
        "clock": "wall clock, Triton interpreter on CPU"
        if device == "cpu"
        else "wall clock around a synchronised call",
        "space": space,
        "space_size": len(configs) - 1,
        "exhaustive_best": {"config": configs[best_i], "median_s": best_t},
        "heuristic_median_s": heuristic_t,
        "worst_median_s": max(median.values()),
        "heuristic_point": heuristic_point,
        "replay_from_the_heuristic_point": replay(heuristic_point) if heuristic_point else None,
        "replay_exploring_first": replay(None),
        "seeds": args.seeds,
        # every configuration's median ({} is the heuristic), so the search can be replayed later
        "table": [{"config": configs[i], "median_s": median[i]} for i in sorted(median)],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
