"""kernels.attention (forward) against float64, within an error bound derived per element.

Runs in the faithful interpreter with the sanitizer. Sequence lengths are not multiples of
the blocks, so the masked tail block and (causal) the diagonal blocks are exercised with
BLOCK_M < BLOCK_N, BLOCK_M > BLOCK_N and equal blocks.
"""

from __future__ import annotations

import math

import pytest
import torch
from tiled_helpers import assert_within, compile_for_sm90

from kernels import attention as at
from pytest_aina import interpreter

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
IDS = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
UNIT = {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
SUBNORMAL_STEP = {torch.float32: 2.0**-149, torch.float16: 2.0**-24, torch.bfloat16: 2.0**-133}
SMALL = {"BLOCK_M": 16, "BLOCK_N": 32, "num_warps": 4, "num_stages": 1}


@pytest.fixture(scope="module", autouse=True)
def faithful_interpreter():
    with interpreter.faithful(sanitize=True):
        yield


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(5)


def qkv(B: int, H: int, S: int, D: int, dtype, gen, scale: float = 1.0):
    return [(torch.randn(B, H, S, D, generator=gen) * scale).to(dtype) for _ in range(3)]


def exact_and_bound(q, k, v, causal: bool, scale: float | None):
    """O in float64 and |O - exact| bound per element.

    P's relative error: the score's float32 dot, (D + 2) 2^-24 times the magnitudes summed
    (|q| |k| scale); exp2's argument, rounded relative to |s - m|; l's sum over S terms; a
    few ulps for exp2 and the division. Then P is rounded to the inputs' dtype for the P V
    dot (not in float32), and O once to its dtype. Each error of P_j is carried by |v_j|.
    """
    q64, k64, v64 = q.double(), k.double(), v.double()
    S, D = q.shape[-2], q.shape[-1]
    s = 1.0 / math.sqrt(D) if scale is None else scale
    scores = (q64 @ k64.transpose(-1, -2)) * s
    magnitude = (q64.abs() @ k64.abs().transpose(-1, -2)) * abs(s)
    if causal:
        scores = scores.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), -float("inf"))
    p = torch.softmax(scores, dim=-1)
    out = p @ v64
    shift = (scores - scores.amax(dim=-1, keepdim=True)).abs().nan_to_num(0.0, posinf=0.0)
    relative = 2.0**-22 * ((D + 2) * magnitude + shift + S + 8)
    weights = p @ v64.abs()
    p_rounding = 0.0 if q.dtype == torch.float32 else UNIT[q.dtype]
    bound = UNIT[q.dtype] * out.abs() + SUBNORMAL_STEP[q.dtype] / 2 + p_rounding * weights + (p * relative) @ v64.abs()
    return out, bound


def check(q, k, v, causal=False, scale=None, **config) -> torch.Tensor:
    before = [t.clone() for t in (q, k, v)]
    o = at.attention_generic(q, k, v, causal=causal, scale=scale, **config)
    assert o.shape == q.shape and o.dtype == q.dtype and o.is_contiguous()
    expected, bound = exact_and_bound(q, k, v, causal, scale)
    assert_within(o, expected, bound, f"attention {IDS[q.dtype]} {list(q.shape)} causal={causal} {config}")
    assert all(torch.equal(t, b) for t, b in zip((q, k, v), before)), "attention modified an input"
    return o


SHAPES = [(1, 1, 1, 16), (2, 3, 37, 64), (1, 2, 50, 24), (1, 1, 33, 128)]


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_float64_within_bound(shape, dtype, causal, gen):
    check(*qkv(*shape, dtype, gen), causal=causal, **SMALL)


