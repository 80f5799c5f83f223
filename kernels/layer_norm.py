"""LayerNorm over the last dim: y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias.

``var`` is the biased variance (divided by N), as in ``torch.nn.functional.layer_norm``.
Everything is computed in float32 and rounded once to x's dtype at the store.

The variance is never computed as E[x^2] - E[x]^2: when |mean| >> std (an activation with
a large offset) that difference cancels catastrophically in float32.

Two kernels, chosen by the launcher:

* ``_layer_norm_fused_kernel``: the row fits one block; the mean, then the centred sum of
  squares, both from registers (an exact two-pass algorithm with a single read).
* ``_layer_norm_looped_kernel``: wider rows are streamed. Pass 1 runs Welford's update per
  lane (each lane sees one element per block) and merges the lanes at the end with Chan
  et al.'s pairwise formula; pass 2 re-reads x and writes y. 2 reads + 1 write, where a
  textbook two-pass-over-memory variance would need 3 reads.
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
def _layer_norm_fused_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    y_ptr,
    stride_outer,
    stride_inner,
    stride_col,
    stride_w,
    stride_b,
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
    x = tl.load(x_ptr + x_offs, mask=col_ok[None, :], other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols * stride_w, mask=col_ok, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols * stride_b, mask=col_ok, other=0.0).to(tl.float32)

    mean = tl.sum(x, axis=1) / N
    # padding lanes must not contribute (0 - mean)^2
    xc = tl.where(col_ok[None, :], x - mean[:, None], 0.0)
    rstd = tl.math.rsqrt(tl.sum(xc * xc, axis=1) / N + eps)
    y = xc * rstd[:, None] * w[None, :] + b[None, :]

    tl.store(
        y_ptr + rows[:, None] * N + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :]
    )


@triton.jit
def _layer_norm_looped_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    y_ptr,
    stride_outer,
    stride_inner,
    stride_col,
    stride_w,
    stride_b,
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

    # Pass 1: Welford per lane. In block k every lane that holds a real column has seen
    # exactly k + 1 elements (a lane valid in block k was valid in all earlier ones), so
    # the update's 1 / count is one scalar per block, not a division per element.
    mean_l = tl.zeros([ROWS_PER_PROGRAM, BLOCK_N], tl.float32)
    m2_l = tl.zeros([ROWS_PER_PROGRAM, BLOCK_N], tl.float32)
    for start in tl.range(0, N, BLOCK_N):
        cols = start + cols0
        ok = (cols < N)[None, :]
        x = tl.load(x_ptr + x_row + cols[None, :] * stride_col, mask=ok, other=0.0).to(tl.float32)
        inv_count = 1.0 / (start // BLOCK_N + 1)
        delta = x - mean_l
        mean_new = mean_l + delta * inv_count
        m2_l = tl.where(ok, m2_l + delta * (x - mean_new), m2_l)
        mean_l = tl.where(ok, mean_new, mean_l)

    # Merge the lanes (Chan et al.): lane j holds count_j = ceil((N - j) / BLOCK_N)
    # elements (0 for j >= N); M2 = sum M2_j + sum count_j * (mean_j - mean)^2.
    count = ((N - cols0 + BLOCK_N - 1) // BLOCK_N).to(tl.float32)[None, :]
    mean = tl.sum(count * mean_l, axis=1) / N
    dev = mean_l - mean[:, None]
    m2 = tl.sum(m2_l, axis=1) + tl.sum(count * dev * dev, axis=1)
    rstd = tl.math.rsqrt(m2 / N + eps)

    # Pass 2: normalise, scale and shift.
    for start in tl.range(0, N, BLOCK_N):
        cols = start + cols0
        col_ok = cols < N
        x = tl.load(x_ptr + x_row + cols[None, :] * stride_col, mask=col_ok[None, :], other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols * stride_w, mask=col_ok, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + cols * stride_b, mask=col_ok, other=0.0).to(tl.float32)
        y = (x - mean[:, None]) * rstd[:, None] * w[None, :] + b[None, :]
        tl.store(y_ptr + y_row + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


#: The meta-parameter search space; the launcher honours every combination.
TUNABLES = {
    "BLOCK_N": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536],
    "ROWS_PER_PROGRAM": [1, 2, 4, 8, 16],
    "num_warps": [1, 2, 4, 8, 16, 32],
    "num_stages": [1, 2, 3, 4],
}


def layer_norm_generic(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5, **config
) -> torch.Tensor:
    """LayerNorm over the last dim of ``x`` with the given meta-parameters.

    ``weight`` and ``bias`` have shape [N] (any float dtype, any stride). ``config`` takes
    any of ``TUNABLES`` (None or absent: the heuristic); ``BLOCK_N >= N`` runs the
    single-pass kernel, a smaller block the looped one. The result is a new contiguous
    tensor in x's dtype and shape.
    """
    rowwise.check_tensor("layer_norm", "x", x)
    rowwise.check_vector("layer_norm", "weight", weight, x.shape[-1], x.device)
    rowwise.check_vector("layer_norm", "bias", bias, x.shape[-1], x.device)
    rowwise.check_device("layer_norm", x, _layer_norm_fused_kernel)
    if not eps >= 0:
        raise ValueError(f"layer_norm: eps must be >= 0, got {eps!r}")
    if x.numel() == 0:
        rowwise.resolve_config("layer_norm", TUNABLES, config, {k: v[0] for k, v in TUNABLES.items()})
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    rows = rowwise.as_rows(x)
    cfg = rowwise.resolve_config("layer_norm", TUNABLES, config, _heuristic(rows, x))
    out = rowwise.output_buffer(x, rows)

    kernel = _layer_norm_fused_kernel if cfg["BLOCK_N"] >= rows.N else _layer_norm_looped_kernel
    grid = (triton.cdiv(rows.M, cfg["ROWS_PER_PROGRAM"]),)
    kernel[grid](
        rows.x,
        weight,
        bias,
        out,
        rows.stride_outer,
        rows.stride_inner,
        rows.stride_col,
        weight.stride(0),
        bias.stride(0),
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


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last dim (the public entry point: the variant that
    ``kernels/variants/layer_norm.yaml`` chooses for the call; ``layer_norm_generic`` by default)."""
    return _dispatch(x, weight, bias, eps)


def layer_norm_config(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> dict:
    """The meta-parameters ``layer_norm_generic`` chooses for these arguments when given none
    (the heuristic): where a meta-parameter search starts."""
    return _heuristic(rowwise.as_rows(x), x)


def _heuristic(rows: rowwise.Rows, x: torch.Tensor) -> dict:
    return rowwise.default_config(rows, x.element_size())


def layer_norm_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """torch's layer_norm computed in float32, returned in x's dtype."""
    n = x.shape[-1]
    return torch.nn.functional.layer_norm(x.float(), (n,), weight.float(), bias.float(), eps).to(x.dtype)


def layer_norm_dims(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> dict:
    """The spec's named dims for a call: M rows (all leading dims) of N columns."""
    return {"M": math.prod(x.shape[:-1]), "N": x.shape[-1]}


# The public entry point's dispatch (pytest_aina/runtime/dispatch/routing.py): cached per dims, dtype and device.
_dispatch = dispatcher("layer_norm", layer_norm_dims, layer_norm_generic, dims_from_first=True)
