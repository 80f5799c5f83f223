"""The timing protocol's two clocks on a busy CPU: wall time and CPU time per call.

    .venv/bin/python benchmarks/cpu_clock_under_load.py [--hogs 0,1,2,3] [--rounds 2] [--calls 7] [--json FILE]

One Triton kernel (a row softmax, 64 rows of 1024 in Triton's interpreter) is timed with
:func:`pytest_aina.sandbox.time_calls`, the protocol the Changer's evaluator uses, with N
busy processes (``while True: pass``, each in a session of its own, like a sandbox or
another test's process tree) running beside it, N taken from ``--hogs`` in turn,
``--rounds`` times over (so drift falls on every N alike). For each N it prints the
median over sessions of each session's median, on the wall clock (``times_s``) and on the
CPU clock (``cpu_times_s``, every thread of every process of the sandbox, read by the
parent), and each as a ratio to N = 0 measured in the same run.

What to read: on a machine with C cores, N >= C busy processes make the wall clock count
the time the call waits for a core (the ratio grows with N); the CPU clock's ratio stays
near 1 (what is left is the cores' shared caches and memory bandwidth, and the host's own
scheduling on a VM). That is why the evaluator ranks candidates on the CPU clock on a CPU
device (docs/sandbox.md, the timing protocol, step 7).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

HARNESS = """
import torch

def make_inputs(seed, rows=64, cols=1024):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, cols, generator=g)]

def reference(x):
    return torch.softmax(x, dim=-1)

def check(out, expected, **params):
    if type(out) is not torch.Tensor or out.shape != expected.shape:
        return f"expected a tensor of shape {tuple(expected.shape)}"
    if not torch.allclose(out, expected, atol=1e-5, rtol=1e-5):
        return f"max error {float((out - expected).abs().max()):.3g}"
"""

KERNEL = """
import torch, triton, triton.language as tl

@triton.jit
def _softmax(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    i = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n + i, mask=i < n, other=-float("inf"))
    e = tl.exp(x - tl.max(x, 0))
    tl.store(o_ptr + row * n + i, e / tl.sum(e, 0), mask=i < n)

def f(x):
    o = torch.empty_like(x)
    _softmax[(x.shape[0],)](x, o, x.shape[1], BLOCK=triton.next_power_of_2(x.shape[1]))
    return o
"""


def session(folder: str, calls: int) -> tuple[float, float]:
    from pytest_aina.sandbox import time_calls

    r = time_calls(
        f"{folder}/softmax.py:f",
        make_inputs=f"{folder}/harness.py:make_inputs",
        reference=f"{folder}/harness.py:reference",
        check=f"{folder}/harness.py:check",
        calls=calls,
        warmup=1,
        floor_calls=5,
        env={"TRITON_INTERPRET": "1"},
    )
    if r.status != "ok" or r.cpu_median_s is None:
        sys.exit(f"the session failed or its CPU clock could not be read: {r.status}: {r.reason}")
    return r.median_s, r.cpu_median_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hogs", default="0,1,2,3", help="busy processes beside the session, in turn (default 0,1,2,3)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--calls", type=int, default=7)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    hogs = [int(x) for x in args.hogs.split(",")]
    if 0 not in hogs:
        sys.exit("--hogs must include 0: the ratios are to the machine without busy processes")
    figures: dict[int, list[tuple[float, float]]] = {n: [] for n in hogs}
    with tempfile.TemporaryDirectory() as folder:
        for name, text in (("harness.py", HARNESS), ("softmax.py", KERNEL)):
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)
        for r in range(args.rounds):
            for n in hogs:
                # each in a session of its own, as every sandbox is: with the kernel's
                # autogroup scheduling (on by default) a session shares the CPU fairly with
                # other sessions, so busy processes in this one would mostly slow each other
                busy = [
                    subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                    for _ in range(n)
                ]
                try:
                    time.sleep(0.2)  # the busy processes running before the session starts
                    wall, cpu = session(folder, args.calls)
                finally:
                    for p in busy:
                        p.kill()
                        p.wait()
                figures[n].append((wall, cpu))
                print(f"round {r + 1}, {n} busy: wall {wall * 1e3:8.1f} ms  cpu {cpu * 1e3:8.1f} ms", file=sys.stderr)
    rows = []
    base_wall = statistics.median(w for w, _ in figures[0])
    base_cpu = statistics.median(c for _, c in figures[0])
    print(f"{'busy':>4} {'wall ms':>9} {'x alone':>8} {'cpu ms':>9} {'x alone':>8}   ({os.cpu_count()} cores)")
    for n in hogs:
        wall = statistics.median(w for w, _ in figures[n])
        cpu = statistics.median(c for _, c in figures[n])
        rows.append({"busy": n, "wall_s": wall, "cpu_s": cpu, "wall_x": wall / base_wall, "cpu_x": cpu / base_cpu})
        print(f"{n:>4} {wall * 1e3:>9.1f} {wall / base_wall:>7.2f}x {cpu * 1e3:>9.1f} {cpu / base_cpu:>7.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "what": "time_calls of a 64x1024 softmax in Triton's interpreter, N busy processes beside it",
                    "when": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
                    "rounds": args.rounds,
                    "calls": args.calls,
                    "rows": rows,
                    "sessions": {str(n): figures[n] for n in hogs},
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
