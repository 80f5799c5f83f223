"""Rounding to the GPU's narrow float formats, in numpy (bfloat16 has no numpy dtype).

The interpreter keeps bfloat16 values as their uint16 bit patterns. These helpers turn
wider floats into those patterns the way an NVIDIA GPU does (``cvt.rn.bf16.f32``: round to
nearest, ties to even, overflow to infinity, subnormals kept, NaN to the canonical NaN), and
back. Pure numpy, so that they can be tested and reused without Triton.
"""

from __future__ import annotations

import numpy as np

#: ``cvt.rn.bf16.f32`` returns this for any NaN input (PTX ISA, "cvt": canonical NaN).
BF16_CANONICAL_NAN = np.uint16(0x7FFF)


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns to float32 values: exact (bfloat16 is float32's upper half)."""
    return (np.asarray(bits).astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 values to bfloat16 bit patterns, round to nearest even.

    Adding 0x7FFF plus the lowest kept bit and dropping the low half rounds ties to even;
    a carry out of the mantissa increments the exponent, which is also how the largest
    finite values overflow to infinity. NaN is handled apart: rounding its payload could
    carry into infinity.
    """
    values = np.asarray(values, dtype=np.float32)
    bits = values.view(np.uint32)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    return np.where(np.isnan(values), BF16_CANONICAL_NAN, rounded).astype(np.uint16)


def f64_to_f32_odd(values: np.ndarray) -> np.ndarray:
    """float64 to float32 rounding to odd: truncate, then set the last bit if anything was lost.

    Rounding to odd into a format with at least two more bits than the final one makes a
    second rounding (to bfloat16 here) give the correctly rounded result of the first value,
    which plain double rounding does not (Boldo & Melquiond, 2008).
    """
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        nearest = values.astype(np.float32)
        toward_zero = np.where(
            np.abs(nearest.astype(np.float64)) > np.abs(values), np.nextafter(nearest, np.float32(0)), nearest
        ).astype(np.float32)
        inexact = toward_zero.astype(np.float64) != values
    bits = toward_zero.view(np.uint32) | (inexact & np.isfinite(values)).astype(np.uint32)
    return np.where(np.isnan(values), np.float32(np.nan), bits.view(np.float32)).astype(np.float32)


def f64_to_bf16(values: np.ndarray) -> np.ndarray:
    """float64 values to bfloat16 bit patterns, one rounding to nearest even (LLVM's fptrunc)."""
    return f32_to_bf16(f64_to_f32_odd(values))


def f32_to_bf16_toward_zero(values: np.ndarray) -> np.ndarray:
    """float32 to bfloat16 rounding toward zero (``fp_downcast_rounding="rtz"``): drop the low half.

    A NaN whose payload lives only in the low half would become infinity, so NaN is canonical.
    """
    values = np.asarray(values, dtype=np.float32)
    truncated = (values.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    return np.where(np.isnan(values), BF16_CANONICAL_NAN, truncated).astype(np.uint16)


def toward_zero(values: np.ndarray, dtype) -> np.ndarray:
    """float64/float32 values to ``dtype`` (float32 or float16) rounding toward zero: round to
    nearest, then step back toward zero where that grew the magnitude. Infinity stays
    infinity; a finite value past the format's range becomes its largest finite value."""
    values = np.asarray(values)
    with np.errstate(over="ignore", invalid="ignore"):
        nearest = values.astype(dtype)
        grew = np.abs(nearest.astype(values.dtype)) > np.abs(values)
    return np.where(grew, np.nextafter(nearest, dtype(0)), nearest).astype(dtype)


def f64_to_bf16_toward_zero(values: np.ndarray) -> np.ndarray:
    """float64 to bfloat16 rounding toward zero: truncations compose, so through float32."""
    return f32_to_bf16_toward_zero(toward_zero(values, np.float32))


def float_to_int(values: np.ndarray, np_dtype) -> np.ndarray:
    """float to integer as PTX ``cvt.rzi``: toward zero, saturating, NaN to 0.

    numpy's astype leaves out-of-range results undefined (INT_MIN on x86) and warns; LLVM's
    fptosi lowers on NVIDIA GPUs to ``cvt.rzi.s32.f32``, which clamps to the range.
    """
    np_dtype = np.dtype(np_dtype)
    info = np.iinfo(np_dtype)
    wide = np.trunc(np.asarray(values, dtype=np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.clip(np.nan_to_num(wide, nan=0.0), info.min, info.max).astype(np_dtype)
    # float64(info.max) rounds up past the type for 64-bit ints: pin the saturated lanes
    out = np.where(wide >= float(info.max), np_dtype.type(info.max), out)
    return np.where(wide <= float(info.min), np_dtype.type(info.min), out).astype(np_dtype)


def tree_reduce(values: np.ndarray, axis: int, combine, round_to) -> np.ndarray:
    """Reduce along ``axis`` as a GPU does: pairs combined level by level (a shuffle
    butterfly), each partial result rounded to the element type with ``round_to``.

    The GPU's exact pairing depends on the layout (elements per thread, lanes, warps); what
    matters for a narrow type is that every partial result is rounded, so the error grows
    like a tree reduction's, not like one final rounding of an exact sum. Triton's block
    dims are powers of two; an odd leftover is folded into the last partial result.
    """
    values = np.moveaxis(np.asarray(values), axis, -1)
    while values.shape[-1] > 1:
        half = values.shape[-1] // 2
        odd = values[..., 2 * half :]
        values = round_to(combine(values[..., :half], values[..., half : 2 * half]))
        if odd.shape[-1]:
            values = np.concatenate([values[..., :-1], round_to(combine(values[..., -1:], odd))], axis=-1)
    return values[..., 0]
