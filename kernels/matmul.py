"""Matrix multiplication: C = A @ B, for A [M, K] and B [K, N] in float16, bfloat16 or float32.

Each program computes one BLOCK_M x BLOCK_N tile of C, looping over K in BLOCK_K steps:
``tl.dot`` on tensor cores with a float32 accumulator, rounded once to the inputs' dtype at
the store. Products of float16/bfloat16 values are exact in float32, so the only errors are
the float32 summation over K and the final rounding.

Memory traffic. A is read once per column of tiles (N / BLOCK_N times) and B once per row
of tiles (M / BLOCK_M times); what makes the difference is whether those re-reads come from
L2. Programs are numbered in groups of ``GROUP_M`` tile rows (the Triton tutorial's
"grouped ordering"): consecutive programs, which run at the same time, walk down a column of
GROUP_M tiles before moving right, so they share B's tile column and GROUP_M rows of A.
With GROUP_M = 1 it is plain row-major order, where every wave re-reads all of B.

Edges are masked (zeros add nothing to the dot); the K mask is dropped when
``K % BLOCK_K == 0`` (``EVEN_K``). The Triton tutorial instead wraps row and column indices
(``% M``) and re-asserts their contiguity with ``tl.max_contiguous``/``tl.multiple_of``; the
hint is false at the wrap, which a vectorised load of a column-major operand may act on.
Masks cost a predicate per load and keep the compiler's own contiguity analysis, which sees
``pid * BLOCK + arange`` unbroken.

float32 inputs use ``input_precision="ieee"``: torch's default for float32 matmul is not
TF32 (``torch.backends.cuda.matmul.allow_tf32`` is False), so neither is this kernel's.
That forgoes tensor cores for float32; float16 and bfloat16 are the fast path.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels import meta, rowwise, tiled
from pytest_aina.runtime import dispatcher


@triton.jit
def _matmul_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    # Grouped ordering: program ids run down GROUP_M tile rows, then move one tile column
    # right; the last group may be shorter.
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * grid_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = (rows < M)[:, None]
    col_ok = (cols < N)[None, :]
    ks = tl.arange(0, BLOCK_K)
    # int64 offsets: a row index times a stride passes 2**31 on large inputs.
    a_ptrs = a_ptr + rows.to(tl.int64)[:, None] * stride_am + ks[None, :] * stride_ak
    b_ptrs = b_ptr + ks[:, None] * stride_bk + cols.to(tl.int64)[None, :] * stride_bn

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k in tl.range(0, tl.cdiv(K, BLOCK_K)):
        if EVEN_K:
            a = tl.load(a_ptrs, mask=row_ok, other=0.0)
            b = tl.load(b_ptrs, mask=col_ok, other=0.0)
        else:
            k_left = K - k * BLOCK_K
            a = tl.load(a_ptrs, mask=row_ok & (ks[None, :] < k_left), other=0.0)
            b = tl.load(b_ptrs, mask=(ks[:, None] < k_left) & col_ok, other=0.0)
        acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk

    c_ptrs = c_ptr + rows.to(tl.int64)[:, None] * stride_cm + cols.to(tl.int64)[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=row_ok & col_ok)


#: The meta-parameter search space. Every combination runs, except those whose pipelined
#: tiles exceed one program's shared memory or whose accumulator exceeds its registers
#: (the launcher refuses them with a ValueError naming the bound; see ``kernels/tiled.py``).
TUNABLES = {
    "BLOCK_M": [16, 32, 64, 128, 256],
    "BLOCK_N": [16, 32, 64, 128, 256],
    "BLOCK_K": [16, 32, 64, 128],
    "GROUP_M": [1, 2, 4, 8, 16],
    "num_warps": [1, 2, 4, 8, 16],
    "num_stages": [1, 2, 3, 4, 5],
}


def matmul_generic(a: torch.Tensor, b: torch.Tensor, **config) -> torch.Tensor:
    """C = A @ B with the given meta-parameters.

    ``a`` [M, K] and ``b`` [K, N] share a dtype (float16, bfloat16 or float32) and a device;
    any strides (a transposed view is read in place). ``config`` takes any of ``TUNABLES``
    (None or absent: the heuristic). The result is a new contiguous [M, N] tensor in the
    inputs' dtype, accumulated in float32.
    """
    _check(a, b)
    M, K = a.shape
    N = b.shape[1]
    cfg = meta.resolve_config("matmul", TUNABLES, config, _heuristic(M, N, K, a.dtype, meta.serial(a.device)))
    tiled.check_shared_memory("matmul", cfg, _shared_memory(cfg, a.element_size()), a.device)
    tiled.check_registers("matmul", cfg, cfg["BLOCK_M"] * cfg["BLOCK_N"])
    c = torch.empty((M, N), dtype=a.dtype, device=a.device)
    if M == 0 or N == 0:
        return c
    if K == 0:
        return c.zero_()
    grid = (triton.cdiv(M, cfg["BLOCK_M"]) * triton.cdiv(N, cfg["BLOCK_N"]),)
    _matmul_kernel[grid](
        a,
        b,
        c,
        M,
        N,
        K,
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        c.stride(0),
        c.stride(1),
        BLOCK_M=cfg["BLOCK_M"],
        BLOCK_N=cfg["BLOCK_N"],
        BLOCK_K=cfg["BLOCK_K"],
        GROUP_M=cfg["GROUP_M"],
        EVEN_K=K % cfg["BLOCK_K"] == 0,
        INPUT_PRECISION="ieee" if a.dtype == torch.float32 else "tf32",
        num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
        # tl.dot accumulates with its own multiply-adds; nothing else here has one to fuse.
        enable_fp_fusion=True,
    )
    return c


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A @ B (the public entry point: the variant that ``kernels/variants/matmul.yaml``
    chooses for the call; ``matmul_generic`` by default)."""
    return _dispatch(a, b)


