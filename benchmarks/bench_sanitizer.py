#!/usr/bin/env python3
"""Wall time of ``pytest --aina specs/`` with the sanitizer on against off (and, with
``--isolation``, with crash isolation off as well), as whole processes in turn (A B A B ...)
so that drift on a noisy machine hits every mode alike. Prints each run and the medians;
nothing is asserted: this is a measurement.

    .venv/bin/python benchmarks/bench_sanitizer.py [--runs 1] [-k EXPR] [--isolation]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="timed runs of each mode (default 1)")
    ap.add_argument("-k", dest="select", default=None, help="only the items pytest -k selects (default: all)")
    ap.add_argument("--isolation", action="store_true", help="also time --no-aina-isolate (sanitizer on)")
    ap.add_argument("specs", nargs="*", default=["specs/"], help="spec paths (default: specs/)")
    args = ap.parse_args()
    modes = {"sanitizer on": ["--aina-sanitize"], "sanitizer off": ["--no-aina-sanitize"]}
    if args.isolation:
        modes["sanitizer on, no isolation"] = ["--aina-sanitize", "--no-aina-isolate"]
    base = [sys.executable, "-m", "pytest", "--aina", "-q", "-p", "no:cacheprovider", *args.specs]
    if args.select:
        base += ["-k", args.select]
    times: dict[str, list[float]] = {m: [] for m in modes}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for r in range(args.runs):
        for mode, flags in modes.items():
            t0 = time.perf_counter()
            p = subprocess.run(base + flags, cwd=ROOT, capture_output=True, text=True, env=env)
            dt = time.perf_counter() - t0
            last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-500:]
            print(f"run {r + 1} {mode:<28} {dt:8.1f} s  exit {p.returncode}  {last}", flush=True)
            times[mode].append(dt)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ref = statistics.median(times["sanitizer off"])
    for mode, ts in times.items():
        print(f"{mode:<28} median {statistics.median(ts):8.1f} s  ({statistics.median(ts) / ref:.2f}x of off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
