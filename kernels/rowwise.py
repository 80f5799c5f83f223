"""What the row-wise launchers (softmax, RMSNorm, LayerNorm) share.

Each of those kernels reduces over the last dim and treats every other dim as "rows". The
launcher's job is the same for all three: check the arguments, describe the input as rows
*without copying it* (a row may be a slice of a wider buffer, the last dim may be strided),
resolve the meta-parameters, and allocate the output. The kernels themselves stay in their
own modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton

# unused by name, but the interpreter requires triton.language in the globals of every
# @triton.jit function it runs (it patches the module it finds there)
import triton.language as tl  # noqa: F401

from kernels import meta

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#: Triton refuses blocks with more elements than this (``TRITON_MAX_TENSOR_NUMEL``).
MAX_TILE_NUMEL = 1 << 20


@triton.jit
def row_offsets(rows, inner, stride_outer, stride_inner):
    """Where each row starts in x (see :class:`Rows`). ``rows`` must be int64: a row index
    times a stride overflows int32 from 2**31 elements on."""
    return (rows // inner) * stride_outer + (rows % inner) * stride_inner


def check_tensor(fn: str, name: str, t, *, min_dim: int = 1) -> None:
    """Raise a ValueError naming ``fn`` and the argument unless ``t`` is a float tensor we handle."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{fn}: {name} has dtype {t.dtype}; expected float32, float16 or bfloat16")
    if t.dim() < min_dim:
        raise ValueError(f"{fn}: {name} must have at least {min_dim} dim(s), got shape {tuple(t.shape)}")


def check_vector(fn: str, name: str, t, n: int, device) -> None:
    """A per-column parameter (RMSNorm/LayerNorm weight or bias): shape [N], same device."""
    check_tensor(fn, name, t)
    if tuple(t.shape) != (n,):
        raise ValueError(f"{fn}: {name} must have shape [{n}] (the last dim of x), got {list(t.shape)}")
    if t.device != device:
        raise ValueError(f"{fn}: {name} is on {t.device} but x is on {device}")


def check_device(fn: str, x, kernel) -> None:
    """A clear error, naming the fix, for a CPU tensor given to a kernel Triton compiles for
    a GPU (``@triton.jit`` chose compilation when ``kernel`` was defined); Triton's own
    says only that the pointer cannot be accessed. Nothing else depends on this choice."""
    if isinstance(kernel, triton.runtime.JITFunction) and x.device.type == "cpu":
        raise ValueError(
            f"{fn}: x is on the CPU but Triton was set up to compile for a GPU; on a machine without "
            "one, set TRITON_INTERPRET=1 before importing kernels (pytest --aina, aina and "
            "pytest_aina.checking.device.prepare_runtime() do) so the interpreter is used"
        )


@dataclass(frozen=True)
class Rows:
    """A tensor [*lead, N] seen as M rows of N elements, without a copy.

    Row ``r`` starts at ``(r // inner) * stride_outer + (r % inner) * stride_inner`` and its
    elements are ``stride_col`` apart. Two levels of row strides are enough for every layout
    the specs allow: a contiguous or sliced tensor collapses to one level (``inner == M``),
    and a transposed view with batch dims ([B, R, N] from a [B, N, R] buffer) needs two.
    """

    x: torch.Tensor  # the tensor the strides describe (a copy only in the rare case below)
    M: int
    N: int
    inner: int
    stride_outer: int
    stride_inner: int
    stride_col: int

    @property
    def columns_strided(self) -> bool:
        """The last dim is not unit-stride but the rows are (a transposed view)."""
        return self.N > 1 and self.stride_col != 1 and self.stride_inner == 1


def as_rows(x: torch.Tensor) -> Rows:
    """Describe ``x`` as rows; copies only when the leading dims need more than two strides."""
    n = x.shape[-1]
    m = math.prod(x.shape[:-1])
    groups = _merge_leading(list(x.shape[:-1]), list(x.stride()[:-1]))
    if len(groups) > 2:
        # e.g. a 4-D tensor permuted so that no two leading dims merge. Supporting any number
        # of levels in-kernel would cost a div/mod per level per row for a layout no spec
        # produces; a contiguous copy keeps the kernel simple and is correct.
        x = x.contiguous()
        groups = _merge_leading(list(x.shape[:-1]), list(x.stride()[:-1]))
    if not groups:
        groups = [(1, 0)]
    if len(groups) == 1:
        ((size, stride),) = groups
        return Rows(x, m, n, inner=size, stride_outer=0, stride_inner=stride, stride_col=x.stride(-1))
    (_, s_out), (size_in, s_in) = groups
    return Rows(x, m, n, inner=size_in, stride_outer=s_out, stride_inner=s_in, stride_col=x.stride(-1))


