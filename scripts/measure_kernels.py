"""Measure the row-wise kernels against their references, and their cost in the interpreter.

    .venv/bin/python scripts/measure_kernels.py errors --cases 300 --seed 0
    .venv/bin/python scripts/measure_kernels.py timing

``errors`` runs random cases (shapes with odd sizes, batch splits, sliced and transposed
layouts, the value kinds the plugin generates, random meta-parameters so both the single-
pass and the looped kernels run) and prints, per kernel and dtype, the largest absolute
error and the largest ratio |out - ref| / (atol + rtol * |ref|) for the spec's tolerance
(< 1 passes; 1 / ratio is the margin). ``timing`` prints the wall time of one call at a
few shapes, with the heuristic's meta-parameters. On a machine without a GPU both run in
Triton's interpreter; the figures are for that machine, not for a GPU.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels import layer_norm, rms_norm, softmax  # noqa: E402  (after the path fix)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LARGE = {"float32": 1e4, "float16": 1e3, "bfloat16": 1e4}
KINDS = ("normal", "large", "small", "ties", "negative", "mixed")


def values(kind: str, shape: list[int], dtype: str, gen: torch.Generator) -> torch.Tensor:
    n = math.prod(shape)
    if kind == "normal":
        v = torch.randn(n, generator=gen)
    elif kind == "large":
        v = torch.randn(n, generator=gen) * LARGE[dtype]
    elif kind == "small":
        v = torch.randn(n, generator=gen) * 1e-4
    elif kind == "ties":
        v = torch.randint(-2, 3, (n,), generator=gen).float()
        v[-shape[-1]:] = 1.5
    elif kind == "negative":
        v = -(torch.rand(n, generator=gen) * 20 + 1)
    else:
        v = torch.randn(n, generator=gen) * torch.pow(10.0, torch.rand(n, generator=gen) * 6 - 3)
    return v.reshape(shape).to(DTYPES[dtype])


def laid_out(v: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "sliced":
        buf = torch.full(list(v.shape[:-1]) + [v.shape[-1] + 3], float("nan"), dtype=v.dtype)
        out = buf[..., : v.shape[-1]]
    elif layout == "transposed" and v.dim() >= 2:
        out = torch.empty(list(v.shape[:-2]) + [v.shape[-1], v.shape[-2]], dtype=v.dtype).transpose(-1, -2)
    else:
        out = torch.empty_like(v)
    out.copy_(v)
    return out


KERNELS = {
    "softmax": (softmax.softmax_generic, softmax.softmax_reference, softmax.TUNABLES, 0),
    "rms_norm": (rms_norm.rms_norm_generic, rms_norm.rms_norm_reference, rms_norm.TUNABLES, 1),
    "layer_norm": (layer_norm.layer_norm_generic, layer_norm.layer_norm_reference, layer_norm.TUNABLES, 2),
}


def load_specs() -> dict:
    """The specs, so margins are against the tolerances the gate uses and parameters take
    the value kinds the spec allows (as the plugin does: the case's kind if allowed, else
    the input's first)."""
    from pytest_aina.spec import load_spec

    root = Path(__file__).resolve().parents[1]
    return {name: load_spec(root / "specs" / f"{name}.yaml") for name in KERNELS}


def errors(n_cases: int, seed: int) -> None:
    rng = random.Random(seed)
    specs = load_specs()
    worst: dict = {}
    for i in range(n_cases):
        name = rng.choice(list(KERNELS))
        fn, ref, tunables, n_params = KERNELS[name]
        dtype = rng.choice(list(DTYPES))
        kind = rng.choice(KINDS)
        layout = rng.choice(["contiguous", "sliced", "transposed"])
        wide = rng.random() < 0.08
        n = rng.choice([70001, 131072]) if wide else rng.choice([1, 2, 7, 31, 64, 100, 257, 1000, 1024, 3000, 4097])
        m = rng.randint(1, 2) if wide else rng.randint(1, 48)
        batch = [2, m] if rng.random() < 0.3 else [m]
        gen = torch.Generator().manual_seed(seed * 100_003 + i)
        x = laid_out(values(kind, batch + [n], dtype, gen), layout)
        params = [values(kind if kind in inp.values else inp.values[0], [n], dtype, gen)
                  for inp in specs[name].inputs[1:]]
        # half the cases with the heuristic, half with a random legal config
        config = {}
        if rng.random() < 0.5:
            config = {k: rng.choice(v) for k, v in tunables.items()}
            config["BLOCK_N"] = min(config["BLOCK_N"], 4096)
            while config["BLOCK_N"] * config["ROWS_PER_PROGRAM"] > 65536:
                config["ROWS_PER_PROGRAM"] //= 2
        out = fn(x, *params, **config).float()
        expect = ref(x, *params).float()
        t = specs[name].tolerance[dtype]
        err = (out - expect).abs()
        ratio = (err / (t.atol + t.rtol * expect.abs())).max().item()
        key = (name, dtype)
        w = worst.setdefault(key, {"abs": 0.0, "ratio": 0.0, "cases": 0, "case": "", "sum": 0.0})
        w["cases"] += 1
        if name == "softmax":  # the sums_to invariant's figure
            w["sum"] = max(w["sum"], (out.sum(dim=-1) - 1).abs().max().item())
        w["abs"] = max(w["abs"], err.max().item())
        if ratio >= w["ratio"]:
            w["ratio"], w["case"] = ratio, f"shape={list(x.shape)} {layout} {kind} {config or 'heuristic'}"
    print(f"{'kernel':<11} {'dtype':<9} {'cases':>5} {'max |err|':>10} {'max err/tol':>11} {'max|sum-1|':>10}  worst case")
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
            for name, (fn, _, _, n_params) in KERNELS.items():
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
