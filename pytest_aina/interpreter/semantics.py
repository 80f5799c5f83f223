"""GPU number semantics for the interpreter's builder: casts, bfloat16 arithmetic, reductions.

Triton's interpreter (``triton/runtime/interpreter.py``) runs each ``tl`` operation with
numpy. numpy has no bfloat16, so the interpreter keeps bfloat16 tensors as their uint16 bit
patterns, and three things follow that a GPU never does (triton 3.9.0):

* a float32 -> bfloat16 cast truncates the mantissa (``_convert_float`` without a rounding
  mode), and mishandles subnormals and NaN;
* arithmetic, comparisons, min/max, ``tl.dot`` and ``tl.fma`` on bfloat16 operate on the bit
  patterns as if they were integers;
* reductions and scans over bfloat16 (``tl.sum``, ``tl.argmax``, ``tl.cumsum``) sum or
  compare the bit patterns (``tl.max`` and ``tl.min`` widen to float32 first and are right).

Each replacement below decodes bfloat16 to float32 (exact), computes, and rounds back the
way the GPU rounds. Two more apply beyond bfloat16: float16 sums round every partial sum,
and float to integer conversions saturate. Everything else goes to the interpreter's own code.
"""

from __future__ import annotations

import numpy as np
import triton.language as tl
from triton._C.libtriton import ir as _ir  # the rounding-mode enum the builder receives
from triton.runtime import interpreter as _interp

from pytest_aina.interpreter import floats
from pytest_aina.interpreter.patching import Patches

TensorHandle = _interp.TensorHandle
_STANDARD_FLOATS = (tl.float16, tl.bfloat16, tl.float32, tl.float64)


def _is_bf16(handle) -> bool:
    # A comparison's result keeps its operand's dtype in upstream's binary_op, so a bool
    # array can be labelled bfloat16: only uint16 data holds bfloat16 bit patterns.
    return isinstance(handle, TensorHandle) and handle.dtype.scalar == tl.bfloat16 and handle.data.dtype == np.uint16


def _values(handle) -> np.ndarray:
    """The numbers a handle holds: bfloat16 decoded to float32, anything else as stored."""
    return floats.bf16_to_f32(handle.data) if _is_bf16(handle) else handle.data


