import os
import shutil
from pathlib import Path

import pytest

# Import torch and triton once, here: pytester's in-process runs restore sys.modules
# afterwards, and a C extension such as triton's cannot be imported a second time.
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"
import torch  # noqa: E402,F401
import triton  # noqa: E402,F401

HERE = Path(__file__).parent

SOFTMAX_SPEC = """\
aina: 1
name: softmax
implementation: bugs:good
reference: bugs:reference
inputs:
  x: {shape: [M, N], batch_dims: true, layouts: [contiguous, sliced, transposed]}
dims:
  M: {min: 1, max: 65536}
  N: {min: 1, max: 131072}
dtypes: [float32, float16, bfloat16]
tolerance:
  float32: {atol: 1.0e-6, rtol: 1.0e-5}
  float16: {atol: 1.0e-3, rtol: 1.0e-2}
  bfloat16: {atol: 4.0e-3, rtol: 2.0e-2}
invariants:
  - sums_to: {value: 1, dim: -1, atol: 1.0e-2}
  - non_negative
  - finite
  - shape_preserved
  - dtype_preserved
  - no_input_mutation
  - no_output_aliasing
  - deterministic
examples:
  - {dims: {M: 4, N: 1000}}
  - {dims: {M: 6, N: 33}, batch: [2, 3], layout: sliced, dtype: float16}
benchmarks:
  - {dims: {M: 4096, N: 50304}, dtype: float16}
  - {dims: {M: 8, N: 300}, dtype: float32, devices: [cpu, cuda]}
objectives:
  latency: {direction: minimize}
  bytes: "2 * x.numel() * x.element_size()"
"""


@pytest.fixture
def spec_dir(pytester):
    """A project with the softmax spec and the kernels of bugs.py."""
    shutil.copy(HERE / "bugs.py", pytester.path / "bugs.py")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "softmax.yaml").write_text(SOFTMAX_SPEC)
    pytester.syspathinsert()
    return pytester


LAYER_NORM_SPEC = """\
aina: 1
name: layer_norm
implementation: bugs:ln_good
reference: bugs:ln_reference
inputs:
  x: {shape: [M, N], batch_dims: true, layouts: [contiguous, sliced]}
  weight: {shape: [N], values: [normal]}
  bias: {shape: [N], values: [normal]}
args: {eps: 1.0e-5}
dims:
  M: {min: 1, max: 65536}
  N: {min: 1, max: 65536}
dtypes: [float32]
tolerance:
  float32: {atol: 1.0e-4, rtol: 1.0e-4}
invariants: [finite, no_input_mutation]
"""


@pytest.fixture
def norm_dir(spec_dir):
    (spec_dir.path / "specs" / "softmax.yaml").unlink()
    (spec_dir.path / "specs" / "layer_norm.yaml").write_text(LAYER_NORM_SPEC)
    return spec_dir