def _merge_leading(sizes: list[int], strides: list[int]) -> list[tuple[int, int]]:
    """Merge adjacent leading dims that walk memory as one dim; size-1 dims vanish."""
    groups: list[tuple[int, int]] = []
    for size, stride in zip(sizes, strides):
        if size == 1:
            continue
        if groups and groups[-1][1] == stride * size:
            groups[-1] = (groups[-1][0] * size, stride)
        else:
            groups.append((size, stride))
    return groups


def resolve_config(fn: str, tunables: dict, config: dict, heuristic: dict) -> dict:
    """:func:`kernels.meta.resolve_config`, and a tile Triton accepts."""
    resolved = meta.resolve_config(fn, tunables, config, heuristic)
    tile = resolved["BLOCK_N"] * resolved["ROWS_PER_PROGRAM"]
    if tile > MAX_TILE_NUMEL:
        raise ValueError(f"{fn}: BLOCK_N * ROWS_PER_PROGRAM = {tile} exceeds Triton's block limit {MAX_TILE_NUMEL}")
    return resolved


def warps_for(tile: int) -> int:
    """Warps for a tile of ``tile`` elements: about 8-16 fp32 values per thread (Liger's rule)."""
    if tile >= 32768:
        return 32
    if tile >= 8192:
        return 16
    if tile >= 2048:
        return 8
    return 4


def rows_per_program(block_n: int, m: int, concurrent: int) -> int:
    """Rows per program for a row that fits one block, on a device that runs ``concurrent``
    programs at once (:func:`kernels.meta.concurrent_programs`).

    Pack short rows so each program moves a tile of ~2048 elements, but keep at least
    ``concurrent`` programs so every SM of a GPU has work. A device that runs one program
    at a time (a CPU) pays about the same per program whatever its tile, so tiles up to
    64K elements are packed there (about 10x faster on small rows than 2048).
    """
    if concurrent <= 1:
        return max(1, min(16, 65536 // block_n))
    rows = max(1, min(16, 2048 // block_n))
    while rows > 1 and triton.cdiv(m, rows) < concurrent:
        rows //= 2
    return rows


def output_buffer(x: torch.Tensor, rows: Rows) -> torch.Tensor:
    """The [M, N] contiguous buffer the kernel writes, in x's dtype (the kernel rounds its
    float32 values at the store, ``.to(out_ptr.dtype.element_ty)``)."""
    return torch.empty((rows.M, rows.N), dtype=x.dtype, device=x.device)


def finish(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The result in x's shape (contiguous, freshly allocated)."""
    return out.view(x.shape)


#: Widest row held in registers by the single-pass kernels. The row is held in float32
#: whatever x's dtype, so the limit is in elements: ``scripts/compile_kernels.py`` (ptxas -v,
#: sm_90) shows no spills at 16384 with 16 warps, and spills from 32768 on with 32 warps
#: (LayerNorm 388 B per thread, softmax and RMSNorm 36 B).
FUSED_MAX_N = 16384


def default_config(rows: Rows, element_size: int, *, looped_block: int = 4096) -> dict:
    """The launchers' heuristic (a starting point for the meta-parameter search; checked for
    register spills with ptxas, not yet timed on a GPU).

    ``element_size`` is not used today (the row lives in float32 registers whatever the
    dtype); it stays in the signature for per-dtype choices.

    * A row of up to ``FUSED_MAX_N`` elements is done in one pass from registers.
    * Wider rows loop over blocks of ``looped_block`` columns (no spills at 8 warps).
    * A transposed input (rows unit-stride, columns not) gets a tall tile: 16 neighbouring
      rows per program, so each column's loads hit consecutive addresses.
    * Short rows are packed several to a program, as many as the device of ``rows.x`` runs
      best (:func:`rows_per_program`).
    """
    n_pow2 = triton.next_power_of_2(rows.N)
    if rows.columns_strided:
        block_n = max(16, min(n_pow2, 1024))
        per_program = min(16, triton.next_power_of_2(rows.M))
    elif rows.N <= FUSED_MAX_N:
        block_n = max(16, n_pow2)
        per_program = rows_per_program(block_n, rows.M, meta.concurrent_programs(rows.x.device))
    else:
        block_n = looped_block
        per_program = 1
    return {
        "BLOCK_N": block_n,
        "ROWS_PER_PROGRAM": per_program,
        "num_warps": warps_for(block_n * per_program),
        # only the looped kernels have a loop to pipeline
        "num_stages": 1 if block_n >= rows.N else 2,
    }
