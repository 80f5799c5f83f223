"""Specs in the widened format, for the kernels of format_kernels.py."""

CROSS_ENTROPY = """\
aina: 1
name: cross_entropy
implementation: format_kernels:ce_good
reference: format_kernels:ce_reference
inputs:
  logits: {shape: [M, V], layouts: [contiguous, sliced]}
  target:
    shape: [M]
    dtypes: [int64, int32]
    range: [0, V]
    sentinel: {value: -100, frequency: 0.25}
args:
  reduction: [mean, sum, none]
  ignore_index: -100
dims:
  M: {min: 1, max: 4096}
  V: {min: 1, max: 32768}
dtypes: [float32, bfloat16]
tolerance:
  float32: {atol: 1.0e-5, rtol: 1.0e-5}
  bfloat16: {atol: 1.0e-3, rtol: 1.6e-2}
outputs:
  loss:
    tolerance:
      float32: {atol: 1.0e-5, rtol: 1.0e-5}
      bfloat16: {atol: 1.0e-3, rtol: 1.6e-2}
    invariants: [no_output_aliasing]
invariants: [no_input_mutation, deterministic]
examples:
  - {dims: {M: 6, V: 100}, sentinels: all, note: "every target ignored: the mean is 0/0"}
  - {dims: {M: 6, V: 100}, args: {reduction: none}, input_dtypes: {target: int32}}
"""

CE_GRAD = """\
aina: 1
name: cross_entropy_grad
implementation: format_kernels:ce_grad_good
reference: format_kernels:ce_grad_reference
inputs:
  logits: {shape: [M, V], values: [normal]}
  target:
    shape: [M]
    dtype: int64
    range: [0, V]
    RELATIONS
dims:
  M: {min: 1, max: 1024}
  V: {min: 16, max: 4096}
dtypes: [bfloat16]
tolerance:
  bfloat16: {atol: 1.0e-6, rtol: 1.6e-2}
outputs:
  loss: {shape: [M], invariants: [finite]}
gradients:
  logits: {tolerance: {bfloat16: {atol: 1.0e-6, rtol: 1.6e-2}}}
"""

LAYER_NORM = """\
aina: 1
name: layer_norm
implementation: format_kernels:LayerNorm
reference: format_kernels:ln_reference
inputs:
  x: {shape: [M, N], batch_dims: true, layouts: [contiguous, transposed], values: [normal, mixed]}
  weight: {shape: [N], values: [normal], dtypes: [case, float32]}
  bias: {shape: [N], values: [normal], dtypes: [case, float32]}
args: {eps: 1.0e-5}
dims:
  M: {min: 1, max: 4096}
  N: {min: 1, max: 8192}
dtypes: [float32, bfloat16]
tolerance:
  float32: {atol: 1.0e-4, rtol: 1.0e-4}
  bfloat16: {atol: 1.0e-2, rtol: 1.6e-2}
outputs:
  y: {invariants: [finite]}
gradients:
  x:
    tolerance:
      float32: {atol: 1.0e-4, rtol: 1.0e-4}
      bfloat16: {atol: 2.0e-2, rtol: 1.6e-2}
  weight:
    magnitude: abs_inputs
    tolerance:
      float32: {atol: 1.0e-4, rtol: 1.0e-4, ctol: 1.0e-5}
      bfloat16: {atol: 1.0e-2, rtol: 1.6e-2, ctol: 8.0e-3}
  bias:
    magnitude: abs_inputs
    tolerance:
      float32: {atol: 1.0e-4, rtol: 1.0e-4, ctol: 1.0e-5}
      bfloat16: {atol: 1.0e-2, rtol: 1.6e-2, ctol: 8.0e-3}
upstream: {values: [normal, mixed], layouts: [contiguous, transposed]}
"""

SOFTMAX_BWD_INPLACE = """\
aina: 1
name: softmax_backward
implementation: format_kernels:softmax_bwd_inplace
reference: format_kernels:softmax_bwd_reference
inputs:
  y: {shape: [M, N], values: [normal]}
  dy: {shape: [M, N], layouts: [contiguous, sliced, transposed], values: [normal]}
dims:
  M: {min: 1, max: 4096}
  N: {min: 1, max: 8192}
dtypes: [float32]
tolerance:
  float32: {atol: 1.0e-5, rtol: 1.0e-5}
outputs:
  dx: {in_place: dy, shape: [M, N]}
invariants: [no_input_mutation, no_output_aliasing, finite]
"""

SOFTMAX = """\
aina: 1
name: softmax
implementation: format_kernels:softmax_good
reference: format_kernels:softmax_reference
inputs:
  x: {shape: [M, N], values: [normal]}
dims:
  M: {min: 1, max: 65536}
  N: {min: 1, max: 131072}
dtypes: [float32, bfloat16]
tolerance:
  float32: {atol: 1.0e-6, rtol: 1.0e-5}
  bfloat16: {atol: 1.0e-3, rtol: 1.6e-2}
"""

CE_IGNORE_ARG = """\
aina: 1
name: ce_ignore
implementation: format_kernels:ce_ignore_good
reference: format_kernels:ce_ignore_reference
inputs:
  logits: {shape: [M, V], values: [normal]}
  target:
    shape: [M]
    dtype: int64
    range: [0, V]
    sentinel: {value: {arg: ignore_index}, frequency: 0.25}
args:
  ignore_index: [-100, 3]
dims:
  M: {min: 1, max: 1024}
  V: {min: 1, max: 4096}
dtypes: [float32]
tolerance:
  float32: {atol: 1.0e-5, rtol: 1.0e-5}
"""

CE_INPLACE_GRAD = """\
aina: 1
name: ce_inplace
implementation: format_kernels:ce_inplace_good
reference: format_kernels:ce_inplace_reference
inputs:
  logits: {shape: [M, V], layouts: [contiguous, sliced, transposed], values: [normal]}
  target: {shape: [M], dtype: int64, range: [0, V]}
args:
  inplace_grad: [false, true]
dims:
  M: {min: 1, max: 1024}
  V: {min: 1, max: 4096}
dtypes: [float32]
tolerance:
  float32: {atol: 1.0e-5, rtol: 1.0e-5}
gradients:
  logits: {in_place: {when: {inplace_grad: true}}}
invariants: [no_input_mutation]
"""

MATMUL = """\
aina: 1
name: matmul
implementation: format_kernels:mm_good
reference: format_kernels:mm_reference
inputs:
  a: {shape: [M, K], values: [normal]}
  b: {shape: [K, N], values: [normal]}
dims:
  M: {min: 1, max: 64}
  N: {min: 1, max: 64}
  K: {min: 1, max: 4096}
dtypes: [bfloat16]
tolerance:
  bfloat16: {atol: 0.0, rtol: 7.8e-3}
outputs:
  c:
    magnitude: abs_inputs
    tolerance:
      bfloat16: {atol: 0.0, rtol: 7.8e-3, ctol: "3 * (K + 1) * 2**-24"}
invariants: [close_to_reference]
"""
