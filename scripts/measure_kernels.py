"""Measure the row-wise kernels against their references, and their cost in the interpreter.

    .venv/bin/python scripts/measure_kernels.py errors --cases 300 --seed 0
    .venv/bin/python scripts/measure_kernels.py timing

``errors`` runs random cases built by the plugin's own generator (shapes with odd sizes,
batch splits, sliced and transposed layouts, every value kind, random meta-parameters so
both the single-pass and the looped kernels run) and prints, per kernel and dtype, the largest absolute
error and the largest ratio |out - ref| / (atol + rtol * |ref|) for the spec's tolerance
(< 1 passes; 1 / ratio is the margin). ``timing`` prints the wall time of one call at a
few shapes, with the heuristic's meta-parameters. On a machine without a GPU both run in
Triton's interpreter; the figures are for that machine, not for a GPU.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels import layer_norm, rms_norm, softmax  # noqa: E402  (after the path fix)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
KINDS = ("normal", "large", "small", "ties", "negative", "mixed")


KERNELS = {
    "softmax": (softmax.softmax_generic, softmax.softmax_reference, softmax.TUNABLES, 0),
    "rms_norm": (rms_norm.rms_norm_generic, rms_norm.rms_norm_reference, rms_norm.TUNABLES, 1),
    "layer_norm": (layer_norm.layer_norm_generic, layer_norm.layer_norm_reference, layer_norm.TUNABLES, 2),
}


def load_specs() -> dict:
    from pytest_aina.spec.model import load_spec

    root = Path(__file__).resolve().parents[1]
    return {name: load_spec(root / "specs" / f"{name}.yaml") for name in KERNELS}


def errors(n_cases: int, seed: int) -> None:
    # The plugin's own case generator, so the inputs (value kinds per input, layouts with
    # NaN padding) and the tolerances are exactly those ``pytest --aina`` checks.
    from pytest_aina.checking.cases import make_inputs
    from pytest_aina.spec.model import Case

    rng = random.Random(seed)
    specs = load_specs()
    worst: dict = {}
    for i in range(n_cases):
        name = rng.choice(list(KERNELS))
        fn, ref, tunables, _ = KERNELS[name]
        dtype = rng.choice(list(DTYPES))
        wide = rng.random() < 0.08
        n = rng.choice([70001, 131072]) if wide else rng.choice([1, 2, 7, 31, 64, 100, 257, 1000, 1024, 3000, 4097])
        m = rng.randint(1, 2) if wide else rng.randint(1, 48)
        batch = (2, m) if rng.random() < 0.3 else None
        case = Case(
            dims=(("M", m * (2 if batch else 1)), ("N", n)),
            dtype=dtype,
            layout=rng.choice(["contiguous", "sliced", "transposed"]),
            values=rng.choice(KINDS),
            batch=batch,
            seed=seed * 100_003 + i,
        )
        args = list(make_inputs(specs[name], case).tensors.values())
        # half the cases with the heuristic, half with a random legal config
        config = {}
        if rng.random() < 0.5:
            config = {k: rng.choice(v) for k, v in tunables.items()}
            config["BLOCK_N"] = min(config["BLOCK_N"], 4096)
            while config["BLOCK_N"] * config["ROWS_PER_PROGRAM"] > 65536:
                config["ROWS_PER_PROGRAM"] //= 2
        out = fn(*args, **specs[name].args, **config).float()
        expect = ref(*args, **specs[name].args).float()
        t = specs[name].tolerance[dtype]
        err = (out - expect).abs()
        ratio = (err / (t.atol + t.rtol * expect.abs())).max().item()
        w = worst.setdefault((name, dtype), {"abs": 0.0, "ratio": 0.0, "cases": 0, "case": "", "sum": 0.0})
        w["cases"] += 1
        if name == "softmax":  # the sums_to invariant's figure
            w["sum"] = max(w["sum"], (out.sum(dim=-1) - 1).abs().max().item())
        w["abs"] = max(w["abs"], err.max().item())
        if ratio >= w["ratio"]:
            w["ratio"], w["case"] = ratio, f"{case.to_arg()} {config or 'heuristic'}"
    print(
        f"{'kernel':<11} {'dtype':<9} {'cases':>5} {'max |err|':>10} {'max err/tol':>11} {'max|sum-1|':>10}  worst case"
    )
    for (name, dtype), w in sorted(worst.items()):
        total = f"{w['sum']:.3g}" if name == "softmax" else "-"
        print(f"{name:<11} {dtype:<9} {w['cases']:>5} {w['abs']:>10.3g} {w['ratio']:>11.3f} {total:>10}  {w['case']}")


def timing() -> None:
    shapes = [(1, 1), (64, 128), (256, 1024), (1024, 1024), (64, 4096), (4096, 1024), (16, 32768), (1, 131072)]
    print(f"{'M':>5} {'N':>7} {'dtype':<9} " + " ".join(f"{k:>11}" for k in KERNELS) + "   (ms per call)")
    for m, n in shapes:
        for dtype in ("float32", "bfloat16"):
            x = torch.randn(m, n).to(DTYPES[dtype])
            w, b = torch.randn(n).to(x.dtype), torch.randn(n).to(x.dtype)
            cells = []
            for fn, _, _, n_params in KERNELS.values():
                args = (x, w, b)[: 1 + n_params]
                fn(*args)  # first call pays for the interpreter's set-up
                reps = 3
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn(*args)
                cells.append(f"{(time.perf_counter() - t0) / reps * 1e3:>11.1f}")
            print(f"{m:>5} {n:>7} {dtype:<9} " + " ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    e = sub.add_parser("errors")
    e.add_argument("--cases", type=int, default=300)
    e.add_argument("--seed", type=int, default=0)
    sub.add_parser("timing")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, interpreter: {softmax.rowwise.is_interpreted(softmax._softmax_fused_kernel)}")
    if args.what == "errors":
        errors(args.cases, args.seed)
    else:
        timing()


if __name__ == "__main__":
    main()
