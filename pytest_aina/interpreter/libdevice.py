"""libdevice math (``from triton.language.extra import libdevice``) under the interpreter.

On a GPU, ``triton.language.extra.libdevice`` is a module of stubs (``def rsqrt(arg0): ...``)
that the compiler swaps for the backend's module (``extra/cuda/libdevice.py``), whose
functions dispatch on the argument types to a libdevice symbol such as ``__nv_rsqrtf``.
The interpreter calls the stubs themselves, which return ``None`` (triton 3.9.0); calling
the CUDA module's functions directly fails in ``create_extern_elementwise``.

Here, during a launch, both modules' functions (and kernel globals bound to them) go
through the CUDA module's dispatch with the interpreter's semantic, and the builder's
``create_extern_elementwise`` evaluates the symbol with numpy. GPU libdevice functions are
accurate to a few ulp (CUDA C Programming Guide, "Mathematical Functions"); computing
in float64 and rounding to float32 gives the correctly rounded value, within those bounds.
A symbol without an implementation here raises ``NotImplementedError`` naming it.
"""

from __future__ import annotations

import math
import re
import statistics

import numpy as np
from triton.language.extra import libdevice as _stubs
from triton.language.extra.cuda import libdevice as _cuda
from triton.runtime import interpreter as _interp

from pytest_aina.interpreter import floats
from pytest_aina.interpreter.patching import Patches


def _vectorize(fn):
    return np.vectorize(fn, otypes=[np.float64])


def _erfinv(y: float) -> float:
    if y <= -1.0 or y >= 1.0:
        return math.copysign(math.inf, y) if abs(y) == 1.0 else math.nan
    return statistics.NormalDist().inv_cdf((y + 1.0) / 2.0) / math.sqrt(2.0)


def _normcdfinv(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return -math.inf if p == 0.0 else (math.inf if p == 1.0 else math.nan)
    return statistics.NormalDist().inv_cdf(p)


def _round_half_away(x):
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def _rsqrt(x):
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(x)


_erf = _vectorize(math.erf)
_erfc = _vectorize(math.erfc)

#: float math by libdevice base name (``__nv_<name>`` for float64, ``__nv_<name>f`` for
#: float32), evaluated in float64.
_FLOAT = {
    "abs": np.abs,
    "fabs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "trunc": np.trunc,
    "round": _round_half_away,
    "rint": np.rint,
    "nearbyint": np.rint,
    "exp": np.exp,
    "exp2": np.exp2,
    "exp10": lambda x: np.power(10.0, x),
    "expm1": np.expm1,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "logb": lambda x: np.floor(np.log2(np.abs(x))),
    "sqrt": np.sqrt,
    "rsqrt": _rsqrt,
    "cbrt": np.cbrt,
    "rcbrt": lambda x: 1.0 / np.cbrt(x),
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "sinpi": lambda x: np.sin(np.pi * x),
    "cospi": lambda x: np.cos(np.pi * x),
    "erf": _erf,
    "erfc": _erfc,
    "erfcx": lambda x: np.exp(x * x) * _erfc(x),
    "erfinv": _vectorize(_erfinv),
    "erfcinv": _vectorize(lambda y: _erfinv(1.0 - y)),
    "normcdf": lambda x: 0.5 * _erfc(-x / np.sqrt(2.0)),
    "normcdfinv": _vectorize(_normcdfinv),
    "lgamma": _vectorize(lambda x: math.lgamma(x) if x != 0 else math.inf),
    "tgamma": _vectorize(lambda x: math.gamma(x) if not (x <= 0 and x == int(x)) else math.nan),
    "saturate": lambda x: np.clip(x, 0.0, 1.0),
    "pow": np.power,
    "powi": np.power,
    "fmod": np.fmod,
    "remainder": np.vectorize(math.remainder, otypes=[np.float64]),
    "atan2": np.arctan2,
    "hypot": np.hypot,
    "rhypot": lambda x, y: 1.0 / np.hypot(x, y),
    "fmin": np.fmin,
    "fmax": np.fmax,
    "copysign": np.copysign,
    "fdim": lambda x, y: np.where(x > y, x - y, 0.0),
    "nextafter": None,  # in the argument's own precision: see _evaluate
    # x * 2**n: exact in float64 (the arguments arrive as float64)
    "ldexp": lambda x, n: x * np.exp2(n),
    "scalbn": lambda x, n: x * np.exp2(n),
    "norm3d": lambda a, b, c: np.sqrt(a * a + b * b + c * c),
    "norm4d": lambda a, b, c, d: np.sqrt(a * a + b * b + c * c + d * d),
    "rnorm3d": lambda a, b, c: 1.0 / np.sqrt(a * a + b * b + c * c),
    "rnorm4d": lambda a, b, c, d: 1.0 / np.sqrt(a * a + b * b + c * c + d * d),
    "fma": lambda a, b, c: a * b + c,
    "ilogb": lambda x: np.floor(np.log2(np.abs(x))),
    "llrint": np.rint,
    "llround": _round_half_away,
    "isnan": np.isnan,
    "isinf": np.isinf,
    "finite": np.isfinite,
    "isfinite": np.isfinite,
    "signbit": np.signbit,
    # approximate intrinsics on the GPU (``ex2.approx`` and friends); the exact value is
    # within their error bound
    "fast_exp": np.exp,
    "fast_exp10": lambda x: np.power(10.0, x),
    "fast_log": np.log,
    "fast_log2": np.log2,
    "fast_log10": np.log10,
    "fast_sin": np.sin,
    "fast_cos": np.cos,
    "fast_tan": np.tan,
    "fast_pow": np.power,
    "fast_fdivide": np.divide,
}

#: correctly rounded arithmetic with an explicit rounding mode: ``__nv_fadd_rn`` (float32),
#: ``__nv_dadd_rn`` (float64), ``__nv_fmaf_rz``, ``__nv_frcp_rn``, ``__nv_fsqrt_rd``, ...
_ROUNDED = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "rcp": lambda x: 1.0 / x,
    "sqrt": np.sqrt,
    "rsqrt": _rsqrt,
    "fma": lambda a, b, c: a * b + c,
}
_ROUNDED_SYMBOL = re.compile(
    r"__nv_(?:(?P<prefix>[fd])(?P<op>add|sub|mul|div|rcp|sqrt|rsqrt)|(?P<fma>fmaf?))"
    r"_(?P<mode>rn|rz|ru|rd)$"
)
_CONVERSION_SYMBOL = re.compile(
    r"__nv_(?P<src>float|double|int|uint|ll|ull)2(?P<dst>float|double|int|uint|ll|ull)"
    r"_(?P<mode>rn|rz|ru|rd)$"
)
_BITCASTS = {
    "__nv_float_as_int",
    "__nv_float_as_uint",
    "__nv_int_as_float",
    "__nv_uint_as_float",
    "__nv_double_as_longlong",
    "__nv_longlong_as_double",
}

