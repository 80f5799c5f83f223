"""What each run of tests/plugin/test_bugs_caught.py costs: the ``pytest --aina`` session it
starts on a broken kernel, with every item (as the test ran it before) and with the items it
selects now (``-k``, the BUGS table's last column), side by side, interleaved, so that a
busy machine slows both alike. CPU seconds (user + sys of the pytest process and its forked
worker) are the figure to compare on a shared machine; wall seconds are printed beside them.
Each run's outcome is printed too: a bug must be caught (failed > 0) both ways, and the
correct kernel (``good``) must pass both ways.

    .venv/bin/python benchmarks/bugs_caught_cost.py                 # the fast subset's bugs
    .venv/bin/python benchmarks/bugs_caught_cost.py --bugs pad_zero,in_place --json FILE

Set ``CI=true`` as CI does (derandomised Hypothesis, the same cases every run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_TESTS = ROOT / "tests" / "plugin"


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def project(folder: Path, spec_text: str) -> None:
    shutil.copy(PLUGIN_TESTS / "bugs.py", folder / "bugs.py")
    (folder / "specs").mkdir()
    (folder / "specs" / "softmax.yaml").write_text(spec_text)


def one_run(folder: Path, impl: str, k: str | None) -> dict:
    argv = [sys.executable, "-m", "pytest", "--aina", "--aina-impl", f"bugs:{impl}", "-p", "no:cacheprovider", "-q"]
    if k:
        argv += ["-k", k]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(folder)]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|deselected)", out.stdout)}
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "rc": out.returncode, **counts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bugs", help="comma-separated impls (default: the BUGS not marked slow, and good)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    conftest = _module(PLUGIN_TESTS / "conftest.py")
    tests = _module(PLUGIN_TESTS / "test_bugs_caught.py")
    # "good": the correct kernel, every item (test_good_kernel_passes, marked slow) against
    # the property items (test_good_kernel_passes_the_items_the_bug_runs_select)
    items = {b[0]: b[3] for b in tests.BUGS} | {"good": tests.PROPERTY}
    names = args.bugs.split(",") if args.bugs else [b for b in items if b not in tests.SLOW_BUGS]
    rows = []
    print(
        f"{'bug':<15}{'all items cpu/wall s':>22}{'selected cpu/wall s':>22}{'cpu ratio':>10}  outcomes (all | selected)"
    )
    for name in names:
        row = {"bug": name, "k": items[name]}
        for key, k in (("all", None), ("selected", items[name])):
            with tempfile.TemporaryDirectory() as tmp:
                project(Path(tmp), conftest.SOFTMAX_SPEC)
                row[key] = one_run(Path(tmp), name, k)
        rows.append(row)
        a, s = row["all"], row["selected"]
        print(
            f"{name:<15}{a['cpu_s']:>12.1f}/{a['wall_s']:<9.1f}{s['cpu_s']:>12.1f}/{s['wall_s']:<9.1f}"
            f"{s['cpu_s'] / a['cpu_s']:>10.2f}  "
            f"failed {a.get('failed', 0)} passed {a.get('passed', 0)} | failed {s.get('failed', 0)} passed {s.get('passed', 0)}",
            flush=True,
        )
    total_a = sum(r["all"]["cpu_s"] for r in rows)
    total_s = sum(r["selected"]["cpu_s"] for r in rows)
    print(f"{'total':<15}{total_a:>12.1f}{'':10}{total_s:>12.1f}{'':10}{total_s / total_a:>10.2f}")
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "loadavg_end": os.getloadavg()}, indent=1) + "\n")
    caught = all(
        bool(r["all"].get("failed")) == bool(r["selected"].get("failed")) == (r["bug"] != "good") for r in rows
    )
    return 0 if caught else 1


if __name__ == "__main__":
    sys.exit(main())
