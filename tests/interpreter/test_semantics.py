"""GPU number semantics under the interpreter: casts, bfloat16 arithmetic, reductions.

Each test runs a real kernel twice: on the raw interpreter (``raw_interpreter()``), to show
the deviation exists in the installed triton, and with the faithful interpreter, which
must match what the GPU computes. The GPU's answer comes from torch where torch rounds the
same way (bfloat16 casts and elementwise arithmetic on the CPU round to nearest even, as
``cvt.rn`` and ``add.rn.bf16`` do) or is derived by hand in the test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import triton.language as tl
from interp_helpers import bf16_bits, jit, needs_tested_triton, raw_interpreter

from pytest_aina import interpreter

pytestmark = needs_tested_triton


@jit
def _cast(x_ptr, y_ptr, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(y_ptr + o, tl.load(x_ptr + o).to(y_ptr.dtype.element_ty))


@jit
def _cast_toward_zero(x_ptr, y_ptr, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(y_ptr + o, tl.load(x_ptr + o).to(tl.bfloat16, fp_downcast_rounding="rtz"))


@jit
def _constant(y_ptr, N: tl.constexpr):
    tl.store(y_ptr + tl.arange(0, N), tl.full([N], 0.1, tl.bfloat16))


@jit
def _elementwise(a_ptr, b_ptr, out_ptr, N: tl.constexpr, OP: tl.constexpr):
    o = tl.arange(0, N)
    a = tl.load(a_ptr + o)
    b = tl.load(b_ptr + o)
    if OP == "add":
        r = a + b
    elif OP == "sub":
        r = a - b
    elif OP == "mul":
        r = a * b
    elif OP == "div":
        r = a / b
    elif OP == "maximum":
        r = tl.maximum(a, b)
    elif OP == "neg":
        r = -a
    else:
        r = (a < b).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + o, r)


@jit
def _fma(a_ptr, b_ptr, c_ptr, out_ptr, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(out_ptr + o, tl.fma(tl.load(a_ptr + o), tl.load(b_ptr + o), tl.load(c_ptr + o)))


@jit
def _dot(a_ptr, b_ptr, c_ptr, N: tl.constexpr):
    i = tl.arange(0, N)
    tile = i[:, None] * N + i[None, :]
    tl.store(c_ptr + tile, tl.dot(tl.load(a_ptr + tile), tl.load(b_ptr + tile)))


@jit
def _reduce(x_ptr, out_ptr, N: tl.constexpr, OP: tl.constexpr):
    o = tl.arange(0, N)
    x = tl.load(x_ptr + o)
    if OP == "sum":
        tl.store(out_ptr, tl.sum(x, axis=0))
    elif OP == "max":
        tl.store(out_ptr, tl.max(x, axis=0))
    elif OP == "argmax":
        tl.store(out_ptr, tl.argmax(x, axis=0).to(out_ptr.dtype.element_ty))
    else:
        tl.store(out_ptr + o, tl.cumsum(x, axis=0))


def _run_cast(x: torch.Tensor, dtype: torch.dtype, kernel=_cast) -> torch.Tensor:
    y = torch.empty(x.shape, dtype=dtype)
    kernel[(1,)](x, y, N=x.numel())
    return y


# Ties, values just past a tie, overflow past the largest bfloat16, a subnormal, NaN
CAST_INPUTS = torch.tensor(
    [
        1.0 + 2**-8,
        1.0 + 3 * 2**-8,
        1.0 + 2**-8 + 2**-20,
        -(1.0 + 2**-8 + 2**-20),
        3.4e38,
        -3.0e38,
        1e-40,
        float("nan"),
        float("inf"),
        -0.0,
        65519.0,
        2.0**-25,
        *torch.randn(4, generator=torch.Generator().manual_seed(0)).tolist(),
    ],
    dtype=torch.float32,
)


def test_float32_to_bfloat16_rounds_to_nearest_even():
    # GPU: cvt.rn.bf16.f32 == torch's rounding; raw: the mantissa is truncated
    expected = bf16_bits(CAST_INPUTS.to(torch.bfloat16))
    with raw_interpreter():
        raw = bf16_bits(_run_cast(CAST_INPUTS, torch.bfloat16))
    assert not torch.equal(raw, expected)
    assert raw[1] == bf16_bits(torch.tensor([1.0078125], dtype=torch.bfloat16))[0]  # 1 + 3*2^-8 truncated

    with interpreter.faithful(sanitize=False):
        assert torch.equal(bf16_bits(_run_cast(CAST_INPUTS, torch.bfloat16)), expected)


def test_float32_to_float16_rounds_to_nearest_even():
    # numpy's astype already rounds to nearest even; the patch must keep that
    expected = CAST_INPUTS.to(torch.float16)
    with interpreter.faithful(sanitize=False):
        assert torch.equal(_run_cast(CAST_INPUTS, torch.float16).view(torch.int16), expected.view(torch.int16))


def test_bfloat16_constant_is_rounded_once():
    # GPU: the frontend rounds the Python float 0.1 to bfloat16 once: 0x3DCD (0.10009765625)
    expected = torch.full((16,), 0.1, dtype=torch.bfloat16)
    assert expected.view(torch.int16)[0] == 0x3DCD
    y = torch.empty(16, dtype=torch.bfloat16)
    with raw_interpreter():
        _constant[(1,)](y, N=16)
    assert y.view(torch.int16)[0] == 0x3DCC  # truncated
    with interpreter.faithful(sanitize=False):
        _constant[(1,)](y, N=16)
    assert torch.equal(y.view(torch.int16), expected.view(torch.int16))


def test_explicit_round_toward_zero_keeps_subnormals():
    # GPU: cvt.rz.bf16.f32 drops the low 16 bits, subnormals included
    x = torch.tensor([1e-40, -1e-40, 1.0 + 3 * 2**-8, 3.4e38] + [0.5] * 12, dtype=torch.float32)
    expected = (x.view(torch.int32) >> 16).to(torch.int16)
    with raw_interpreter():
        raw = _run_cast(x, torch.bfloat16, _cast_toward_zero).view(torch.int16)
    assert raw[0] != expected[0]  # the interpreter's _convert_float renormalises the subnormal wrongly
    with interpreter.faithful(sanitize=False):
        assert torch.equal(_run_cast(x, torch.bfloat16, _cast_toward_zero).view(torch.int16), expected)


def test_float_to_int_saturates_and_maps_nan_to_zero():
    # GPU: cvt.rzi.s32.f32 clamps to the int32 range and converts NaN to 0
    x = torch.tensor([float("nan"), 1e10, -1e10, 3.7, -3.7, 2.5, float("inf"), float("-inf")], dtype=torch.float32)
    expected = torch.tensor([0, 2**31 - 1, -(2**31), 3, -3, 2, 2**31 - 1, -(2**31)], dtype=torch.int32)
    with raw_interpreter():
        raw = _run_cast(x, torch.int32)
    assert raw[0] == -(2**31) and raw[1] == -(2**31)
    with interpreter.faithful(sanitize=False):
        assert torch.equal(_run_cast(x, torch.int32), expected)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "neg"])
def test_bfloat16_arithmetic_rounds_values_not_bit_patterns(op):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(64, generator=g).to(torch.bfloat16)
    b = torch.randn(64, generator=g).to(torch.bfloat16)
    expected = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b, "maximum": torch.maximum(a, b), "neg": -a}[op]
    out = torch.empty_like(a)
    with raw_interpreter():
        _elementwise[(1,)](a, b, out, N=64, OP=op)
    assert not torch.equal(bf16_bits(out), bf16_bits(expected))
    with interpreter.faithful(sanitize=False):
        _elementwise[(1,)](a, b, out, N=64, OP=op)
    assert torch.equal(bf16_bits(out), bf16_bits(expected))


def test_bfloat16_comparison_compares_values():
    a = torch.tensor([-1.0, -2.0, 1.0, -0.5] * 4, dtype=torch.bfloat16)
    b = torch.tensor([1.0, -1.0, -2.0, -0.25] * 4, dtype=torch.bfloat16)
    out = torch.empty(16, dtype=torch.int32)
    with raw_interpreter():
        _elementwise[(1,)](a, b, out, N=16, OP="less")
    assert not torch.equal(out, (a < b).to(torch.int32))  # -1 < 1 is false on bit patterns
    with interpreter.faithful(sanitize=False):
        _elementwise[(1,)](a, b, out, N=16, OP="less")
    assert torch.equal(out, (a < b).to(torch.int32))


def test_bfloat16_fma_rounds_once():
    g = torch.Generator().manual_seed(2)
    a, b, c = (torch.randn(32, generator=g).to(torch.bfloat16) for _ in range(3))
    # the product of two bfloat16 is exact in float64 and so is the sum here; rounding that
    # once to bfloat16 is fma.rn.bf16 (torch's float64 -> bfloat16 goes through float32)
    exact = a.double() * b.double() + c.double()
    expected = torch.from_numpy(interpreter_floats().f64_to_bf16(exact.numpy()).view(np.int16))
    out = torch.empty_like(a)
    with raw_interpreter():
        _fma[(1,)](a, b, c, out, N=32)
    assert not torch.equal(out.view(torch.int16), expected)
    with interpreter.faithful(sanitize=False):
        _fma[(1,)](a, b, c, out, N=32)
    assert torch.equal(out.view(torch.int16), expected)


def interpreter_floats():
    from pytest_aina.interpreter import floats

    return floats


def test_bfloat16_dot_multiplies_values():
    # GPU: bf16 MMA, exact products accumulated in float32
    g = torch.Generator().manual_seed(3)
    a = torch.randn(16, 16, generator=g).to(torch.bfloat16)
    b = torch.randn(16, 16, generator=g).to(torch.bfloat16)
    expected = a.float() @ b.float()
    c = torch.empty(16, 16)
    with raw_interpreter():
        _dot[(1,)](a, b, c, N=16)
    assert not torch.allclose(c, expected, rtol=1e-3, atol=1e-3)
    with interpreter.faithful(sanitize=False):
        _dot[(1,)](a, b, c, N=16)
    torch.testing.assert_close(c, expected, rtol=1e-6, atol=1e-5)


def test_bfloat16_sum_rounds_every_partial_sum():
    # 256 then 63 ones. The GPU's butterfly (4 warps, one element per lane; or two per
    # thread) first adds 256 + 1 = 257, a tie between bfloat16 neighbours 256 and 258 that
    # rounds to even (256); the other pairs give 2, 4, 8, 16, 32: 256+2+4+8+16+32 = 318,
    # where the exact sum 319 would round to 320.
    x = torch.ones(64, dtype=torch.bfloat16)
    x[0] = 256
    out = torch.empty(1, dtype=torch.bfloat16)
    with raw_interpreter():
        _reduce[(1,)](x, out, N=64, OP="sum")
    assert out.item() not in (318.0, 320.0)  # the bit patterns, summed as integers
    with interpreter.faithful(sanitize=False):
        _reduce[(1,)](x, out, N=64, OP="sum")
    assert out.item() == 318.0


def test_bfloat16_sum_of_random_values_is_close_to_exact():
    x = torch.randn(256, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    exact = x.double().sum().item()
    out = torch.empty(1, dtype=torch.bfloat16)
    with raw_interpreter():
        _reduce[(1,)](x, out, N=256, OP="sum")
    assert abs(out.item() - exact) > 1.0
    with interpreter.faithful(sanitize=False):
        _reduce[(1,)](x, out, N=256, OP="sum")
    # 8 levels of partial sums, each off by at most half an ulp of a value below sum |x|
    assert abs(out.item() - exact) <= 8 * 2**-8 * x.double().abs().sum().item()


def test_float16_sum_rounds_every_partial_sum():
    # the same shape one exponent range up: 2048 + 1 ties to 2048 in float16, and the tree
    # gives 2110 where numpy's single final rounding of 2111 gives 2112
    x = torch.ones(64, dtype=torch.float16)
    x[0] = 2048
    out = torch.empty(1, dtype=torch.float16)
    with raw_interpreter():
        _reduce[(1,)](x, out, N=64, OP="sum")
    assert out.item() == 2112.0
    with interpreter.faithful(sanitize=False):
        _reduce[(1,)](x, out, N=64, OP="sum")
    assert out.item() == 2110.0


def test_bfloat16_argmax_compares_values():
    # tl.argmax keeps bfloat16 (tl.max alone widens sub-32-bit floats to float32 first, so
    # it is right on the raw interpreter too): the raw interpreter's nanargmax reads the
    # bit patterns as unsigned integers, where -16 (0xC180) beats -1 (0xBF80)
    x = -torch.arange(1, 17, dtype=torch.float32).to(torch.bfloat16)
    out = torch.empty(1, dtype=torch.int32)
    with raw_interpreter():
        _reduce[(1,)](x, out, N=16, OP="argmax")
    assert out.item() == 15
    with interpreter.faithful(sanitize=False):
        _reduce[(1,)](x, out, N=16, OP="argmax")
        assert out.item() == 0
        maximum = torch.empty(1, dtype=torch.bfloat16)
        _reduce[(1,)](x, maximum, N=16, OP="max")
    assert maximum.item() == -1.0


def test_bfloat16_cumsum_accumulates_values():
    x = torch.rand(32, generator=torch.Generator().manual_seed(5)).to(torch.bfloat16)
    exact = x.double().cumsum(0)
    out = torch.empty_like(x)
    with raw_interpreter():
        _reduce[(1,)](x, out, N=32, OP="cumsum")
    assert not torch.allclose(out.double(), exact, rtol=0.1)
    with interpreter.faithful(sanitize=False):
        _reduce[(1,)](x, out, N=32, OP="cumsum")
    # one rounding per step, each at most half an ulp (2^-8 relative) of the running sum
    torch.testing.assert_close(out.double(), exact, rtol=32 * 2**-8, atol=0)
