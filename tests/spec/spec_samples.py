"""A valid spec and a way to vary it: shared by the spec tests (a module of its own, not
conftest, so that no other folder's conftest can shadow it)."""

VALID = """\
aina: 1
name: softmax
description: Row-wise softmax over the last dim.
implementation: kernels.softmax:softmax
reference: kernels.softmax:softmax_reference
inputs:
  x: {shape: [M, N], batch_dims: true, layouts: [contiguous, sliced, transposed]}
dims:
  M: {min: 1, max: 65536}
  N: {min: 1, max: 131072}
dtypes: [float32, float16, bfloat16]
tolerance:
  float32: {atol: 1e-6, rtol: 1e-5}
  float16: {atol: 1e-3, rtol: 1e-3}
  bfloat16: {atol: 1e-2, rtol: 1e-2}
invariants:
  - close_to_reference
  - sums_to: {value: 1, dim: -1, atol: 1e-3}
  - bounded: {min: 0, max: 1}
  - non_negative
  - no_input_mutation
examples:
  - {dims: {M: 4096, N: 50304}, dtype: float16}
  - {dims: {M: 3, N: 1000}}
benchmarks:
  - {dims: {M: 4096, N: 50304}, dtype: float16}
objectives:
  latency: {direction: minimize, weight: 1.0}
  bytes: "2 * x.numel() * x.element_size()"
"""


def variant(old: str, new: str, text: str = VALID) -> str:
    """VALID with one exact substring replaced; fails loudly if the substring is absent,
    so a test cannot silently check the unchanged spec."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)