_INT = {
    "__nv_popc": lambda x: np.bitwise_count(x.view(np.uint32)),
    "__nv_popcll": lambda x: np.bitwise_count(x.view(np.uint64)),
    "__nv_clz": lambda x: 32 - _bit_length(x.view(np.uint32)),
    "__nv_clzll": lambda x: 64 - _bit_length(x.view(np.uint64)),
    "__nv_ffs": lambda x: _ffs(x.view(np.uint32)),
    "__nv_ffsll": lambda x: _ffs(x.view(np.uint64)),
    "__nv_abs": np.abs,
    "__nv_llabs": np.abs,
    "__nv_mulhi": lambda a, b: (a.astype(np.int64) * b.astype(np.int64)) >> 32,
    "__nv_umulhi": lambda a, b: (a.astype(np.uint64) * b.astype(np.uint64)) >> np.uint64(32),
    "__nv_mul24": lambda a, b: _sext24(a) * _sext24(b),
    "__nv_umul24": lambda a, b: (a & 0xFFFFFF) * (b & 0xFFFFFF),
    "__nv_hadd": lambda a, b: (a.astype(np.int64) + b) >> 1,
    "__nv_rhadd": lambda a, b: (a.astype(np.int64) + b + 1) >> 1,
    "__nv_uhadd": lambda a, b: (a.astype(np.uint64) + b) >> np.uint64(1),
    "__nv_urhadd": lambda a, b: (a.astype(np.uint64) + b + np.uint64(1)) >> np.uint64(1),
    "__nv_sad": lambda a, b, c: np.abs(a.astype(np.int64) - b) + c,
    "__nv_usad": lambda a, b, c: np.abs(a.astype(np.int64) - b.astype(np.int64)) + c,
    "__nv_mul64hi": np.vectorize(lambda a, b: (int(a) * int(b)) >> 64, otypes=[np.int64]),
    "__nv_umul64hi": lambda a, b: _interp.np_umulhi_u64(a, b),
    "__nv_brev": lambda x: _brev(x.view(np.uint32), 32),
    "__nv_brevll": lambda x: _brev(x.view(np.uint64), 64),
}


def _bit_length(x: np.ndarray) -> np.ndarray:
    return np.where(x == 0, 0, np.floor(np.log2(np.maximum(x, 1).astype(np.float64))).astype(np.int64) + 1)


def _ffs(x: np.ndarray) -> np.ndarray:
    lowest = x & (~x + x.dtype.type(1))
    return np.where(x == 0, 0, _bit_length(lowest))


def _sext24(x: np.ndarray) -> np.ndarray:
    low = x.astype(np.int64) & 0xFFFFFF
    return np.where(low & 0x800000, low - 0x1000000, low)


def _brev(x: np.ndarray, bits: int) -> np.ndarray:
    out = np.zeros_like(x)
    one = x.dtype.type(1)
    for i in range(bits):
        out |= ((x >> x.dtype.type(i)) & one) << x.dtype.type(bits - 1 - i)
    return out


