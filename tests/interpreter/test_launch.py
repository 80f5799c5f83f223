"""Launch-level fixes (float scalar arguments, floating-point warnings, library helpers)
and the package's API: install/uninstall, the version gate, attribution to a case."""

from __future__ import annotations

import os
import pickle
import warnings

import pytest
import torch
import triton
import triton.language as tl
from interp_helpers import jit, needs_tested_triton, raw_interpreter
from triton.runtime import interpreter as upstream
from triton.runtime.errors import InterpreterError

from pytest_aina import interpreter

pytestmark = needs_tested_triton


@jit
def _add_eps(x_ptr, y_ptr, eps, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(y_ptr + o, tl.load(x_ptr + o) + eps.to(tl.float32))


@jit
def _overflowing(x_ptr, h_ptr, q_ptr, N: tl.constexpr):
    o = tl.arange(0, N)
    x = tl.load(x_ptr + o)
    tl.store(h_ptr + o, (tl.exp(x) * 1e30).to(tl.float16))  # overflows float32, then float16
    tl.store(q_ptr + o, x / (x - x))  # 1/0 = inf, 0/0 = NaN


def _defined_without_interpreter(fn):
    previous = os.environ.pop("TRITON_INTERPRET", None)
    try:
        return triton.jit(fn)
    finally:
        if previous is not None:
            os.environ["TRITON_INTERPRET"] = previous


@_defined_without_interpreter
def _square(x):
    return x * x


@jit
def _uses_compiled_helper(x_ptr, y_ptr, N: tl.constexpr):
    o = tl.arange(0, N)
    tl.store(y_ptr + o, _square(tl.load(x_ptr + o)))


def test_float_scalar_argument_is_a_float32_tensor():
    # GPU: mangle_type(1e-6) == "fp32": the launcher passes a C float, the kernel a scalar tensor
    x = torch.zeros(16)
    y = torch.empty(16)
    with raw_interpreter(), pytest.raises(InterpreterError, match="'float' object has no attribute 'to'"):
        _add_eps[(1,)](x, y, 1e-6, N=16)
    with interpreter.faithful(sanitize=False):
        _add_eps[(1,)](x, y, 1e-6, N=16)
    assert torch.equal(y, torch.full((16,), 1e-6, dtype=torch.float32))


def test_floating_point_exceptions_do_not_trap():
    # GPU: IEEE default handling, inf and NaN without a trap; numpy warns, and with warnings
    # as errors (this project's pytest setting) the raw interpreter fails the kernel
    x = torch.tensor([100.0, 1.0, 0.0, -1.0] * 4)
    h = torch.empty(16, dtype=torch.float16)
    q = torch.empty(16)
    with interpreter.raw(), warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InterpreterError, match="RuntimeWarning"):
            _overflowing[(1,)](x, h, q, N=16)
    with interpreter.faithful(sanitize=False), warnings.catch_warnings():
        warnings.simplefilter("error")
        _overflowing[(1,)](x, h, q, N=16)
    assert torch.isinf(h).all()
    assert torch.isinf(q[0]) and torch.isnan(q[2])


def test_compiled_mode_helper_runs_in_an_interpreted_kernel():
    # GPU: any @triton.jit function is callable from a kernel; tl.sum and the rest of
    # triton.language.standard are such functions, compiled-mode unless TRITON_INTERPRET
    # was set before triton was imported
    assert isinstance(_square, triton.runtime.JITFunction)
    x = torch.arange(16, dtype=torch.float32)
    y = torch.empty(16)
    with interpreter.raw(), pytest.raises(InterpreterError, match="outside of the scope of a kernel"):
        _uses_compiled_helper[(1,)](x, y, N=16)
    with interpreter.faithful(sanitize=False):
        _uses_compiled_helper[(1,)](x, y, N=16)
    assert torch.equal(y, x * x)
    with pytest.raises(RuntimeError, match="outside of the scope of a kernel"):
        _square(x)  # outside a launch, as before


def test_install_is_idempotent_and_uninstall_restores_the_interpreter():
    originals = {
        name: vars(upstream.InterpreterBuilder)[name] for name in ("cast_impl", "binary_op", "create_masked_load")
    }
    call = vars(upstream.GridExecutor)["__call__"]
    interpreter.install()
    interpreter.install()
    assert interpreter.installed() and interpreter.sanitizing()
    assert vars(upstream.InterpreterBuilder)["cast_impl"] is not originals["cast_impl"]
    interpreter.install(sanitize=False)
    assert interpreter.installed() and not interpreter.sanitizing()
    assert vars(upstream.InterpreterBuilder)["create_masked_load"] is originals["create_masked_load"]
    interpreter.uninstall()
    interpreter.uninstall()
    assert not interpreter.installed()
    assert {name: vars(upstream.InterpreterBuilder)[name] for name in originals} == originals
    assert vars(upstream.GridExecutor)["__call__"] is call


def test_faithful_restores_the_previous_state():
    interpreter.install(sanitize=False)
    with interpreter.faithful(sanitize=True):
        assert interpreter.sanitizing()
    assert interpreter.installed() and not interpreter.sanitizing()
    interpreter.uninstall()
    with interpreter.faithful():
        assert interpreter.installed()
    assert not interpreter.installed()


def test_untested_triton_warns_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(triton, "__version__", "99.0.0")
    cast_impl = vars(upstream.InterpreterBuilder)["cast_impl"]
    with pytest.warns(interpreter.UntestedTritonWarning, match="99.0.0"):
        interpreter.install()
    assert not interpreter.installed() and not interpreter.supported()
    assert vars(upstream.InterpreterBuilder)["cast_impl"] is cast_impl


def test_violation_names_its_case_and_survives_pickling():
    with interpreter.case("softmax property[bfloat16] M=3 N=70 seed=1"):
        violation = interpreter.MemoryViolation(kernel="k", argument="y_ptr", kind="store", offset=70, extent=70)
    assert violation.case == "softmax property[bfloat16] M=3 N=70 seed=1"
    assert "case: softmax property[bfloat16]" in str(violation)
    assert interpreter.current_case() is None
    copy = pickle.loads(pickle.dumps(violation))
    assert copy.fields() == violation.fields() and str(copy) == str(violation)
