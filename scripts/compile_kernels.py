"""Compile the row-wise kernels for a GPU on a machine that has none.

    .venv/bin/python scripts/compile_kernels.py            # every kernel, dtype and a spread of configs
    .venv/bin/python scripts/compile_kernels.py --quick    # one config per kernel and dtype (CI)

The Triton interpreter runs a kernel's Python, not its compilation: a kernel can pass every
CPU test and still fail to compile for a GPU (a type the code generator rejects, a loop-
carried value whose type changes, a block too large). Triton's wheel ships the NVIDIA
backend and ``ptxas``, so this script compiles each kernel ahead of time for sm_90 (H100)
the way a launch would, runs ``ptxas -v`` on the PTX and prints registers and spills per
thread. Exit status 1 if any compilation fails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Compile, never interpret: must be set before the kernels are defined (kernels/__init__.py).
os.environ["TRITON_INTERPRET"] = "0"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from kernels import layer_norm, rms_norm, softmax  # noqa: E402

KERNELS = [  # (kernel, pointer args, enable_fp_fusion as its launcher passes it)
    (softmax._softmax_fused_kernel, ["x_ptr", "y_ptr"], False),
    (softmax._softmax_looped_kernel, ["x_ptr", "y_ptr"], False),
    (rms_norm._rms_norm_fused_kernel, ["x_ptr", "w_ptr", "y_ptr"], True),
    (rms_norm._rms_norm_looped_kernel, ["x_ptr", "w_ptr", "y_ptr"], True),
    (layer_norm._layer_norm_fused_kernel, ["x_ptr", "w_ptr", "b_ptr", "y_ptr"], True),
    (layer_norm._layer_norm_looped_kernel, ["x_ptr", "w_ptr", "b_ptr", "y_ptr"], True),
]
DTYPES = ["fp32", "fp16", "bf16"]
# (BLOCK_N, ROWS_PER_PROGRAM, num_warps, num_stages): the heuristic's usual picks and the extremes
CONFIGS = [
    (1024, 1, 4, 1),
    (4096, 1, 8, 2),
    (16384, 1, 16, 1),
    (32768, 1, 32, 1),
    (65536, 1, 32, 1),
    (512, 16, 16, 1),
    (16, 16, 1, 4),
]
QUICK = [(4096, 2, 8, 2)]


def signature(kernel, pointers: list[str], dtype: str) -> dict:
    sig = {}
    for name in kernel.arg_names:
        if name in pointers:
            sig[name] = "*" + dtype
        elif name in ("BLOCK_N", "ROWS_PER_PROGRAM"):
            sig[name] = "constexpr"
        elif name == "eps":
            sig[name] = "fp32"
        else:
            sig[name] = "i32"  # sizes and strides, as a launch with ordinary sizes passes them
    return sig


def ptxas_usage(ptx: str, capability: int) -> str:
    """Registers and spills per thread, from ``ptxas -v`` (the ptxas Triton itself uses)."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    ptxas, arch = get_ptxas(capability).path, sm_arch_from_capability(capability)
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        done = subprocess.run(
            [ptxas, "-v", f"--gpu-name={arch}", f.name, "-o", os.devnull], capture_output=True, text=True, check=True
        )
    finally:
        os.unlink(f.name)
    regs = re.search(r"Used (\d+) registers", done.stderr)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", done.stderr)
    return (
        f"{regs.group(1) if regs else '?':>3} regs, "
        f"spills {spills.group(1) if spills else '?'}B/{spills.group(2) if spills else '?'}B"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one config per kernel and dtype")
    parser.add_argument("--capability", type=int, default=90, help="compute capability (default: 90, H100)")
    args = parser.parse_args()
    target = GPUTarget("cuda", args.capability, 32)
    failed = 0
    print(f"triton {triton.__version__}, target sm_{args.capability}")
    for kernel, pointers, fp_fusion in KERNELS:
        for dtype in DTYPES:
            for block_n, rows, warps, stages in QUICK if args.quick else CONFIGS:
                label = (
                    f"{kernel.__name__:<27} {dtype} BLOCK_N={block_n:<5} ROWS={rows:<2} "
                    f"warps={warps:<2} stages={stages}"
                )
                src = ASTSource(
                    kernel,
                    signature(kernel, pointers, dtype),
                    constexprs={"BLOCK_N": block_n, "ROWS_PER_PROGRAM": rows},
                )
                t0 = time.perf_counter()
                try:
                    compiled = triton.compile(
                        src,
                        target=target,
                        options={"num_warps": warps, "num_stages": stages, "enable_fp_fusion": fp_fusion},
                    )
                except Exception as exc:  # report every failure, then exit non-zero
                    failed += 1
                    print(f"{label}  FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                    continue
                usage = ptxas_usage(compiled.asm["ptx"], args.capability)
                print(f"{label}  ok  {usage}  ({time.perf_counter() - t0:.1f}s)", flush=True)
    print("all compiled" if not failed else f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
