"""A textbook Triton softmax (the Triton tutorial's fused softmax: one program per row,
float32 inside, ``.to(output_ptr.dtype.element_ty)`` at the store) gives GPU-faithful
results in every float dtype with the package installed, sanitizer on."""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl
from interp_helpers import bf16_bits, jit, needs_tested_triton, raw_interpreter

from pytest_aina import interpreter

pytestmark = needs_tested_triton


@jit
def softmax_kernel(
    output_ptr, input_ptr, input_row_stride, output_row_stride, n_rows, n_cols, BLOCK_SIZE: tl.constexpr
):
    row_idx = tl.program_id(0)
    row_start_ptr = input_ptr + row_idx * input_row_stride
    col_offsets = tl.arange(0, BLOCK_SIZE)
    mask = col_offsets < n_cols
    row = tl.load(row_start_ptr + col_offsets, mask=mask, other=-float("inf")).to(tl.float32)
    row_minus_max = row - tl.max(row, axis=0)
    numerator = tl.exp(row_minus_max)
    denominator = tl.sum(numerator, axis=0)
    softmax_output = numerator / denominator
    output_row_start_ptr = output_ptr + row_idx * output_row_stride
    tl.store(output_row_start_ptr + col_offsets, softmax_output.to(output_ptr.dtype.element_ty), mask=mask)


def softmax(x: torch.Tensor) -> torch.Tensor:
    n_rows, n_cols = x.shape
    y = torch.empty_like(x)
    softmax_kernel[(n_rows,)](y, x, x.stride(0), y.stride(0), n_rows, n_cols, BLOCK_SIZE=triton.next_power_of_2(n_cols))
    return y


#: specs/softmax.yaml's tolerances: |out - ref| <= atol + rtol * |ref|
TOLERANCE = {torch.float32: (1.0e-10, 1.0e-5), torch.float16: (1.2e-7, 2.0e-3), torch.bfloat16: (1.0e-9, 1.6e-2)}


def _inputs(m: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(m * 1000 + n)
    return (3 * torch.randn(m, n, generator=g)).to(dtype)


def _reference(x: torch.Tensor) -> torch.Tensor:
    # float64, rounded once to x's dtype (round to nearest even, as the GPU's store does)
    return torch.softmax(x.double(), dim=-1).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("m, n", [(1, 1), (5, 70), (3, 1000)])
def test_textbook_softmax_matches_torch(dtype, m, n):
    x = _inputs(m, n, dtype)
    with interpreter.faithful():
        y = softmax(x)
    atol, rtol = TOLERANCE[dtype]
    torch.testing.assert_close(y, _reference(x), atol=atol, rtol=rtol)
    torch.testing.assert_close(y.double().sum(-1), torch.ones(m, dtype=torch.float64), atol=5e-3, rtol=0)


def test_textbook_softmax_in_bfloat16_rounds_like_the_gpu():
    # the raw interpreter truncates at the store: about half the outputs are one bfloat16
    # below the correctly rounded value, and every row sum is biased low
    x = _inputs(3, 1000, torch.bfloat16)
    reference = bf16_bits(_reference(x))
    with raw_interpreter():
        raw = softmax(x)
    with interpreter.faithful():
        faithful = softmax(x)
    raw_mismatch = (bf16_bits(raw) != reference).float().mean().item()
    faithful_mismatch = (bf16_bits(faithful) != reference).float().mean().item()
    assert raw_mismatch > 0.3
    assert (raw.double().sum(-1) < faithful.double().sum(-1)).all()
    # float32 exp and sum differ from float64 in the last bits, which can move a value
    # across a bfloat16 rounding boundary: rarely
    assert faithful_mismatch < 0.01