@pytest.mark.parametrize("blocks", [(32, 16), (16, 16), (64, 32)], ids=lambda b: f"M{b[0]}-N{b[1]}")
@pytest.mark.parametrize("S", [50, 64])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_block_shapes_and_diagonal(blocks, S, causal, gen):
    """S = 64 fills every key block (the masked loop runs only on the diagonal, or not at
    all); S = 50 leaves a partial one."""
    check(*qkv(1, 2, S, 32, torch.float16, gen), causal=causal, BLOCK_M=blocks[0], BLOCK_N=blocks[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
def test_heads_interleaved_in_the_sequence_layout(dtype, gen):
    """[B, S, H, D] buffers (what a fused QKV projection gives) seen as [B, H, S, D]."""
    q, k, v = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in qkv(2, 3, 21, 64, dtype, gen)]
    assert q.stride() == (21 * 3 * 64, 64, 3 * 64, 1)
    check(q, k, v, causal=True, **SMALL)


def test_head_dim_padded_inside_a_wider_buffer(gen):
    """D = 24 (padded to 32 in the kernel) as a slice of a 40-wide buffer with NaN beyond
    the slice: a load of a padding lane that is not masked poisons the result. S = 45 runs
    both the mask-free loop (keys 0-31) and the masked one."""
    tensors = []
    for t in qkv(1, 2, 45, 24, torch.bfloat16, gen):
        wide = torch.full((1, 2, 45, 40), float("nan"), dtype=torch.bfloat16)
        wide[..., :24] = t
        tensors.append(wide[..., :24])
    check(*tensors, **SMALL)
    check(*tensors, causal=True, **SMALL)


@pytest.mark.parametrize("scale", [0.3, -0.2, 0.0])
def test_explicit_scale(scale, gen):
    check(*qkv(1, 2, 23, 32, torch.float32, gen), causal=True, scale=scale, **SMALL)


def test_large_scores_stay_finite(gen):
    """Scores of several hundred: exp would overflow without the running max."""
    q, k, v = qkv(1, 1, 40, 64, torch.float16, gen, scale=6.0)
    o = check(q, k, v, **SMALL)
    assert o.isfinite().all()


#: Configs that between them use every value of every tunable, within the launcher's bounds.
COVERING = [
    {"BLOCK_M": 16, "BLOCK_N": 128, "num_warps": 1, "num_stages": 1},
    {"BLOCK_M": 32, "BLOCK_N": 64, "num_warps": 2, "num_stages": 2},
    {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 3},
    {"BLOCK_M": 128, "BLOCK_N": 16, "num_warps": 8, "num_stages": 4},
]


def test_every_tunable_value(gen):
    for key, values in at.TUNABLES.items():
        assert {c[key] for c in COVERING} == set(values), key
    for i, config in enumerate(COVERING):
        check(*qkv(1, 2, 40, 32, DTYPES[i % 3], gen), causal=bool(i % 2), **config)


def test_configs_beyond_the_hardware_are_refused(gen):
    q, k, v = qkv(1, 1, 8, 128, torch.float32, gen)
    with pytest.raises(
        ValueError,
        match=r"attention: .* needs ~557056 bytes of shared memory per program; "
        r"the limit is 232448",
    ):
        at.attention_generic(q, k, v, BLOCK_M=64, BLOCK_N=128, num_stages=4)
    with pytest.raises(
        ValueError,
        match=r"attention: .* keeps 1024 float32 accumulators per thread; at most 128 "
        r"fit with num_warps=1",
    ):
        at.attention_generic(q.half(), k.half(), v.half(), BLOCK_M=128, BLOCK_N=128, num_warps=1, num_stages=1)


def test_empty_inputs():
    for shape in [(0, 2, 5, 16), (1, 2, 0, 16)]:
        q = torch.empty(shape, dtype=torch.float16)
        assert at.attention(q, q, q).shape == shape


def test_public_entry_point_dims_and_flops(gen):
    q, k, v = qkv(2, 3, 21, 64, torch.bfloat16, gen)
    cfg = at.attention_config(q, k, v)
    assert set(cfg) == set(at.TUNABLES) and all(cfg[key] in at.TUNABLES[key] for key in cfg)
    for causal in (False, True):
        assert torch.equal(at.attention(q, k, v, causal), at.attention_generic(q, k, v, causal, **cfg))
    assert at.attention_dims(q, k, v) == {"B": 2, "H": 3, "S": 21, "D": 64}
    assert at.attention_flops(q, k, v) == 4 * 2 * 3 * 21 * 21 * 64
    assert at.attention_flops(q, k, v, causal=True) == 2 * 2 * 3 * 21 * 21 * 64


def test_bad_arguments_are_named():
    q = torch.ones(1, 2, 8, 16)
    with pytest.raises(ValueError, match=r"attention: k has dtype torch.float16 but q has torch.float32"):
        at.attention_generic(q, q.half(), q)
    with pytest.raises(ValueError, match=r"attention: q, k and v must all be \[B, H, S, D\]"):
        at.attention_generic(q, q[:, :, :4], q)
    with pytest.raises(ValueError, match=r"attention: q, k and v must all be \[B, H, S, D\]"):
        at.attention_generic(q[0], q[0], q[0])
    big = torch.ones(1, 1, 4, 129)
    with pytest.raises(ValueError, match=r"attention: head dim D must be in \[1, 128\], got 129"):
        at.attention_generic(big, big, big)
    with pytest.raises(ValueError, match=r"attention: BLOCK_M=256 is not allowed"):
        at.attention_generic(q, q, q, BLOCK_M=256)


def _case(dtype: str, D: int, causal: bool, cfg: dict) -> dict:
    H, S = 32, 4096  # a batch of 4 sequences: strides per batch are H * S * D
    args = {"q_ptr": f"*{dtype}", "k_ptr": f"*{dtype}", "v_ptr": f"*{dtype}", "o_ptr": f"*{dtype}"}
    for t in "qkvo":
        args.update({f"stride_{t}b": H * S * D, f"stride_{t}h": S * D, f"stride_{t}s": D, f"stride_{t}d": 1})
    args.update(
        {
            "H": H,
            "S": S,
            "D": D,
            "qk_scale": 0.18,
            "BLOCK_M": {"constexpr": cfg["BLOCK_M"]},
            "BLOCK_N": {"constexpr": cfg["BLOCK_N"]},
            "BLOCK_D": {"constexpr": D},
            "CAUSAL": {"constexpr": causal},
            "EVEN_D": {"constexpr": True},
            "INPUT_PRECISION": {"constexpr": "ieee" if dtype == "fp32" else "tf32"},
        }
    )
    return {
        "label": f"attention {dtype} D={D} causal={causal} {cfg}",
        "kernel": "kernels.attention:_attention_forward_kernel",
        "args": args,
        "num_warps": cfg["num_warps"],
        "num_stages": cfg["num_stages"],
        "fp_fusion": True,
    }


@pytest.mark.slow
def test_compiles_for_sm90_within_the_estimated_shared_memory():
    """The heuristic's GPU configs at S = 4096 compile for an H100, use no more shared
    memory than the launcher's estimate and spill no registers (ptxas -v)."""
    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    specs = [("fp16", 128, True), ("bf16", 64, False), ("fp32", 64, True), ("fp32", 128, False)]
    cases, estimates = [], []
    for dtype, D, causal in specs:
        cfg = at._heuristic(4096, D, torch_dtype[dtype], serial=False)
        cases.append(_case(dtype, D, causal, cfg))
        estimates.append(at._shared_memory(cfg, D, torch_dtype[dtype].itemsize))
    results = compile_for_sm90(cases)
    assert len(results) == len(cases)
    for result, estimate in zip(results, estimates):
        assert result["ok"], result
        assert result["shared"] <= estimate, (result, estimate)
        assert result["spill_bytes"] == 0, result
