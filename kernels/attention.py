"""Attention forward, FlashAttention-style: O = softmax(Q K^T * scale [+ causal mask]) V.

Q, K, V and O are [B, H, S, D] (batch, heads, sequence, head dim); scale defaults to
1 / sqrt(D). Each program owns BLOCK_M query rows of one (batch, head) and streams K and V
in BLOCK_N-row blocks, never materialising the S x S scores (Dao et al., 2022; the
two-level loop of FlashAttention-2, Dao, 2023):

* S = Q K^T (``tl.dot``, float32 accumulation) is scaled by scale * log2(e) so the
  softmax runs on ``exp2`` (one MUFU.EX2 per score on a GPU, where ``exp`` needs a multiply
  more);
* the online softmax keeps per row a running max m and sum l, and rescales the float32
  output accumulator by exp2(m_old - m_new) whenever the max grows;
* P is cast to V's dtype for the second ``tl.dot`` (P V on tensor cores, as FlashAttention
  does): P in [0, 1] is rounded to float16/bfloat16 (relative 2^-11 / 2^-8 per entry),
  while l sums the unrounded P; O = acc / l is rounded once at the store.

Traffic: Q is read once and O written once; K and V are read once per query block
(S / BLOCK_M times per head), from L2 when the query blocks of a head run together (the
grid's first axis is the query block, so they do). ``causal`` stops each program's loop at
its last key block that has an unmasked entry (half the work), and only blocks that cross
the diagonal (and the last block, when S is not a multiple of BLOCK_N) evaluate a mask:
the loop over fully visible blocks is mask-free.

Head dims: any D from 1 to 128; D is padded to a power of two >= 16 (``tl.dot``'s
minimum) with masked loads, which are dropped when D is one already (64 and 128, the
common ones). float32 inputs use ``input_precision="ieee"`` (torch's default is not TF32).
Not here: the backward pass (it would need the per-row log-sum-exp, which this forward
could store for the price of a float32 per row), dropout, attention bias, different
query and key lengths.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels import meta, rowwise, tiled
from pytest_aina.runtime import dispatcher

MAX_HEAD_DIM = 128


@triton.jit
def _attend_block(
    acc,
    l_i,
    m_i,
    q,
    k_ptrs,
    v_ptrs,
    start_n,
    rows,
    cols0,
    d_ok,
    S,
    qk_scale,
    MASK: tl.constexpr,
    CAUSAL: tl.constexpr,
    EVEN_D: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    """One K/V block of the online softmax. ``k_ptrs`` points at the block's K^T [D, BLOCK_N],
    ``v_ptrs`` at its V [BLOCK_N, D]. ``MASK``: the block crosses the diagonal or the end of
    the sequence, so keys past S (and, causal, past each row's own position) are masked."""
    cols = start_n + cols0
    if MASK:
        key_ok = cols < S
        k = tl.load(k_ptrs, mask=key_ok[None, :] & d_ok[:, None], other=0.0)
    elif EVEN_D:
        k = tl.load(k_ptrs)
    else:
        k = tl.load(k_ptrs, mask=d_ok[:, None], other=0.0)
    qk = tl.dot(q, k, input_precision=INPUT_PRECISION) * qk_scale
    if MASK:
        visible = key_ok[None, :]
        if CAUSAL:
            visible = visible & (rows[:, None] >= cols[None, :])
        qk = tl.where(visible, qk, -float("inf"))
    # Every row has seen key 0 (visible to all) by its first block, so m_new is finite and
    # exp2(-inf - m_new) is 0: a fully masked row inside a block adds nothing.
    m_new = tl.maximum(m_i, tl.max(qk, axis=1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(qk - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    if MASK:
        v = tl.load(v_ptrs, mask=key_ok[:, None] & d_ok[None, :], other=0.0)
    elif EVEN_D:
        v = tl.load(v_ptrs)
    else:
        v = tl.load(v_ptrs, mask=d_ok[None, :], other=0.0)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=INPUT_PRECISION)
    return acc, l_i, m_new


@triton.jit
def _attention_forward_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    o_ptr,
    stride_qb,
    stride_qh,
    stride_qs,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_ks,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vs,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_os,
    stride_od,
    H,
    S,
    D,
    qk_scale,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    EVEN_D: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    start_m = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    b = bh // H
    h = bh % H
    rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols0 = tl.arange(0, BLOCK_N)
    ds = tl.arange(0, BLOCK_D)
    row_ok = rows < S
    d_ok = ds < D

    # int64 for everything multiplied by a stride: B * H * S * D passes 2**31 on long sequences
    q_ptrs = q_ptr + b * stride_qb + h * stride_qh + rows.to(tl.int64)[:, None] * stride_qs + ds[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    k_ptrs = k_ptr + b * stride_kb + h * stride_kh + cols0.to(tl.int64)[None, :] * stride_ks + ds[:, None] * stride_kd
    v_ptrs = v_ptr + b * stride_vb + h * stride_vh + cols0.to(tl.int64)[:, None] * stride_vs + ds[None, :] * stride_vd

    m_i = tl.full([BLOCK_M], -float("inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)

    # Keys below `full` are visible to every row of this block and lie inside the sequence;
    # blocks from `full` up to `end` need a mask; causal rows see no key past `end`.
    if CAUSAL:
        full = (start_m * BLOCK_M) // BLOCK_N * BLOCK_N
        end = tl.minimum((start_m + 1) * BLOCK_M, S)
    else:
        full = S // BLOCK_N * BLOCK_N
        end = S
    # The K/V pointers advance by one block per step (64-bit pointer adds: no int32 offset
    # grows with the sequence); the second loop starts where the first stopped, at `full`.
    for start_n in tl.range(0, full, BLOCK_N):
        acc, l_i, m_i = _attend_block(
            acc,
            l_i,
            m_i,
            q,
            k_ptrs,
            v_ptrs,
            start_n,
            rows,
            cols0,
            d_ok,
            S,
            qk_scale,
            False,
            CAUSAL,
            EVEN_D,
            INPUT_PRECISION,
        )
        k_ptrs += BLOCK_N * stride_ks
        v_ptrs += BLOCK_N * stride_vs
    for start_n in tl.range(full, end, BLOCK_N):
        acc, l_i, m_i = _attend_block(
            acc,
            l_i,
            m_i,
            q,
            k_ptrs,
            v_ptrs,
            start_n,
            rows,
            cols0,
            d_ok,
            S,
            qk_scale,
            True,
            CAUSAL,
            EVEN_D,
            INPUT_PRECISION,
        )
        k_ptrs += BLOCK_N * stride_ks
        v_ptrs += BLOCK_N * stride_vs

    o = acc / l_i[:, None]
    o_ptrs = o_ptr + b * stride_ob + h * stride_oh + rows.to(tl.int64)[:, None] * stride_os + ds[None, :] * stride_od
    tl.store(o_ptrs, o.to(o_ptr.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])


#: The meta-parameter search space. Every combination runs, except those whose K/V tiles
#: exceed one program's shared memory or whose accumulators exceed its registers (the
#: launcher refuses them with a ValueError naming the bound; see ``kernels/tiled.py``).
TUNABLES = {
    "BLOCK_M": [16, 32, 64, 128],
    "BLOCK_N": [16, 32, 64, 128],
    "num_warps": [1, 2, 4, 8],
    "num_stages": [1, 2, 3, 4],
}


def attention_generic(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None, **config
) -> torch.Tensor:
    """softmax(q k^T * scale) v over the sequence, per batch and head, with the given
    meta-parameters.

    ``q``, ``k``, ``v``: [B, H, S, D], one dtype (float16, bfloat16 or float32), any strides
    (e.g. a [B, S, H, D] buffer transposed). D <= 128. ``causal``: query i sees keys j <= i
    (torch's ``is_causal`` for equal lengths). ``scale``: 1 / sqrt(D) when None.
    ``config`` takes any of ``TUNABLES`` (None or absent: the heuristic). The result is a
    new contiguous [B, H, S, D] tensor in the inputs' dtype.
    """
    _check(q, k, v)
    B, H, S, D = q.shape
    block_d = _block_d(D)
    cfg = meta.resolve_config("attention", TUNABLES, config, _heuristic(S, D, q.dtype, meta.serial(q.device)))
    tiled.check_shared_memory("attention", cfg, _shared_memory(cfg, block_d, q.element_size()), q.device)
    tiled.check_registers("attention", cfg, cfg["BLOCK_M"] * (block_d + cfg["BLOCK_N"]))
    o = torch.empty((B, H, S, D), dtype=q.dtype, device=q.device)
    if o.numel() == 0:
        return o
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    grid = (triton.cdiv(S, cfg["BLOCK_M"]), B * H)
    _attention_forward_kernel[grid](
        q,
        k,
        v,
        o,
        *q.stride(),
        *k.stride(),
        *v.stride(),
        *o.stride(),
        H,
        S,
        D,
        scale * math.log2(math.e),
        BLOCK_M=cfg["BLOCK_M"],
        BLOCK_N=cfg["BLOCK_N"],
        BLOCK_D=block_d,
        CAUSAL=bool(causal),
        EVEN_D=block_d == D,
        INPUT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
        # the rescale-and-accumulate steps are multiply-adds; Triton's default contracts them
        enable_fp_fusion=True,
    )
    return o


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
) -> torch.Tensor:
    """Attention forward (the public entry point: the variant that ``kernels/variants/attention.yaml``
    chooses for the call; ``attention_generic`` by default)."""
    return _dispatch(q, k, v, causal, scale)


def attention_config(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
) -> dict:
    """The meta-parameters ``attention_generic`` chooses for these arguments when given none."""
    return _heuristic(q.shape[2], q.shape[3], q.dtype, meta.serial(q.device))


def attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
) -> torch.Tensor:
    """The textbook formula in float32 (the S x S scores materialised), returned in q's dtype."""
    qf, kf, vf = q.float(), k.float(), v.float()
    D, S = q.shape[-1], q.shape[-2]
    scores = (qf @ kf.transpose(-1, -2)) * (1.0 / math.sqrt(D) if scale is None else scale)
    if causal:
        future = torch.ones(S, S, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, -float("inf"))
    return (torch.softmax(scores, dim=-1) @ vf).to(q.dtype)


def attention_dims(q: torch.Tensor, *args, **kwargs) -> dict:
    """The spec's named dims for a call."""
    B, H, S, D = q.shape
    return {"B": B, "H": H, "S": S, "D": D}


def attention_flops(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
) -> int:
    """Matmul flops of a call, 4 * B * H * S^2 * D (Q K^T and P V, 2 * S^2 * D each), halved
    for causal: the convention FlashAttention's benchmarks use for % of the tensor-core peak
    (the softmax's exps are not counted)."""
    B, H, S, D = q.shape
    flops = 4 * B * H * S * S * D
    return flops // 2 if causal else flops


def _block_d(D: int) -> int:
    return max(16, triton.next_power_of_2(D))


def _check(q, k, v) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        rowwise.check_tensor("attention", name, t)
    tiled.check_same("attention", ("q", "k", "v"), (q, k, v))
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"attention: q, k and v must all be [B, H, S, D], got {list(q.shape)}, {list(k.shape)} and {list(v.shape)}"
        )
    if not 1 <= q.shape[3] <= MAX_HEAD_DIM:
        raise ValueError(f"attention: head dim D must be in [1, {MAX_HEAD_DIM}], got {q.shape[3]}")
    rowwise.check_device("attention", q, _attention_forward_kernel)


def _shared_memory(cfg: dict, block_d: int, element_size: int) -> int:
    """A K and a V tile per stage (as Triton 3.9 allocates them on sm_90, see matmul) plus
    the Q tile."""
    kv = 2 * cfg["BLOCK_N"] * block_d * element_size
    return cfg["num_stages"] * kv + cfg["BLOCK_M"] * block_d * element_size


def _heuristic(S: int, D: int, dtype: torch.dtype, serial: bool) -> dict:
    """A starting point for the meta-parameter search (not yet timed on a GPU).

    On a GPU, FlashAttention-2's Triton tutorial choices for sm_80/sm_90: 128 query rows
    per program and 64 keys per step, 8 warps for D = 128 and 4 below, 3 stages; short
    sequences get smaller blocks. float32 (IEEE) has no tensor-core path: ``tl.dot`` becomes
    an FMA loop that keeps operand rows in registers, and ptxas (sm_90) spills 0.8-9 KB per
    thread for D = 128 at any tile with 32 x 32 scores or more; 32 x 16 over 8 warps (79
    registers) and, for D <= 64, 64 x 32 over 8 warps (96) do not spill. On a device that
    runs programs one after another (``serial``: a CPU), the largest blocks the sequence
    fills are the fastest.
    """
    fit = max(16, triton.next_power_of_2(S))
    if serial:
        return {"BLOCK_M": min(64, fit), "BLOCK_N": min(64, fit), "num_warps": 4, "num_stages": 1}
    if dtype == torch.float32:
        return {
            "BLOCK_M": min(32 if D > 64 else 64, fit),
            "BLOCK_N": min(16 if D > 64 else 32, fit),
            "num_warps": 8,
            "num_stages": 2,
        }
    return {"BLOCK_M": min(128, fit), "BLOCK_N": min(64, fit), "num_warps": 8 if D > 64 else 4, "num_stages": 3}


# The public entry point's dispatch (pytest_aina/runtime/dispatch/routing.py): cached per dims, dtype and device.
_dispatch = dispatcher("attention", attention_dims, attention_generic, dims_from_first=True)
