"""What the interpreter tests share: kernels that are interpreted whatever the machine, and
the one way to say "this is what the raw interpreter does"."""

from __future__ import annotations

import contextlib
import os
import warnings

import pytest
import torch
import triton

from pytest_aina import interpreter
from pytest_aina.interpreter import launch
from pytest_aina.interpreter.patching import Patches

#: Every test here runs on a triton whose interpreter the patches were written against;
#: the "raw" half of each test documents a deviation of exactly that interpreter.
needs_tested_triton = pytest.mark.skipif(
    not interpreter.supported(), reason=f"tested with triton {interpreter.TESTED_TRITON_VERSIONS} only"
)


def jit(fn):
    """``@triton.jit`` as it decorates under ``TRITON_INTERPRET=1``, set only for the
    decoration so that no other test's kernels change backend."""
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        return triton.jit(fn)
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


@contextlib.contextmanager
def raw_interpreter(*, library_helpers: bool = True):
    """Triton's own interpreter, unpatched, with numpy's warnings silenced so that what is
    shown is the value it computes (warnings as errors are a deviation of their own,
    tested apart).

    ``tl.sum`` and the other ``triton.language.standard`` helpers only run under the raw
    interpreter if ``TRITON_INTERPRET=1`` was set before ``import triton``, which a test
    session cannot promise; ``library_helpers`` makes them run as they would then (the
    deviation that fixes is tested apart too), so that a test shows the one it is about.
    """
    patches = Patches()
    with interpreter.raw(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if library_helpers:
            launch.interpret_library_helpers(patches, always=True)
        try:
            yield
        finally:
            patches.restore()


def bf16_bits(t: torch.Tensor) -> torch.Tensor:
    """bfloat16 bit patterns, NaNs made one canonical pattern (payloads are not semantics)."""
    bits = t.view(torch.int16).clone()
    bits[torch.isnan(t)] = 0x7FFF
    return bits
