"""The numpy rounding helpers, against torch where torch rounds as the GPU does and against
values derived by hand where it does not."""

from __future__ import annotations

import numpy as np
import torch

from pytest_aina.interpreter import floats


def _torch_bf16_bits(values: np.ndarray) -> np.ndarray:
    return torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def test_f32_to_bf16_matches_round_to_nearest_even_on_every_class_of_value():
    g = np.random.default_rng(0)
    bits = np.concatenate(
        [
            g.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32),  # every exponent, subnormals
            (np.arange(1 << 16, dtype=np.uint32) << 16) | 0x8000,  # every tie
            np.array([0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0x00000001, 0x80000000], dtype=np.uint32),
        ]
    )
    values = bits.view(np.float32)
    finite = ~np.isnan(values)
    assert np.array_equal(floats.f32_to_bf16(values)[finite], _torch_bf16_bits(values[finite]))
    assert (floats.f32_to_bf16(values)[~finite] == floats.BF16_CANONICAL_NAN).all()


def test_bf16_round_trip_is_exact():
    patterns = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    values = floats.bf16_to_f32(patterns)
    keep = ~np.isnan(values)
    assert np.array_equal(floats.f32_to_bf16(values)[keep], patterns[keep])


def test_f64_to_bf16_rounds_once():
    # 1 + 2^-8 + 2^-30: through float32 it becomes the tie 1 + 2^-8 and rounds to even (1.0);
    # rounded once it is past the tie: 1 + 2^-7
    x = np.array([1 + 2**-8 + 2**-30, -(1 + 2**-8 + 2**-30), 1 + 2**-8, 1e300, 1e-50, np.inf, np.nan])
    out = floats.bf16_to_f32(floats.f64_to_bf16(x))
    assert out[0] == 1 + 2**-7 and out[1] == -(1 + 2**-7) and out[2] == 1.0
    assert np.isinf(out[3]) and out[4] == 0.0 and np.isinf(out[5]) and np.isnan(out[6])


def test_toward_zero():
    x = np.array([1 + 3 * 2**-8, -(1 + 3 * 2**-8), 1e-40, 3.4e38, np.inf, 70000.0, -70000.0], dtype=np.float32)
    assert np.array_equal(floats.f32_to_bf16_toward_zero(x), (x.view(np.uint32) >> 16).astype(np.uint16))
    half = floats.toward_zero(x.astype(np.float64), np.float16)
    assert half[5] == np.float16(65504) and half[6] == np.float16(-65504) and np.isinf(half[4])
    # 1 + 2^-11 + 2^-12 is past the tie between float16's 1 and 1 + 2^-10: nearest rounds up
    y = np.array([1 + 2**-11 + 2**-12, -(1 + 2**-11 + 2**-12)])
    assert y.astype(np.float16)[0] == 1 + 2**-10
    assert floats.toward_zero(y, np.float16).tolist() == [1.0, -1.0]
    assert floats.toward_zero(np.array([1 + 2**-30]), np.float32)[0] == 1.0


def test_float_to_int_saturates():
    x = np.array([np.nan, 1e10, -1e10, 3.9, -3.9, 1e19, -1e19], dtype=np.float64)
    assert floats.float_to_int(x, np.int32).tolist() == [0, 2**31 - 1, -(2**31), 3, -3, 2**31 - 1, -(2**31)]
    assert floats.float_to_int(x, np.int64).tolist()[5:] == [2**63 - 1, -(2**63)]
    assert floats.float_to_int(np.array([-1.0, 300.0]), np.uint8).tolist() == [0, 255]


def test_tree_reduce_rounds_each_level():
    x = np.ones(64, dtype=np.float16)
    x[0] = 2048
    assert floats.tree_reduce(x, 0, np.add, lambda v: v) == 2110
    odd = np.arange(1, 6, dtype=np.float32)  # non-power-of-two lengths still sum everything
    assert floats.tree_reduce(odd, 0, np.add, lambda v: v) == 15