def matmul_config(a: torch.Tensor, b: torch.Tensor) -> dict:
    """The meta-parameters ``matmul_generic`` chooses for these arguments when given none."""
    return _heuristic(a.shape[0], b.shape[1], a.shape[1], a.dtype, meta.serial(a.device))


def matmul_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A @ B in float32, returned in the inputs' dtype."""
    return (a.float() @ b.float()).to(a.dtype)


def matmul_dims(a: torch.Tensor, b: torch.Tensor) -> dict:
    """The spec's named dims for a call."""
    return {"M": a.shape[0], "N": b.shape[1], "K": a.shape[1]}


def matmul_flops(a: torch.Tensor, b: torch.Tensor) -> int:
    """Floating-point operations of a call (one multiply and one add per term): the
    benchmark's ``flops`` objective, compared against the tensor cores' peak."""
    return 2 * a.shape[0] * b.shape[1] * a.shape[1]


def _check(a, b) -> None:
    rowwise.check_tensor("matmul", "a", a)
    rowwise.check_tensor("matmul", "b", b)
    tiled.check_same("matmul", ("a", "b"), (a, b))
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"matmul: a and b must be 2-D, got shapes {list(a.shape)} and {list(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: a is {list(a.shape)} and b is {list(b.shape)}: inner dims differ")
    rowwise.check_device("matmul", a, _matmul_kernel)


def _shared_memory(cfg: dict, element_size: int) -> int:
    """One A tile and one B tile per stage. Triton 3.9 allocates num_stages of them on sm_90
    (the ``shared`` it reports: 98304 bytes for float16 128 x 128 x 64 with 3 stages), and
    even one stage stages the dot's operands."""
    tile = (cfg["BLOCK_M"] + cfg["BLOCK_N"]) * cfg["BLOCK_K"] * element_size
    return cfg["num_stages"] * tile


def _heuristic(M: int, N: int, K: int, dtype: torch.dtype, serial: bool) -> dict:
    """A starting point for the meta-parameter search (not yet timed on a GPU).

    On a GPU: 128 x 128 x 64 tiles with 3 stages and 8 warps for float16/bfloat16 (the
    tutorial's choice for sm_80/sm_90: 96 KiB of shared memory, 64 float32 accumulators per
    thread, 114 registers and no spills on sm_90); float32 without tensor cores (an FMA
    loop) gets 64 x 64 x 32 over 8 warps (79 registers; 4 warps spill). Small matrices get
    smaller tiles so the grid keeps several programs. On a device that runs programs one
    after another (``serial``: a CPU), the fewest, largest tiles are fastest.
    """

    def fit(dim: int, cap: int) -> int:
        return max(16, min(cap, triton.next_power_of_2(max(dim, 1))))

    if serial:
        return {
            "BLOCK_M": fit(M, 64),
            "BLOCK_N": fit(N, 64),
            "BLOCK_K": fit(K, 64),
            "GROUP_M": 8,
            "num_warps": 4,
            "num_stages": 1,
        }
    if dtype == torch.float32:
        return {
            "BLOCK_M": fit(M, 64),
            "BLOCK_N": fit(N, 64),
            "BLOCK_K": fit(K, 32),
            "GROUP_M": 8,
            "num_warps": 8,
            "num_stages": 3,
        }
    block_m, block_n = fit(M, 128), fit(N, 128)
    return {
        "BLOCK_M": block_m,
        "BLOCK_N": block_n,
        "BLOCK_K": fit(K, 64),
        "GROUP_M": 8,
        "num_warps": 8 if block_m * block_n >= 128 * 128 else 4,
        "num_stages": 3,
    }


# The public entry point's dispatch (pytest_aina/runtime/dispatch/routing.py): cached per dims, dtype and device.
_dispatch = dispatcher("matmul", matmul_dims, matmul_generic)