def _directed(exact: np.ndarray, np_dtype, mode: str) -> np.ndarray:
    """``exact`` (float64) rounded to ``np_dtype`` with a PTX rounding mode."""
    nearest = exact.astype(np_dtype)
    if mode == "rn" or np_dtype == np.float64:
        return nearest
    back = nearest.astype(np.float64)
    if mode == "rz":
        step = np.abs(back) > np.abs(exact)
        target = np_dtype.type(0)
    elif mode == "ru":
        step, target = back < exact, np_dtype.type(np.inf)
    else:
        step, target = back > exact, np_dtype.type(-np.inf)
    return np.where(step, np.nextafter(nearest, target), nearest)


def _evaluate(symbol: str, args: list[np.ndarray], out_dtype: np.dtype) -> np.ndarray:
    if symbol in _INT:
        return np.asarray(_INT[symbol](*args)).astype(out_dtype)
    if symbol in _BITCASTS:
        return args[0].view(out_dtype)
    if match := _ROUNDED_SYMBOL.match(symbol):
        op = "fma" if match["fma"] else match["op"]
        precision = np.float32 if (match["prefix"] == "f" or match["fma"] == "fmaf") else np.float64
        exact = _ROUNDED[op](*(a.astype(np.float64) for a in args))
        return _directed(np.asarray(exact, dtype=np.float64), np.dtype(precision), match["mode"]).astype(out_dtype)
    if match := _CONVERSION_SYMBOL.match(symbol):
        mode = match["mode"]
        if out_dtype.kind == "f":
            return _directed(args[0].astype(np.float64), out_dtype, mode)
        rounded = {"rn": np.rint, "rz": np.trunc, "ru": np.ceil, "rd": np.floor}[mode](args[0].astype(np.float64))
        return floats.float_to_int(rounded, out_dtype)
    name = symbol.removeprefix("__nv_")
    for base in (name, name[:-1], name.removesuffix("d")):
        if base == "nextafter":
            return np.nextafter(args[0], args[1]).astype(out_dtype)
        if base in _FLOAT and _FLOAT[base] is not None:
            result = _FLOAT[base](*(a.astype(np.float64) for a in args))
            if out_dtype.kind in "iub":
                return _to_int_result(base, result, out_dtype)
            return np.asarray(result, dtype=np.float64).astype(out_dtype)
    raise NotImplementedError(
        f"libdevice symbol {symbol} has no interpreter implementation in pytest_aina.interpreter; it runs on a GPU only"
    )


def _to_int_result(base: str, result, out_dtype):
    if base in ("llrint", "llround", "ilogb"):
        return floats.float_to_int(result, out_dtype)
    return np.asarray(result).astype(out_dtype)


def create_extern_elementwise(self, lib_name, lib_path, symbol, arg_list, ret_type, is_pure):
    """The builder's libdevice call: evaluate ``symbol`` on the arguments' values."""
    args = [np.asarray(a.data if isinstance(a, _interp.TensorHandle) else a) for a in arg_list]
    out_dtype = _interp._get_np_dtype(ret_type)
    with np.errstate(all="ignore"):
        data = _evaluate(symbol, args, out_dtype)
    return _interp.TensorHandle(np.asarray(data, dtype=out_dtype), ret_type.scalar)


def _interpreted(fn):
    """``fn`` (a CUDA libdevice builtin) called with the interpreter's semantic, as upstream's
    ``_patch_attr`` does for ``tl`` builtins."""

    def call(*args, **kwargs):
        kwargs.pop("_semantic", None)
        return fn(*args, **kwargs, _semantic=_interp.interpreter_semantic)

    call.__name__ = fn.__name__
    return call


def _replacements() -> dict[int, object]:
    """id(stub or CUDA function) -> its interpreted function, built once: a launch only
    looks them up."""
    table = {}
    for module in (_stubs, _cuda):
        for name, value in vars(module).items():
            target = getattr(_cuda, name, None)
            if callable(value) and getattr(value, "__module__", "") == module.__name__ and callable(target):
                table[id(value)] = _interpreted(target)
    return table


_REPLACEMENTS: dict[int, object] = {}


def patch_launch(patches: Patches, fn_globals: dict) -> None:
    """For one launch: libdevice through the interpreter, in both modules and in the names a
    kernel's module bound with ``from ... libdevice import rsqrt``. Per launch, not at
    install: on a GPU the compiler reads these modules, and must find the stubs."""
    if not _REPLACEMENTS:
        _REPLACEMENTS.update(_replacements())
    for module in (_stubs, _cuda):
        if getattr(module, "__aina_patched__", False):
            continue
        patches.setattr(module, "__aina_patched__", True)
        for name, value in list(vars(module).items()):
            replacement = _REPLACEMENTS.get(id(value))
            if replacement is not None:
                patches.setattr(module, name, replacement)
    for name, value in list(fn_globals.items()):
        replacement = _REPLACEMENTS.get(id(value))
        if replacement is not None:
            patches.setitem(fn_globals, name, replacement)


def install(patches: Patches) -> None:
    patches.setattr(_interp.InterpreterBuilder, "create_extern_elementwise", create_extern_elementwise)
