#!/usr/bin/env python3
"""What ``--aina`` adds to collection: ``pytest --aina --collect-only`` over N specs
against plain ``pytest --collect-only`` on the same tree.

Builds a scratch tree with ``--specs`` spec files (copies of the committed specs under
new names, so every one is parsed, validated and expanded into items) beside a small
``tests/`` folder, then times both commands as whole processes, in turn (A B A B ...),
so drift on a noisy machine hits both alike. Prints the medians and the median of the
pairwise ratios; nothing is asserted: this is a measurement.

    .venv/bin/python benchmarks/bench_collect.py [--specs 50] [--runs 7]
    .venv/bin/python benchmarks/bench_collect.py --tree DIR   # only build the tree, to time it otherwise
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_tree(where: Path, n: int) -> None:
    (where / "specs").mkdir()
    (where / "tests").mkdir()
    sources = sorted((ROOT / "specs").glob("*.yaml"))
    for i in range(n):
        src = sources[i % len(sources)]
        text = src.read_text().replace(f"name: {src.stem}\n", f"name: {src.stem}_{i:03d}\n", 1)
        (where / "specs" / f"{src.stem}_{i:03d}.yaml").write_text(text)
    for i in range(5):
        (where / "tests" / f"test_plain_{i}.py").write_text(
            "".join(f"def test_{j}():\n    assert True\n\n" for j in range(10))
        )
    (where / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return dt, p.stdout.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specs", type=int, default=50, help="spec files in the tree (default 50)")
    ap.add_argument("--runs", type=int, default=7, help="timed runs of each command (default 7)")
    ap.add_argument("--tree", metavar="DIR", help="build the tree in DIR (new) and stop: to time it with another tool")
    args = ap.parse_args()
    if args.tree:
        Path(args.tree).mkdir(parents=True)
        make_tree(Path(args.tree), args.specs)
        print(f"{args.tree}: {args.specs} specs, 50 plain tests; run pytest [--aina] --collect-only -q there")
        return 0
    with tempfile.TemporaryDirectory(prefix="aina-collect-") as tmp:
        tree = Path(tmp)
        make_tree(tree, args.specs)
        # pytest's cache stays on, as in a developer's re-run: --aina keeps the specs the
        # schema accepted there (the first run below fills it and is printed apart)
        base = [sys.executable, "-m", "pytest", "--collect-only", "-q"]
        plain_cmd, aina_cmd = base, base + ["--aina"]
        # warm-up: page cache, .pyc files, and pytest's cache: the first runs are the cold ones
        cold_plain, _ = timed(plain_cmd, tree)
        cold_aina, _ = timed(aina_cmd, tree)
        plain, aina, ratios = [], [], []
        for _ in range(args.runs):
            a, a_last = timed(aina_cmd, tree)
            p, p_last = timed(plain_cmd, tree)
            aina.append(a)
            plain.append(p)
            ratios.append(a / p)
    print(f"{args.specs} specs + 50 plain tests, {args.runs} runs each, in turn ({os.cpu_count()} cores)")
    print(
        f"  pytest --collect-only         median {statistics.median(plain):6.3f} s  "
        f"[{min(plain):.3f} .. {max(plain):.3f}]  ({p_last})"
    )
    print(
        f"  pytest --aina --collect-only  median {statistics.median(aina):6.3f} s  "
        f"[{min(aina):.3f} .. {max(aina):.3f}]  ({a_last})"
    )
    print(
        f"  ratio aina/plain (pairwise)   median {statistics.median(ratios):6.2f}x  "
        f"[{min(ratios):.2f} .. {max(ratios):.2f}]"
    )
    print(
        f"  first run, cold caches        plain {cold_plain:.3f} s, --aina {cold_aina:.3f} s "
        f"({cold_aina / cold_plain:.2f}x; one run, not a median)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