def _round_bf16(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 and back (a reduction's partial results)."""
    return floats.bf16_to_f32(floats.f32_to_bf16(values))


# --- casts --------------------------------------------------------------------------------


def cast_impl(self, src, dst_type):
    """Every cast the builder makes (``create_fp_trunc``, ``create_fp_ext``, ``create_si_to_fp``,
    ``create_fp_to_si``, ...), rounding as the GPU does.

    GPU: ``cvt.rn.bf16.f32`` (sm_80+) and ``cvt.rn.f16.f32`` round to nearest even, overflow
    to infinity and keep subnormals; a float64 source rounds once (LLVM ``fptrunc``); float
    to integer is ``cvt.rzi`` (saturating, NaN to 0). Here: bfloat16 through
    :func:`floats.f32_to_bf16` / :func:`floats.f64_to_bf16`, the rest with numpy's
    correctly rounded ``astype`` without its overflow warning (which pytest's
    ``filterwarnings = error`` would turn into a failure the GPU never has).
    """
    src_ty, dst_ty = src.dtype.scalar, dst_type.scalar
    values = _values(src)
    np_dtype = _interp._get_np_dtype(dst_type)
    if dst_ty == tl.bfloat16:
        if values.dtype == np.float32:
            return TensorHandle(floats.f32_to_bf16(values), tl.bfloat16)
        # int, float16, float64: exactly representable in float64 (ints up to 2**53), so
        # one rounding from there is the GPU's single rounding
        return TensorHandle(floats.f64_to_bf16(values.astype(np.float64)), tl.bfloat16)
    if src_ty.is_floating() and dst_ty.is_int() and not dst_ty.is_bool():
        return TensorHandle(floats.float_to_int(values, np_dtype), dst_ty)
    with np.errstate(over="ignore", invalid="ignore"):
        return TensorHandle(values.astype(np_dtype), dst_ty)


def _wrap_fp_to_fp(original):

    def create_fp_to_fp(self, src, dst_type, rounding_mode):
        """A cast with an explicit rounding mode (``.to(dtype, fp_downcast_rounding="rtz")``)
        or between float16 and bfloat16, for the standard float types.

        GPU: ``cvt.rz`` truncates toward zero (a finite value past the range becomes the
        largest finite value); ``rtne`` is the default cast. The interpreter's
        ``_convert_float`` gets bfloat16 subnormals and NaN payloads wrong. fp8 goes to the
        interpreter's own conversion.
        """
        src_ty, dst_ty = src.dtype.scalar, dst_type.scalar
        if src_ty not in _STANDARD_FLOATS or dst_ty not in _STANDARD_FLOATS:
            return original(self, src, dst_type, rounding_mode)
        if rounding_mode != _ir.ROUNDING_MODE.RTZ or dst_ty.primitive_bitwidth >= src_ty.primitive_bitwidth:
            if dst_ty == tl.float16 and src_ty == tl.bfloat16:
                return cast_impl(self, cast_impl(self, src, tl.float32), dst_type)
            return cast_impl(self, src, dst_type)
        values = _values(src)
        if dst_ty == tl.bfloat16:
            if values.dtype == np.float32:
                return TensorHandle(floats.f32_to_bf16_toward_zero(values), tl.bfloat16)
            return TensorHandle(floats.f64_to_bf16_toward_zero(values), tl.bfloat16)
        return TensorHandle(floats.toward_zero(values, _interp._get_np_dtype(dst_type).type), dst_ty)

    return create_fp_to_fp


def get_bf16(self, value):
    """A bfloat16 constant (``tl.full(..., 0.1, tl.bfloat16)``): the GPU's frontend rounds the
    Python float once (``APFloat`` to bfloat16, nearest even); the interpreter went through
    float32 and then truncated."""
    return TensorHandle(floats.f64_to_bf16(np.array([value], dtype=np.float64)), tl.bfloat16)


# --- arithmetic ---------------------------------------------------------------------------


def _widening(original):
    """Run ``original`` on bfloat16 operands decoded to float32, and round a float32 result
    back to bfloat16 when every float operand was bfloat16.

    GPU: bfloat16 add/sub/mul/min/max are native on sm_90 (``add.rn.bf16``) and done in
    float32 then rounded elsewhere; both give the correctly rounded bfloat16 result, since
    float32 has more than twice bfloat16's precision plus two bits (so rounding twice equals
    rounding once for +, -, *, / and sqrt; Figueroa, 1995). Comparisons and min/max compare
    values, not bit patterns. A result that keeps a float32 operand's type (``tl.dot`` with a
    float32 accumulator) stays float32.
    """

    def method(self, *handles):
        if not any(_is_bf16(h) for h in handles):
            return original(self, *handles)
        float_operands = [h for h in handles if isinstance(h, TensorHandle) and h.dtype.scalar.is_floating()]
        all_bf16 = all(_is_bf16(h) for h in float_operands)
        widened = [TensorHandle(floats.bf16_to_f32(h.data), tl.float32) if _is_bf16(h) else h for h in handles]
        out = original(self, *widened)
        if out.data.dtype == np.bool_:
            return TensorHandle(out.data, tl.int1)
        if all_bf16 and out.data.dtype == np.float32:
            return TensorHandle(floats.f32_to_bf16(out.data), tl.bfloat16)
        return out

    method.__name__ = original.__name__
    method.__doc__ = (original.__doc__ or "") + "\n" + (_widening.__doc__ or "")
    return method


def _wrap_fma(original):

    def create_fma(self, x, y, z):
        """``tl.fma`` on bfloat16. GPU: ``fma.rn.bf16`` rounds once. The product of two
        bfloat16 values is exact in float64, so computing there and rounding once to
        bfloat16 matches it (up to a second rounding of the sum in float64's 53 bits)."""
        if not _is_bf16(z):
            return original(self, x, y, z)
        exact = _values(x).astype(np.float64) * _values(y).astype(np.float64) + _values(z).astype(np.float64)
        return TensorHandle(floats.f64_to_bf16(exact), tl.bfloat16)

    return create_fma


# --- reductions and scans -----------------------------------------------------------------


def _reduce(data: np.ndarray, axis, keep_dims: bool, reduce_axis) -> np.ndarray:
    """Apply ``reduce_axis(values, axis)`` with numpy's ``axis``/``keepdims`` conventions."""
    if axis is None:
        out = reduce_axis(data.reshape(-1), 0)
        return out.reshape((1,) * data.ndim) if keep_dims else out
    out = reduce_axis(data, axis)
    return np.expand_dims(out, axis) if keep_dims else out


def _wrap_sum(original):

    def sum(self, input):
        """``tl.sum`` over float16 or bfloat16 without a wider ``dtype=``.

        GPU: the reduction stays in the element type (``tl.sum`` only widens integers), so
        every partial sum is rounded to it: each thread adds its elements, then lanes and
        warps combine in a butterfly. numpy summed the bfloat16 bit patterns as integers, and
        float16 with one final rounding. Here: a pairwise tree rounding each level.
        """
        dtype = input.dtype
        if dtype == tl.bfloat16:
            values = floats.bf16_to_f32(input.handle.data)
            out = _reduce(
                values, self.axis, self.keep_dims, lambda v, ax: floats.tree_reduce(v, ax, np.add, _round_bf16)
            )
            return self.to_tensor(floats.f32_to_bf16(out), dtype)
        if dtype == tl.float16:
            out = _reduce(
                input.handle.data,
                self.axis,
                self.keep_dims,
                lambda v, ax: floats.tree_reduce(v, ax, np.add, lambda x: x),
            )
            return self.to_tensor(out, dtype)
        return original(self, input)

    return sum


def _wrap_min_max(original):

    def min_max(self, input, val_reduce_op, idx_reduce_op=None):
        """``tl.argmax``/``tl.argmin`` (and ``tl.reduce`` with the max/min combines) over
        bfloat16: compare values.

        GPU: a bfloat16 compare is a float compare; on bit patterns read as unsigned
        integers every negative number is larger than every positive one.
        """
        input = input[0] if isinstance(input, tuple) else input
        if input.dtype != tl.bfloat16:
            return original(self, input, val_reduce_op, idx_reduce_op)
        values = floats.bf16_to_f32(input.handle.data)
        val = idx = None
        if val_reduce_op:
            val = self.to_tensor(
                floats.f32_to_bf16(val_reduce_op(values, axis=self.axis, keepdims=self.keep_dims)), input.dtype
            )
        if idx_reduce_op:
            idx = self.to_tensor(idx_reduce_op(values, axis=self.axis, keepdims=self.keep_dims), tl.int32)
        if val is not None and idx is not None:
            return val, idx
        return val if val is not None else idx

    return min_max


def _scan_bf16(self, input, combine):
    """An inclusive scan over bfloat16, rounding every partial result (as the GPU does in
    the element type)."""
    values = np.moveaxis(floats.bf16_to_f32(input.handle.data), self.axis, 0).copy()
    for i in range(1, values.shape[0]):
        values[i] = _round_bf16(combine(values[i - 1], values[i]))
    return [self.to_tensor(floats.f32_to_bf16(np.moveaxis(values, 0, self.axis)), input.dtype)]


def _wrap_scan(original, combine):

    def scan(self, input):
        """``tl.cumsum``/``tl.cumprod`` over bfloat16. GPU: each partial result is rounded to
        bfloat16; numpy accumulated the bit patterns as integers."""
        if input.dtype != tl.bfloat16:
            return original(self, input)
        return _scan_bf16(self, input, combine)

    return scan


def install(patches: Patches) -> None:
    """Replace the interpreter's number semantics (undone by ``patches.restore()``)."""
    builder, reduce_ops, scan_ops = _interp.InterpreterBuilder, _interp.ReduceOps, _interp.ScanOps
    patches.setattr(builder, "cast_impl", cast_impl)
    patches.setattr(builder, "create_fp_to_fp", _wrap_fp_to_fp(builder.create_fp_to_fp))
    patches.setattr(builder, "get_bf16", get_bf16)
    for name in ("binary_op", "unary_op", "create_clampf", "create_erf", "create_rsqrt", "create_dot"):
        patches.setattr(builder, name, _widening(getattr(builder, name)))
    patches.setattr(builder, "create_fma", _wrap_fma(builder.create_fma))
    patches.setattr(reduce_ops, "sum", _wrap_sum(reduce_ops.sum))
    patches.setattr(reduce_ops, "min_max", _wrap_min_max(reduce_ops.min_max))
    patches.setattr(scan_ops, "cumsum", _wrap_scan(scan_ops.cumsum, np.add))
    patches.setattr(scan_ops, "cumprod", _wrap_scan(scan_ops.cumprod, np.multiply))
