"""What the tests of the tiled kernels (cross_entropy, matmul, attention) share.

* :func:`assert_within`: an error bound per element, scaled by the magnitudes that produced
  each result (what a fixed atol cannot say about a dot product that cancels);
* :func:`compile_for_sm90`: compile kernels for an H100 on a machine without a GPU, the way
  a launch specialises them, and report each one's shared memory. The interpreter runs a
  kernel's Python, never its compilation; a kernel can pass every CPU test and fail to
  compile (a type the code generator rejects, registers ptxas cannot find).

Run as a script, this module is the compiling subprocess (kernels must be defined with
``TRITON_INTERPRET=0``, and the test process has them interpreted)::

    python tests/kernels/tiled_helpers.py '<JSON list of cases>'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def assert_within(actual, expected, bound, what: str) -> None:
    """|actual - expected| <= bound element-wise (NaN where expected is NaN), naming the
    worst element and how far over its bound it is."""
    import torch

    a, e = actual.double(), expected.double()
    b = torch.as_tensor(bound, dtype=torch.float64).expand_as(e)
    assert torch.equal(a.isnan(), e.isnan()), f"{what}: NaN where the reference has none, or the reverse"
    err = (a - e).abs().nan_to_num(0.0)
    excess = err / b.clamp_min(1e-300)
    if bool((err > b).any()):
        i = int(excess.argmax())
        idx = tuple(int(v) for v in torch.unravel_index(torch.tensor(i), e.shape)) if e.dim() else ()
        raise AssertionError(
            f"{what}: {int((err > b).sum())} of {e.numel()} elements out of bounds; worst at "
            f"{idx}: got {a.flatten()[i].item()!r}, expected {e.flatten()[i].item()!r}, "
            f"error {err.flatten()[i].item():.3g} > bound {b.flatten()[i].item():.3g}"
        )


def compile_for_sm90(cases: list[dict], timeout: float = 900) -> list[dict]:
    """Compile each case in a subprocess; returns {"label", "ok", "shared", "error",
    "registers", "spill_bytes"} per case (the last two per thread, from ``ptxas -v``).

    A case: ``{"label", "kernel": "module:attr", "args": {arg: value}, "num_warps",
    "num_stages", "fp_fusion"}``, with every argument of the kernel: "*fp16" (etc.) for a
    pointer (16-byte aligned, as torch allocates), an int as a launch would pass it (1 is
    specialised to a constant, multiples of 16 marked divisible: what lets Triton vectorise
    and pipeline), a float, or ``{"constexpr": value}``.
    """
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, __file__, json.dumps(cases)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _compile(case: dict) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from pytest_aina.imports import resolve

    kernel = resolve(case["kernel"])
    signature, constexprs, attrs = {}, {}, {}
    for i, name in enumerate(kernel.arg_names):
        value = case["args"][name]
        if isinstance(value, dict):
            signature[name], constexprs[name] = "constexpr", value["constexpr"]
        elif isinstance(value, str):
            signature[name] = value
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(value, float):
            signature[name] = "fp32"
        elif value == 1:
            signature[name], constexprs[name] = "constexpr", 1
        else:
            signature[name] = "i32"
            if value % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    src = ASTSource(kernel, signature, constexprs=constexprs, attrs=attrs)
    try:
        compiled = triton.compile(
            src,
            target=GPUTarget("cuda", 90, 32),
            options={
                "num_warps": case["num_warps"],
                "num_stages": case["num_stages"],
                "enable_fp_fusion": case["fp_fusion"],
            },
        )
    except Exception as exc:  # reported per case; the test decides
        return {
            "label": case["label"],
            "ok": False,
            "shared": None,
            "error": f"{type(exc).__name__}: {str(exc)[-1500:]}",
        }
    return {
        "label": case["label"],
        "ok": True,
        "shared": compiled.metadata.shared,
        "error": None,
        **_ptxas_usage(compiled.asm["ptx"]),
    }


def _ptxas_usage(ptx: str) -> dict:
    """Registers and spill bytes per thread, from ``ptxas -v`` (the ptxas Triton ships)."""
    import re
    import tempfile

    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        done = subprocess.run(
            [get_ptxas(90).path, "-v", f"--gpu-name={sm_arch_from_capability(90)}", f.name, "-o", os.devnull],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(f.name)
    regs = re.search(r"Used (\d+) registers", done.stderr)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", done.stderr)
    return {
        "registers": int(regs.group(1)) if regs else None,
        "spill_bytes": int(spills.group(1)) + int(spills.group(2)) if spills else None,
    }


if __name__ == "__main__":
    for case in json.loads(sys.argv[1]):
        print(json.dumps(_compile(case)), flush=True)
