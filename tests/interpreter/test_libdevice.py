"""libdevice math under the interpreter: the stub module returns None on the raw
interpreter, the CUDA module fails; the faithful interpreter evaluates the symbols."""

from __future__ import annotations

import math

import pytest
import torch
import triton.language as tl
from interp_helpers import jit, needs_tested_triton, raw_interpreter
from libdevice_helpers import inverse_norm
from triton.language.extra import libdevice
from triton.language.extra.cuda import libdevice as cuda_libdevice
from triton.language.extra.libdevice import tanh as imported_tanh
from triton.runtime.errors import InterpreterError

from pytest_aina import interpreter

pytestmark = needs_tested_triton


@jit
def _unary(x_ptr, y_ptr, N: tl.constexpr, FN: tl.constexpr):
    o = tl.arange(0, N)
    x = tl.load(x_ptr + o)
    if FN == "rsqrt":
        y = libdevice.rsqrt(x)
    elif FN == "tanh":
        y = libdevice.tanh(x)
    elif FN == "exp":
        y = libdevice.exp(x)
    elif FN == "erf":
        y = libdevice.erf(x)
    elif FN == "log1p":
        y = libdevice.log1p(x)
    elif FN == "pow":
        y = libdevice.pow(x, x)
    elif FN == "imported_tanh":
        y = imported_tanh(x)
    elif FN == "cuda_rsqrt":
        y = cuda_libdevice.rsqrt(x)
    elif FN == "round":
        y = libdevice.round(x)
    else:
        y = libdevice.isnan(x).to(tl.float32)
    tl.store(y_ptr + o, y)


@jit
def _normalize(x_ptr, y_ptr, eps, N: tl.constexpr):
    o = tl.arange(0, N)
    x = tl.load(x_ptr + o)
    tl.store(y_ptr + o, x * inverse_norm(x, eps))


@jit
def _bessel(x_ptr, y_ptr, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(y_ptr + o, libdevice.j0(tl.load(x_ptr + o)))


X = torch.linspace(0.05, 3.0, 32, dtype=torch.float32)
REFERENCE = {
    "rsqrt": lambda x: 1 / torch.sqrt(x),
    "tanh": torch.tanh,
    "exp": torch.exp,
    "erf": torch.erf,
    "log1p": torch.log1p,
    "pow": lambda x: torch.pow(x, x),
    "imported_tanh": torch.tanh,
    "cuda_rsqrt": lambda x: 1 / torch.sqrt(x),
    "isnan": lambda x: torch.isnan(x).float(),
    "round": lambda x: torch.sign(x) * torch.floor(torch.abs(x) + 0.5),  # halves away from zero
}


@pytest.mark.parametrize("fn", sorted(REFERENCE))
def test_libdevice_function_computes_its_value(fn):
    y = torch.empty_like(X)
    with raw_interpreter(), pytest.raises(InterpreterError):  # None from the stub, or no extern support
        _unary[(1,)](X, y, N=32, FN=fn)
    with interpreter.faithful(sanitize=False):
        _unary[(1,)](X, y, N=32, FN=fn)
    # GPU libdevice is within 2 ulp (CUDA Programming Guide); float64 then rounded is within 1
    expected = REFERENCE[fn](X.double()).float()
    torch.testing.assert_close(y, expected, rtol=2 * 2**-23, atol=0)


def test_libdevice_in_a_helper_from_another_module():
    x = torch.randn(16, generator=torch.Generator().manual_seed(0))
    y = torch.empty_like(x)
    with interpreter.faithful(sanitize=False):
        _normalize[(1,)](x, y, 1e-6, N=16)
    torch.testing.assert_close(y, x / torch.sqrt((x * x).sum() + 1e-6))


def test_a_symbol_without_implementation_is_named():
    x = torch.ones(16)
    with interpreter.faithful(sanitize=False), pytest.raises(InterpreterError, match="__nv_j0f"):
        _bessel[(1,)](x, torch.empty_like(x), N=16)


def test_modules_are_restored_after_the_launch():
    stub, cuda = libdevice.rsqrt, cuda_libdevice.rsqrt
    y = torch.empty_like(X)
    with interpreter.faithful(sanitize=False):
        _unary[(1,)](X, y, N=32, FN="imported_tanh")
    assert libdevice.rsqrt is stub and cuda_libdevice.rsqrt is cuda
    assert globals()["imported_tanh"].__module__ == "triton.language.extra.libdevice"
    assert math.isfinite(y.sum().item())
