"""What the sandbox costs on this machine.

    .venv/bin/python benchmarks/bench_sandbox.py [--repeat N] [--calls N] [--json FILE]

Rows (median over repeats, wall clock of the calling process):

* ``run.startup``: ``run()`` of a function that returns at once, all layers the machine
  allows, and with every optional layer off, so the price of isolation is visible;
* ``run.torch_triton``: ``run()`` of a function that imports torch and Triton (in the
  interpreter) and launches one small kernel: the cold start of a real evaluation;
* ``protocol.floor``: one no-op call through the timing protocol (``go`` -> ``done``),
  the least a timed call can measure;
* ``protocol.timed_tiny_call``: the timed figure of a tiny numpy candidate (floor included);
* ``protocol.call_overhead``: per call, what the round costs beyond the timed figure
  (fresh inputs, shipping output and inputs back, the parent's checks): the evaluation's
  overhead per call beyond the kernel's own time;
* ``protocol.session``: a whole ``time_calls`` session of a tiny candidate.

Every row carries the machine, a timestamp and the versions, so figures from different
runs and machines can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime

HARNESS = """
import numpy as np

def make_inputs(seed, rows=8, cols=16):
    return [np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)]

def reference(x):
    return x * 2

def check(out, expected):
    if not np.allclose(out, expected):
        return "differs"
"""

TORCH_TRITON = """
def f():
    import torch, triton, triton.language as tl

    @triton.jit
    def add(x, y, o, n, BLOCK: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(o + i, tl.load(x + i, mask=i < n) + tl.load(y + i, mask=i < n), mask=i < n)

    x = torch.randn(1000)
    o = torch.empty_like(x)
    add[(1,)](x, x, o, 1000, BLOCK=1024)
    return bool(torch.allclose(o, 2 * x))
"""


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median_wall(fn, repeat: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), samples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7, metavar="N", help="repeats per row (default 7)")
    ap.add_argument(
        "--calls", type=int, default=200, metavar="N", help="timed calls in the long protocol session (default 200)"
    )
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    args = ap.parse_args(argv)

    from pytest_aina.sandbox import Isolation, run, time_calls
    from pytest_aina.sandbox.parent.machine import probe

    folder = tempfile.mkdtemp(prefix="aina-bench-")
    os.chmod(folder, 0o755)  # the sandbox's own uid reads the candidates from here
    try:

        def put(name: str, text: str) -> str:
            path = os.path.join(folder, name)
            with open(path, "w") as f:
                f.write(textwrap.dedent(text))
            os.chmod(path, 0o644)
            return path

        trivial = put("trivial.py", "def f():\n    return 1\n")
        harness = put("harness.py", HARNESS)
        tiny = put("tiny.py", "def f(x):\n    return x * 2\n")
        heavy = put("heavy.py", TORCH_TRITON)
        meta = {
            "machine": _cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "layers": probe().as_dict(),
        }
        try:
            from importlib.metadata import version

            meta["pytest_aina"] = version("pytest-aina")
        except Exception:
            pass
        rows = []

        def row(name: str, median_s: float, samples: list[float], note: str, **extra) -> None:
            rows.append({"row": name, "median_s": median_s, "samples_s": samples, "note": note, **extra, **meta})
            print(f"{name:34s} {median_s * 1e3:10.3f} ms   {note}")

        print(
            f"{meta['machine']} ({meta['cores']} cores, load {meta['load_avg_1m']:.2f}), Python {meta['python']}, "
            f"{meta['timestamp']}"
        )
        r = run(f"{trivial}:f")
        assert r.ok, r.reason
        m, s = _median_wall(lambda: run(f"{trivial}:f"), args.repeat)
        row(
            "run.startup[all layers]",
            m,
            s,
            "run() of a function returning at once",
            protections={
                k: v
                for k, v in r.protections.items()
                if k in ("pid_namespace", "net_namespace", "mount_namespace", "uid", "landlock", "read_only_root")
            },
        )
        bare = Isolation(namespaces=False, drop_uid=False, landlock=False, audit_hook=False)
        m, s = _median_wall(lambda: run(f"{trivial}:f", isolation=bare), args.repeat)
        row("run.startup[no optional layer]", m, s, "the same with namespaces, uid, Landlock and the hook off")
        m, s = _median_wall(lambda: run(f"{heavy}:f", env={"TRITON_INTERPRET": "1"}), max(3, args.repeat // 2))
        row("run.torch_triton", m, s, "import torch + triton, one kernel in the interpreter")

        common = dict(
            make_inputs=f"{harness}:make_inputs",
            reference=f"{harness}:reference",
            check=f"{harness}:check",
            warmup=1,
            floor_calls=200,
        )
        sessions, floors, timed, overheads = [], [], [], []
        for _ in range(max(3, args.repeat // 2)):
            t = time.perf_counter()
            b = time_calls(f"{tiny}:f", calls=args.calls, **common)
            sessions.append(time.perf_counter() - t)
            assert b.ok, b.reason
            floors.append(b.floor["median_s"])
            timed.append(b.median_s)
            overheads.append(statistics.median(c.cycle_s - c.parent_s for c in b.calls if not c.warmup))
        row("protocol.floor", statistics.median(floors), floors, "no-op go -> done round trip (parent's clock)")
        row(
            "protocol.timed_tiny_call",
            statistics.median(timed),
            timed,
            "median timed figure of x*2 on 8x16 float32 (floor included)",
        )
        row(
            "protocol.call_overhead",
            statistics.median(overheads),
            overheads,
            "per call beyond the timed figure: inputs, output back, parent's checks",
        )
        row(
            "protocol.session",
            statistics.median(sessions),
            sessions,
            f"a whole session: start-up, 200 no-ops, load, {args.calls} calls each followed by a no-op, clean-up",
        )
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
