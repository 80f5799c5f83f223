"""What the faithful interpreter and its sanitizer cost, against Triton's raw interpreter.

Times ``kernels.softmax.softmax_generic`` on a CPU under ``TRITON_INTERPRET=1`` in three
modes, interleaved round by round so that the machine's load falls on all of them alike:

* raw: Triton's interpreter as installed;
* faithful: ``pytest_aina.interpreter.install(sanitize=False)``;
* faithful+sanitizer: ``install(sanitize=True)`` (address checks and guard zones).

Two configurations: the launcher's heuristic (few programs, each a large tile: the
interpreter's per-operation cost dominates) and one row per program (many small programs:
the per-launch and per-access costs dominate). Prints one row per case and mode with the
median and the ratio to raw; ``--json FILE`` writes them with the machine, versions and time.

    PYTHONPATH=. python benchmarks/interpreter_overhead.py --rounds 5
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported: see kernels/__init__.py

import argparse
import datetime
import json
import platform
import statistics
import time

import torch
import triton

from kernels.softmax import softmax_generic
from pytest_aina import interpreter

MODES = {
    "raw": interpreter.uninstall,
    "faithful": lambda: interpreter.install(sanitize=False),
    "faithful+sanitizer": lambda: interpreter.install(sanitize=True),
}


def cases(m: int, n: int) -> list[tuple[str, torch.Tensor, dict]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(m, n, generator=g).to(dtype)
        name = str(dtype).removeprefix("torch.")
        out.append((f"softmax {name} [{m}, {n}] heuristic", x, {}))
        out.append((f"softmax {name} [{m}, {n}] 1 row/program", x, {"ROWS_PER_PROGRAM": 1}))
    return out


def measure(rounds: int, m: int, n: int) -> list[dict]:
    rows = []
    for name, x, config in cases(m, n):
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for switch in MODES.values():  # warm-up: first-call rewriting and caches
            switch()
            softmax_generic(x, **config)
        for _ in range(rounds):
            for mode, switch in MODES.items():
                switch()
                start = time.perf_counter()
                softmax_generic(x, **config)
                times[mode].append(time.perf_counter() - start)
        interpreter.uninstall()
        raw = statistics.median(times["raw"])
        for mode, samples in times.items():
            median = statistics.median(samples)
            rows.append(
                {
                    "case": name,
                    "mode": mode,
                    "median_s": median,
                    "min_s": min(samples),
                    "max_s": max(samples),
                    "ratio_to_raw": median / raw,
                    "rounds": rounds,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, metavar="N", help="timed rounds per mode (default: 5)")
    parser.add_argument("--rows", type=int, default=64, metavar="M", help="rows of x (default: 64)")
    parser.add_argument("--cols", type=int, default=1024, metavar="N", help="columns of x (default: 1024)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows, with the environment, to FILE")
    args = parser.parse_args()
    rows = measure(args.rounds, args.rows, args.cols)
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  {'mode':<18}  {'median':>9}  {'min':>9}  {'max':>9}  ratio")
    for r in rows:
        print(
            f"{r['case']:<{width}}  {r['mode']:<18}  {r['median_s']:>8.3f}s  {r['min_s']:>8.3f}s  "
            f"{r['max_s']:>8.3f}s  {r['ratio_to_raw']:.2f}x"
        )
    if args.json:
        document = {
            "device": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "triton": triton.__version__,
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "rows": rows,
        }
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)


if __name__ == "__main__":
    main()
