"""kernels.matmul against float64, within an error bound derived per element.

Runs in the faithful interpreter with the sanitizer (bfloat16 ``tl.dot`` multiplies values,
not bit patterns; an access outside an operand raises). Small shapes and tiles keep the
interpreter cheap; sizes are chosen so that M, N and K are not multiples of the tiles.
"""

from __future__ import annotations

import pytest
import torch
from tiled_helpers import assert_within, compile_for_sm90

from kernels import matmul as mm
from pytest_aina import interpreter

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
IDS = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
#: unit roundoff of the result's dtype (its final rounding)
UNIT = {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
SMALL = {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 16, "GROUP_M": 2, "num_warps": 4, "num_stages": 1}


@pytest.fixture(scope="module", autouse=True)
def faithful_interpreter():
    with interpreter.faithful(sanitize=True):
        yield


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(2024)


def operands(M: int, N: int, K: int, dtype, gen, layout: str = "contiguous"):
    a = torch.randn(M, K, generator=gen).to(dtype)
    b = torch.randn(K, N, generator=gen).to(dtype)
    if layout == "transposed":  # column-major: a.T and b.T contiguous
        a, b = a.t().contiguous().t(), b.t().contiguous().t()
    elif layout == "sliced":  # rows of a wider buffer, NaN in the gaps: a read past the row shows
        wide_a = torch.full((M, K + 7), float("nan"), dtype=dtype)
        wide_b = torch.full((K, N + 9), float("nan"), dtype=dtype)
        wide_a[:, :K], wide_b[:, :N] = a, b
        a, b = wide_a[:, :K], wide_b[:, :N]
    return a, b


def check(a: torch.Tensor, b: torch.Tensor, **config) -> torch.Tensor:
    """C against A @ B in float64: |C - exact| <= u |exact| + 2 (K + 1) 2^-24 (|A| @ |B|).

    The first term is C's final rounding; the second the float32 sum over K in any order
    (the worst-case bound gamma_K, doubled for slack), scaled by the magnitudes summed rather
    than by the result, which cancels. float16/bfloat16 products are exact in float32; a
    float32 product adds one more rounding, counted in K + 1. float16's subnormals add half
    its smallest step.
    """
    before = (a.clone(), b.clone())
    c = mm.matmul_generic(a, b, **config)
    K = a.shape[1]
    a64, b64 = a.double(), b.double()
    exact = a64 @ b64
    bound = UNIT[a.dtype] * exact.abs() + 2 * (K + 1) * 2.0**-24 * (a64.abs() @ b64.abs()) + 2.0**-25
    assert c.shape == (a.shape[0], b.shape[1]) and c.dtype == a.dtype and c.is_contiguous()
    assert_within(c, exact, bound, f"matmul {IDS[a.dtype]} M,N,K={a.shape[0]},{b.shape[1]},{K} {config}")
    assert torch.equal(a, before[0]) and torch.equal(b, before[1]), "matmul modified an operand"
    return c


SHAPES = [(1, 1, 1), (17, 33, 45), (64, 16, 32), (50, 70, 90), (3, 130, 20)]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_float64_within_bound(shape, dtype, gen):
    check(*operands(*shape, dtype, gen), **SMALL)


@pytest.mark.parametrize("layout", ["transposed", "sliced"])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
def test_strided_operands_are_read_in_place(layout, dtype, gen):
    check(*operands(37, 29, 41, dtype, gen, layout), **SMALL)


def test_k_a_multiple_of_the_tile_takes_the_unmasked_loop(gen):
    a, b = operands(20, 24, 64, torch.bfloat16, gen)
    for block_k in (16, 32, 64):
        check(a, b, **{**SMALL, "BLOCK_K": block_k})
    check(a[:, :50], b[:50], **SMALL)  # 50 = 3 * 16 + 2: the masked loop, on sliced operands


@pytest.mark.parametrize("group_m", [1, 2, 4, 8])
def test_grouped_ordering_writes_every_tile(group_m, gen):
    """5 x 3 tiles: the last group of tile rows is shorter than GROUP_M (or GROUP_M exceeds
    the grid); every tile must still be computed once."""
    check(*operands(80, 48, 24, torch.float16, gen), BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=group_m)


#: Configs that between them use every value of every tunable, each within the bounds the
#: launcher enforces.
COVERING = [
    {"BLOCK_M": 16, "BLOCK_N": 256, "BLOCK_K": 128, "GROUP_M": 1, "num_warps": 8, "num_stages": 1},
    {"BLOCK_M": 32, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 2, "num_warps": 4, "num_stages": 2},
    {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 4, "num_warps": 2, "num_stages": 3},
    {"BLOCK_M": 128, "BLOCK_N": 32, "BLOCK_K": 16, "GROUP_M": 8, "num_warps": 1, "num_stages": 4},
    {"BLOCK_M": 256, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 16, "num_warps": 16, "num_stages": 5},
]


def test_every_tunable_value(gen):
    for key, values in mm.TUNABLES.items():
        assert {c[key] for c in COVERING} == set(values), key
    for i, config in enumerate(COVERING):
        check(*operands(40, 36, 44, DTYPES[i % 3], gen), **config)


def test_configs_beyond_the_hardware_are_refused(gen):
    a, b = operands(8, 8, 8, torch.float32, gen)
    with pytest.raises(
        ValueError,
        match=r"matmul: .*BLOCK_K=128.* needs ~786432 bytes of shared memory per "
        r"program; the limit is 232448",
    ):
        mm.matmul_generic(a, b, BLOCK_M=256, BLOCK_N=256, BLOCK_K=128, num_stages=3)
    with pytest.raises(
        ValueError,
        match=r"matmul: .* keeps 128 float32 accumulators per thread; at most 64 fit "
        r"with num_warps=16",
    ):
        mm.matmul_generic(a.half(), b.half(), BLOCK_M=256, BLOCK_N=256, BLOCK_K=16, num_warps=16, num_stages=1)


def test_empty_dims():
    assert torch.equal(
        mm.matmul(torch.ones(3, 0, dtype=torch.float16), torch.ones(0, 5, dtype=torch.float16)),
        torch.zeros(3, 5, dtype=torch.float16),
    )
    assert mm.matmul(torch.ones(0, 4), torch.ones(4, 5)).shape == (0, 5)
    assert mm.matmul(torch.ones(2, 4), torch.ones(4, 0)).shape == (2, 0)


def test_public_entry_point_dims_and_flops(gen):
    a, b = operands(30, 20, 10, torch.bfloat16, gen)
    cfg = mm.matmul_config(a, b)
    assert set(cfg) == set(mm.TUNABLES) and all(cfg[k] in mm.TUNABLES[k] for k in cfg)
    assert torch.equal(mm.matmul(a, b), mm.matmul_generic(a, b, **cfg))
    assert mm.matmul_dims(a, b) == {"M": 30, "N": 20, "K": 10}
    assert mm.matmul_flops(a, b) == 2 * 30 * 20 * 10
    assert torch.equal(mm.matmul_reference(a, b), (a.float() @ b.float()).to(torch.bfloat16))


def test_bad_arguments_are_named():
    a, b = torch.ones(4, 8), torch.ones(8, 3)
    with pytest.raises(ValueError, match=r"matmul: b has dtype torch.float16 but a has torch.float32"):
        mm.matmul_generic(a, b.half())
    with pytest.raises(ValueError, match=r"matmul: a is \[4, 8\] and b is \[7, 3\]: inner dims differ"):
        mm.matmul_generic(a, torch.ones(7, 3))
    with pytest.raises(ValueError, match=r"matmul: a and b must be 2-D"):
        mm.matmul_generic(torch.ones(2, 4, 8), b)
    with pytest.raises(ValueError, match=r"matmul: a has dtype torch.int32"):
        mm.matmul_generic(a.int(), b.int())
    with pytest.raises(ValueError, match=r"matmul: unknown meta-parameter 'BLOCK'"):
        mm.matmul_generic(a, b, BLOCK=16)
    with pytest.raises(ValueError, match=r"matmul: BLOCK_K=8 is not allowed"):
        mm.matmul_generic(a, b, BLOCK_K=8)


def _case(dtype: str, cfg: dict) -> dict:
    size = 4096
    args = {
        "a_ptr": f"*{dtype}",
        "b_ptr": f"*{dtype}",
        "c_ptr": f"*{dtype}",
        "M": size,
        "N": size,
        "K": size,
        "stride_am": size,
        "stride_ak": 1,
        "stride_bk": size,
        "stride_bn": 1,
        "stride_cm": size,
        "stride_cn": 1,
    }
    args.update({k: {"constexpr": cfg[k]} for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M")})
    args["EVEN_K"] = {"constexpr": True}
    args["INPUT_PRECISION"] = {"constexpr": "ieee" if dtype == "fp32" else "tf32"}
    return {
        "label": f"matmul {dtype} {cfg}",
        "kernel": "kernels.matmul:_matmul_kernel",
        "args": args,
        "num_warps": cfg["num_warps"],
        "num_stages": cfg["num_stages"],
        "fp_fusion": True,
    }


@pytest.mark.slow
def test_compiles_for_sm90_within_the_estimated_shared_memory():
    """The heuristic's GPU configs compile for an H100, specialised as a launch on 4096^2
    row-major operands would be, use no more shared memory than the launcher's estimate
    (so a config it accepts is not refused by the GPU) and spill no registers (ptxas -v)."""
    half = mm._heuristic(4096, 4096, 4096, torch.float16, serial=False)
    single = mm._heuristic(4096, 4096, 4096, torch.float32, serial=False)
    cases = [("fp16", half), ("bf16", half), ("fp32", single)]
    results = compile_for_sm90([_case(dtype, cfg) for dtype, cfg in cases])
    assert len(results) == len(cases)
    for (dtype, cfg), result in zip(cases, results):
        assert result["ok"], result
        estimate = mm._shared_memory(cfg, 4 if dtype == "fp32" else 2)
        assert result["shared"] <= estimate, (result, estimate)
        assert result["spill_bytes"] == 0, result
