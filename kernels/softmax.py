"""Softmax over the last dim: y = exp(x - max(x)) / sum(exp(x - max(x))).

Subtracting the row max keeps every exponent <= 0, so exp never overflows whatever the
input's scale; the sum is accumulated in float32 and the result rounded once to x's dtype.

Two kernels, chosen by the launcher:

* ``_softmax_fused_kernel``: the row fits one block (``N <= BLOCK_N``), so it is read once,
  kept in registers, and written once: 1 read + 1 write per element.
* ``_softmax_looped_kernel``: wider rows (up to 131072 columns, which would spill from
  registers) are streamed in blocks. Pass 1 keeps an *online* max and sum (Milakov &
  Gimelshein, 2018): when the running max grows from m to m', the sum so far is rescaled by
  exp(m - m'). Pass 2 re-reads the row and writes the result: 2 reads + 1 write.

Both process ``ROWS_PER_PROGRAM`` rows per program as one 2-D tile, so short rows still
give each program a useful amount of work.
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
def _softmax_fused_kernel(
    x_ptr,
    y_ptr,
    stride_outer,
    stride_inner,
    stride_col,
    M,
    N,
    inner,
    BLOCK_N: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * ROWS_PER_PROGRAM + tl.arange(0, ROWS_PER_PROGRAM).to(tl.int64)
    row_ok = rows < M
    # The last program may run past M: it recomputes row M-1 instead of masking every load,
    # and only its store is masked.
    rows = tl.minimum(rows, M - 1)
    cols = tl.arange(0, BLOCK_N).to(tl.int64)
    col_ok = cols < N

    x_offs = row_offsets(rows, inner, stride_outer, stride_inner)[:, None] + cols[None, :] * stride_col
    # -inf in the padding lanes: they never win the max and exp(-inf) = 0 adds nothing.
    x = tl.load(x_ptr + x_offs, mask=col_ok[None, :], other=-float("inf")).to(tl.float32)

    row_max = tl.max(x, axis=1)
    e = tl.exp(x - row_max[:, None])
    # one division per row, then a multiply per element
    inv_sum = 1.0 / tl.sum(e, axis=1)
    y = e * inv_sum[:, None]

    y_offs = rows[:, None] * N + cols[None, :]
    tl.store(y_ptr + y_offs, y.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def _softmax_looped_kernel(
    x_ptr,
    y_ptr,
    stride_outer,
    stride_inner,
    stride_col,
    M,
    N,
    inner,
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

    # Pass 1: running max m and running sum d of exp(x - m), per row. d grows to ~N while
    # each block adds ~BLOCK_N, so with small blocks a plain running sum loses ~1 ulp of d
    # per block (3e-5 relative at N=70001, BLOCK_N=16); Kahan's compensation c keeps it
    # exact to ~1 ulp overall for a few scalar operations per row per block.
    m = tl.full([ROWS_PER_PROGRAM], -float("inf"), tl.float32)
    d = tl.zeros([ROWS_PER_PROGRAM], tl.float32)
    c = tl.zeros([ROWS_PER_PROGRAM], tl.float32)
    for start in tl.range(0, N, BLOCK_N):
        cols = start + cols0
        col_ok = cols < N
        x = tl.load(x_ptr + x_row + cols[None, :] * stride_col, mask=col_ok[None, :], other=-float("inf")).to(
            tl.float32
        )
        # every block holds at least one real column, so m_new is finite for finite input
        # and exp(m - m_new) is exp(-inf) = 0 on the first block, never -inf - -inf.
        m_new = tl.maximum(m, tl.max(x, axis=1))
        rescale = tl.exp(m - m_new)
        d = d * rescale
        c = c * rescale
        term = tl.sum(tl.exp(x - m_new[:, None]), axis=1) - c
        total = d + term
        c = (total - d) - term
        d = total
        m = m_new

    # Pass 2: normalise with the final max and sum.
    inv_sum = 1.0 / d
    for start in tl.range(0, N, BLOCK_N):
        cols = start + cols0
        col_ok = cols < N
        x = tl.load(x_ptr + x_row + cols[None, :] * stride_col, mask=col_ok[None, :], other=-float("inf")).to(
            tl.float32
        )
        y = tl.exp(x - m[:, None]) * inv_sum[:, None]
        tl.store(y_ptr + y_row + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


#: The meta-parameter search space; the launcher honours every combination.
TUNABLES = {
    "BLOCK_N": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536],
    "ROWS_PER_PROGRAM": [1, 2, 4, 8, 16],
    "num_warps": [1, 2, 4, 8, 16, 32],
    "num_stages": [1, 2, 3, 4],
}


def softmax_generic(x: torch.Tensor, **config) -> torch.Tensor:
    """Softmax over the last dim of ``x`` with the given meta-parameters.

    ``config`` takes any of ``TUNABLES`` (None or absent: the heuristic). ``BLOCK_N >= N``
    runs the single-pass kernel, a smaller block the looped one. Any leading dims, any
    strides; the result is a new contiguous tensor in x's dtype and shape.
    """
    rowwise.check_tensor("softmax", "x", x)
    rowwise.check_device("softmax", x, _softmax_fused_kernel)
    if x.numel() == 0:
        rowwise.resolve_config("softmax", TUNABLES, config, {k: v[0] for k, v in TUNABLES.items()})
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    rows = rowwise.as_rows(x)
    cfg = rowwise.resolve_config("softmax", TUNABLES, config, _heuristic(rows, x))
    out = rowwise.output_buffer(x, rows)

    kernel = _softmax_fused_kernel if cfg["BLOCK_N"] >= rows.N else _softmax_looped_kernel
    grid = (triton.cdiv(rows.M, cfg["ROWS_PER_PROGRAM"]),)
    kernel[grid](
        rows.x,
        out,
        rows.stride_outer,
        rows.stride_inner,
        rows.stride_col,
        rows.M,
        rows.N,
        rows.inner,
        BLOCK_N=cfg["BLOCK_N"],
        ROWS_PER_PROGRAM=cfg["ROWS_PER_PROGRAM"],
        num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
        # No FMA contraction: fusing d * rescale into d + term would make the looped
        # kernel's Kahan compensation subtract a rounding the sum never made. Nothing on
        # the per-element path has a multiply-add to lose. Stated explicitly, too, because
        # triton 3.9 warns (an error under our pytest config) when it is left to the default.
        enable_fp_fusion=False,
    )
    return rowwise.finish(out, x)


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim (the public entry point: the variant that
    ``kernels/variants/softmax.yaml`` chooses for the call; ``softmax_generic`` by default)."""
    return _dispatch(x)


