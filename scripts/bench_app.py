#!/usr/bin/env python3
"""``scripts/bench_app.py``, the name issue 15 gives the acknowledgement benchmark: it runs
``benchmarks/bench_app.py`` (every benchmark lives in ``benchmarks/``, beside its committed
results), with the same arguments.

    .venv/bin/python scripts/bench_app.py --store both --batches 0 --rounds 3
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_app.py"
    sys.path.insert(0, str(bench.parent))  # as if run from there: it imports its neighbours
    sys.argv[0] = str(bench)
    runpy.run_path(str(bench), run_name="__main__")
