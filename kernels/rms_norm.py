"""RMSNorm over the last dim: y = x / sqrt(mean(x^2) + eps) * weight.

Everything is computed in float32 (x, x^2, the mean, the weight product) and rounded once
to x's dtype at the store; torch's Llama-style modules round x * rstd to the input dtype
before the weight product, which is one more rounding than the maths needs. x^2 in
float32 cannot overflow for float16 inputs and only overflows for |x| > ~1.8e19 otherwise.

Two kernels, chosen by the launcher:

* ``_rms_norm_fused_kernel``: the row fits one block; read once, kept in registers,
  written once (1 read + 1 write per element, plus the weight, which stays in L2).
* ``_rms_norm_looped_kernel``: wider rows are streamed: pass 1 sums x^2 per lane (one
  cross-lane reduction at the end, not one per block), pass 2 re-reads x and writes y.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels import rowwise
from kernels.rowwise import row_offsets
from pytest_aina.runtime import dispatcher


@triton.jit
def _rms_norm_fused_kernel(
    x_ptr,
    w_ptr,
    y_ptr,
    stride_outer,
    stride_inner,
    stride_col,
    stride_w,
    M,
    N,
    inner,
    eps,
    BLOCK_N: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * ROWS_PER_PROGRAM + tl.arange(0, ROWS_PER_PROGRAM).to(tl.int64)
    row_ok = rows < M
    # The last program may run past M: it recomputes row M-1 and masks only its store.
    rows = tl.minimum(rows, M - 1)
    cols = tl.arange(0, BLOCK_N).to(tl.int64)
    col_ok = cols < N

    x_offs = row_offsets(rows, inner, stride_outer, stride_inner)[:, None] + cols[None, :] * stride_col
    # 0 in the padding lanes adds nothing to the sum of squares
    x = tl.load(x_ptr + x_offs, mask=col_ok[None, :], other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols * stride_w, mask=col_ok, other=0.0).to(tl.float32)

    # divide by the true N, not BLOCK_N
    rstd = tl.math.rsqrt(tl.sum(x * x, axis=1) / N + eps)
    y = x * rstd[:, None] * w[None, :]

    tl.store(
        y_ptr + rows[:, None] * N + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :]
    )


@triton.jit
def _rms_norm_looped_kernel(
    x_ptr,
    w_ptr,
    y_ptr,
    stride_outer,
    stride_inner,
    stride_col,
    stride_w,
    M,
    N,
    inner,
    eps,
    BLOCK_N: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * ROWS_PER_PROGRAM + tl.arange(0, ROWS_PER_PROGRAM).to(tl.int64)
    row_ok = rows < M
    rows = tl.minimum(rows, M - 1)
    x_row = row_offsets(rows, inner, stride_outer, stride_inner)[:, None]
    y_row = rows[:, None] * N
    cols0 = tl.arange(0, BLOCK_N).to(tl.int64)

    # Pass 1: per-lane partial sums of x^2; each lane adds N / BLOCK_N terms, which also
    # keeps the rounding error lower than one long running sum.
    acc = tl.zeros([ROWS_PER_PROGRAM, BLOCK_N], tl.float32)
    for start in tl.range(0, N, BLOCK_N):
        cols = start + cols0
        x = tl.load(x_ptr + x_row + cols[None, :] * stride_col, mask=(cols < N)[None, :], other=0.0).to(tl.float32)
        acc += x * x
    rstd = tl.math.rsqrt(tl.sum(acc, axis=1) / N + eps)

    # Pass 2: normalise and scale.
    for start in tl.range(0, N, BLOCK_N):
        cols = start + cols0
        col_ok = cols < N
        x = tl.load(x_ptr + x_row + cols[None, :] * stride_col, mask=col_ok[None, :], other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols * stride_w, mask=col_ok, other=0.0).to(tl.float32)
        y = x * rstd[:, None] * w[None, :]
        tl.store(y_ptr + y_row + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


#: The meta-parameter search space; the launcher honours every combination.
TUNABLES = {
    "BLOCK_N": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536],
    "ROWS_PER_PROGRAM": [1, 2, 4, 8, 16],
    "num_warps": [1, 2, 4, 8, 16, 32],
    "num_stages": [1, 2, 3, 4],
}


def rms_norm_generic(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, **config) -> torch.Tensor:
    """RMSNorm over the last dim of ``x`` with the given meta-parameters.

    ``weight`` has shape [N] (any float dtype, any stride). ``config`` takes any of
    ``TUNABLES`` (None or absent: the heuristic); ``BLOCK_N >= N`` runs the single-pass
    kernel, a smaller block the looped one. The result is a new contiguous tensor in x's
    dtype and shape.
    """
    rowwise.check_tensor("rms_norm", "x", x)
    rowwise.check_vector("rms_norm", "weight", weight, x.shape[-1], x.device)
    rowwise.check_device("rms_norm", x, _rms_norm_fused_kernel)
    if not eps >= 0:
        raise ValueError(f"rms_norm: eps must be >= 0, got {eps!r}")
    if x.numel() == 0:
        rowwise.resolve_config("rms_norm", TUNABLES, config, {k: v[0] for k, v in TUNABLES.items()})
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    rows = rowwise.as_rows(x)
    cfg = rowwise.resolve_config("rms_norm", TUNABLES, config, _heuristic(rows, x))
    out = rowwise.output_buffer(x, rows)

    kernel = _rms_norm_fused_kernel if cfg["BLOCK_N"] >= rows.N else _rms_norm_looped_kernel
    grid = (triton.cdiv(rows.M, cfg["ROWS_PER_PROGRAM"]),)
    kernel[grid](
        rows.x,
        weight,
        out,
        rows.stride_outer,
        rows.stride_inner,
        rows.stride_col,
        weight.stride(0),
        rows.M,
        rows.N,
        rows.inner,
        float(eps),
        BLOCK_N=cfg["BLOCK_N"],
        ROWS_PER_PROGRAM=cfg["ROWS_PER_PROGRAM"],
        num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
        # FMA contraction on, as Triton's default has been (the normalisation is a chain of
        # multiply-adds); stated because triton 3.9 warns when it is left to the default.
        enable_fp_fusion=True,
    )
    return rowwise.finish(out, x)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last dim (the public entry point: the variant that
    ``kernels/variants/rms_norm.yaml`` chooses for the call; ``rms_norm_generic`` by default)."""
    return _dispatch(x, weight, eps)


def rms_norm_config(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> dict:
    """The meta-parameters ``rms_norm_generic`` chooses for these arguments when given none
    (the heuristic): where a meta-parameter search starts."""
    return _heuristic(rowwise.as_rows(x), x)


def _heuristic(rows: rowwise.Rows, x: torch.Tensor) -> dict:
    return rowwise.default_config(rows, x.element_size())


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The same maths in torch, in float32, returned in x's dtype."""
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (xf * rstd * weight.float()).to(x.dtype)


def rms_norm_dims(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> dict:
    """The spec's named dims for a call: M rows (all leading dims) of N columns."""
    return {"M": math.prod(x.shape[:-1]), "N": x.shape[-1]}


# The public entry point's dispatch (pytest_aina/runtime/dispatch/routing.py): cached per dims, dtype and device.
_dispatch = dispatcher("rms_norm", rms_norm_dims, rms_norm_generic, dims_from_first=True)