def softmax_config(x: torch.Tensor) -> dict:
    """The meta-parameters ``softmax_generic`` chooses for these arguments when given none
    (the heuristic): where a meta-parameter search starts."""
    return _heuristic(rowwise.as_rows(x), x)


def _heuristic(rows: rowwise.Rows, x: torch.Tensor) -> dict:
    return rowwise.default_config(rows, x.element_size())


def softmax_reference(x: torch.Tensor) -> torch.Tensor:
    """Softmax in float32, returned in x's dtype.

    On a GPU this is ``torch.softmax`` (tree reductions, and the fast baseline benchmarks
    compare against). torch's CPU softmax sums each row sequentially: 7.5e-6 relative error
    at N=70001 (measured against float64), most of the float32 tolerance and ~100x the
    kernel's own error; on the CPU the same maths with ``torch.sum``'s cascade summation
    stays within ~1e-7.
    """
    xf = x.float()
    if xf.device.type == "cpu":
        e = torch.exp(xf - xf.amax(dim=-1, keepdim=True))
        return (e / e.sum(dim=-1, keepdim=True)).to(x.dtype)
    return torch.softmax(xf, dim=-1).to(x.dtype)


def softmax_dims(x: torch.Tensor) -> dict:
    """The spec's named dims for a call: M rows (all leading dims) of N columns."""
    return {"M": math.prod(x.shape[:-1]), "N": x.shape[-1]}


# The public entry point's dispatch (pytest_aina/runtime/dispatch/routing.py): cached per dims, dtype and device.
_dispatch = dispatcher("softmax", softmax_dims, softmax_generic, dims_from_first=True)
