"""``aina init NAME``: the shortest way in for a kernel author.

Writes ``NAME.py`` (a small, real Triton kernel and its torch reference) and ``NAME.yaml``
(a spec it passes) into the current folder, or ``--dir``. ``pytest --aina NAME.yaml`` then
runs it, on a CPU in Triton's interpreter; the module is found next to its spec.
"""

from __future__ import annotations

import argparse
import keyword
import sys
from pathlib import Path

KERNEL = '''\
"""{name}: SiLU, y = x * sigmoid(x), elementwise; computed in float32, returned in x's dtype.

Scaffolded by ``aina init``: replace the kernel with yours and keep the spec ({name}.yaml)
saying what it must do.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _{name}_kernel(x_ptr, y_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask).to(tl.float32)
    y = x * tl.sigmoid(x)
    tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=mask)


def {name}(x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous()
    y = torch.empty_like(x)
    n = x.numel()
    BLOCK_SIZE = 1024
    _{name}_kernel[(triton.cdiv(n, BLOCK_SIZE),)](x, y, n, BLOCK_SIZE=BLOCK_SIZE)
    return y


def {name}_reference(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.silu(x.float()).to(x.dtype)
'''

SPEC = """\
aina: 1
name: {name}
description: SiLU, y = x * sigmoid(x), elementwise; computed in float32, returned in x's dtype.
implementation: {name}:{name}
reference: {name}:{name}_reference
inputs:
  x: {{shape: [M, N], batch_dims: true, layouts: [contiguous, sliced, transposed]}}
dims:
  M: {{min: 1, max: 4096}}
  N: {{min: 1, max: 16384}}
dtypes: [float32, float16, bfloat16]
# |out - ref| <= atol + rtol * |ref|: a few ulps of each dtype (the GPU's exp is approximate)
tolerance:
  float32: {{atol: 1.0e-6, rtol: 1.0e-5}}
  float16: {{atol: 1.0e-5, rtol: 2.0e-3}}
  bfloat16: {{atol: 1.0e-5, rtol: 1.6e-2}}
invariants:
  - close_to_reference
  - shape_preserved
  - dtype_preserved
  - no_input_mutation
  - deterministic
examples:
  - {{dims: {{M: 3, N: 1000}}, note: "1000 is not a multiple of the block: the last one is masked"}}
  - {{dims: {{M: 2, N: 33}}, layout: sliced, dtype: bfloat16}}
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "init",
        help="scaffold a Triton kernel, its reference and a spec it passes",
        description="Write NAME.py (a small Triton kernel and its torch reference) and NAME.yaml (its spec) "
        "into the current folder, or --dir. Then: pytest --aina NAME.yaml",
    )
    parser.add_argument("name", metavar="NAME", help="the kernel's name: a Python identifier, e.g. my_silu")
    parser.add_argument("--dir", default=".", metavar="DIR", help="where to write (default: the current folder)")
    parser.add_argument("--force", action="store_true", help="overwrite files that exist")
    parser.set_defaults(run=run_init)


def run_init(args: argparse.Namespace) -> int:
    name = args.name
    if not name.isidentifier() or keyword.iskeyword(name):
        print(f"aina init: {name!r} is not a Python identifier (it names the module and function)", file=sys.stderr)
        return 2
    folder = Path(args.dir)
    files = {folder / f"{name}.py": KERNEL.format(name=name), folder / f"{name}.yaml": SPEC.format(name=name)}
    existing = [str(p) for p in files if p.exists()]
    if existing and not args.force:
        print(f"aina init: {', '.join(existing)} exist(s); --force overwrites", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path}")
    spec = folder / f"{name}.yaml"
    print(f"next: pytest --aina {spec}     (on a CPU the kernel runs in Triton's interpreter)")
    return 0
