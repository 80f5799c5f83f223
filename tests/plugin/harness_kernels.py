"""Softmax kernels written as their authors write them, for the harness tests: the Triton
tutorial's (one program per row, float32 inside, the store rounds to the output's dtype),
the same with the load mask forgotten, and one that takes the process down."""

import os
import signal

import torch
import triton
import triton.language as tl


@triton.jit
def _softmax_kernel(
    output_ptr, input_ptr, input_row_stride, input_col_stride, output_row_stride, n_cols, BLOCK_SIZE: tl.constexpr
):
    row_idx = tl.program_id(0)
    col_offsets = tl.arange(0, BLOCK_SIZE)
    mask = col_offsets < n_cols
    row = tl.load(
        input_ptr + row_idx * input_row_stride + col_offsets * input_col_stride, mask=mask, other=-float("inf")
    ).to(tl.float32)
    row_minus_max = row - tl.max(row, axis=0)
    numerator = tl.exp(row_minus_max)
    denominator = tl.sum(numerator, axis=0)
    softmax_output = numerator / denominator
    tl.store(
        output_ptr + row_idx * output_row_stride + col_offsets,
        softmax_output.to(output_ptr.dtype.element_ty),
        mask=mask,
    )


@triton.jit
def _softmax_no_load_mask(
    output_ptr, input_ptr, input_row_stride, input_col_stride, output_row_stride, n_cols, BLOCK_SIZE: tl.constexpr
):
    row_idx = tl.program_id(0)
    col_offsets = tl.arange(0, BLOCK_SIZE)
    mask = col_offsets < n_cols
    row = tl.load(input_ptr + row_idx * input_row_stride + col_offsets * input_col_stride).to(tl.float32)
    row = tl.where(mask, row, -float("inf"))
    numerator = tl.exp(row - tl.max(row, axis=0))
    tl.store(
        output_ptr + row_idx * output_row_stride + col_offsets,
        (numerator / tl.sum(numerator, axis=0)).to(output_ptr.dtype.element_ty),
        mask=mask,
    )


def _launch(kernel, x):
    n = x.shape[-1]
    x2 = x.reshape(-1, n)
    y = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    kernel[(x2.shape[0],)](y, x2, x2.stride(0), x2.stride(1), y.stride(0), n, BLOCK_SIZE=triton.next_power_of_2(n))
    return y.view(x.shape)


def softmax(x):
    return _launch(_softmax_kernel, x)


def softmax_no_load_mask(x):
    return _launch(_softmax_no_load_mask, x)


def softmax_crashes_in_float16(x):
    """What a heap corrupted by a stray store does, made deterministic."""
    if x.dtype == torch.float16:
        os.kill(os.getpid(), signal.SIGSEGV)
    return softmax(x)


def reference(x):
    return torch.softmax(x.float(), dim=-1).to(x.dtype)
