#!/usr/bin/env python3
"""The checks stage's fixed cost: one warm sandbox running ``run_checks`` with no item
selected (``-k`` matching nothing), so what is left is the sandbox and pytest's
configuration and collection. Alternates, in the same template and run:

* ``all plugins``: pytest as the checks ran it before (every pytest11 plugin autoloaded,
  pytest-benchmark with its storage option, none of pytest's own plugins blocked);
* ``checks' plugins``: as :func:`pytest_aina.changer.harness.run_checks` runs it now.

Prints the median of ``--repeat`` runs of each: the whole stage's wall time and the part
inside ``pytest.main``.

    PYTHONPATH=. python benchmarks/bench_checks_startup.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def inside(spec: str, impl: str, profile: str, rootdir: str, all_plugins: bool) -> dict:
    """In the sandbox: run_checks with nothing selected, pytest's arguments as asked."""
    import pytest

    from pytest_aina.changer import harness

    real = pytest.main

    def main(args, plugins=None):
        args = [*args, "-k", "matches_no_item"]
        if all_plugins:
            args = [a for a in args if a != "--disable-plugin-autoload"]
            for p in harness.CHECK_BLOCKED:
                i = args.index(f"no:{p}")
                del args[i - 1 : i + 1]
            args += ["--benchmark-storage", "file://" + os.path.join(os.getcwd(), ".benchmarks")]
            plugins = plugins[-1:]  # the collector only: the rest are autoloaded
        return real(args, plugins=plugins)

    pytest.main = main
    t = time.perf_counter()
    v = harness.run_checks(spec, impl, profile, rootdir)
    return {"pytest_s": time.perf_counter() - t, "exit_code": v["exit_code"], "items": len(v["items"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    from pytest_aina import sandbox
    from pytest_aina.changer import evaluate as E
    from pytest_aina.changer.model import Candidate

    setup = E.Setup(
        spec_path=ROOT / "specs" / "softmax.yaml",
        repo=ROOT,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[],
        workdir=E.workdir_for(ROOT, "bench-checks-startup"),
    )
    tpl = E.template_for(setup)
    tpl.start()
    c = Candidate(kernel="softmax", proposer="bench", config={"BLOCK_N": 1024, "ROWS_PER_PROGRAM": 1})
    cfile = setup.workdir / "cand_startup.py"
    cfile.write_text(E.module_source(c, setup))
    rows: dict[str, list] = {"all plugins": [], "checks' plugins": []}
    load = os.getloadavg()[0]
    for _ in range(args.repeat):
        for label in rows:
            t = time.perf_counter()
            r = sandbox.run(
                f"{Path(__file__).resolve()}:inside",
                args=[str(setup.spec_path), "cand_startup:softmax", "ci", str(ROOT), label == "all plugins"],
                files={"candidate/cand_startup.py": cfile},
                pythonpath=[str(ROOT)],
                read_paths=[str(ROOT)],
                env=E.child_env(setup.device),
                template=tpl,
            )
            wall = time.perf_counter() - t
            if r.status != "ok" or r.value["exit_code"] != 5:  # 5: no test selected, as meant
                raise SystemExit(f"{label}: {r.status} {r.reason} {r.value}")
            rows[label].append((wall, r.value["pytest_s"], r.protections["start"].split(":")[0]))
    result = {
        label: {
            "stage_s": statistics.median(x[0] for x in xs),
            "pytest_main_s": statistics.median(x[1] for x in xs),
            "starts": sorted({x[2] for x in xs}),  # warm (forked from the template) or cold
        }
        for label, xs in rows.items()
    }
    result["repeat"] = args.repeat
    result["load_avg_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
