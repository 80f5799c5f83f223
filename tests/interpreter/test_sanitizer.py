"""The sanitizer with real kernels: each class of out-of-bounds access is reported with the
kernel, the argument, the element offset and load/store; correct kernels are untouched."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import triton.language as tl
from interp_helpers import jit, needs_tested_triton

from pytest_aina import interpreter
from pytest_aina.interpreter import MemoryViolation

pytestmark = needs_tested_triton


@jit
def _copy_missing_load_mask(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + o)  # the bug: no mask
    tl.store(y_ptr + o, x, mask=o < n)


@jit
def _copy_missing_store_mask(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + o, mask=o < n, other=0.0)
    tl.store(y_ptr + o, x)  # the bug: no mask


@jit
def _copy(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + o, tl.load(x_ptr + o, mask=o < n, other=0.0), mask=o < n)


@jit
def _copy_rows(x_ptr, y_ptr, stride_x, stride_y, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    ok = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=ok)
    tl.store(y_ptr + row * stride_y + cols, x, mask=ok)


@jit
def _row_sums_int32_offsets(x_ptr, y_ptr, stride, BLOCK: tl.constexpr):
    row = tl.program_id(0)  # int32: row * stride wraps past 2**31
    x = tl.load(x_ptr + row * stride + tl.arange(0, BLOCK))
    tl.store(y_ptr + row, tl.sum(x.to(tl.int32), axis=0))


@jit
def _row_sums_int64_offsets(x_ptr, y_ptr, stride, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x = tl.load(x_ptr + row * stride + tl.arange(0, BLOCK))
    tl.store(y_ptr + row, tl.sum(x.to(tl.int32), axis=0))


@jit
def _histogram_missing_mask(idx_ptr, counts_ptr, BLOCK: tl.constexpr):
    idx = tl.load(idx_ptr + tl.arange(0, BLOCK))
    tl.atomic_add(counts_ptr + idx, 1)  # the bug: idx is not checked against the bins


@jit
def _scale_strided(x_ptr, stride, n, BLOCK: tl.constexpr):
    o = tl.arange(0, BLOCK)
    ok = o < n
    tl.store(x_ptr + o * stride, tl.load(x_ptr + o * stride, mask=ok) * 2, mask=ok)


@jit
def _read_past_row(x_ptr, y_ptr, stride_x, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    tl.store(y_ptr + row * BLOCK + cols, tl.load(x_ptr + row * stride_x + cols))  # no column mask


def test_missing_load_mask():
    x, y = torch.randn(100), torch.empty(100)
    with interpreter.faithful(), pytest.raises(MemoryViolation) as caught:
        _copy_missing_load_mask[(4,)](x, y, 100, BLOCK=32)
    v = caught.value
    assert (v.kernel, v.argument, v.kind, v.offset, v.extent, v.lanes) == (
        "_copy_missing_load_mask",
        "x_ptr",
        "load",
        100,
        100,
        28,
    )
    assert v.program == (3, 0, 0) and "test_sanitizer.py" in v.location
    assert "out-of-bounds load in kernel _copy_missing_load_mask" in str(v) and "element offset 100" in str(v)


def test_missing_store_mask_leaves_the_output_untouched():
    x, y = torch.randn(100), torch.zeros(100)
    with interpreter.faithful(), pytest.raises(MemoryViolation) as caught:
        _copy_missing_store_mask[(4,)](x, y, 100, BLOCK=32)
    assert (caught.value.argument, caught.value.kind, caught.value.offset) == ("y_ptr", "store", 100)
    assert torch.equal(y, torch.zeros(100))  # the launch failed: nothing was copied back


def test_masked_lanes_are_not_accesses():
    x, y = torch.randn(100), torch.empty(100)
    with interpreter.faithful():
        _copy[(4,)](x, y, 100, BLOCK=32)
    assert torch.equal(x, y)


def test_wrong_row_stride_on_store_past_the_end():
    # y_ptr's rows are 30 apart but the kernel is given x's stride (40)
    x = torch.randn(8, 40)[:, :30]
    y = torch.empty(8, 30)
    with interpreter.faithful(), pytest.raises(MemoryViolation) as caught:
        _copy_rows[(8,)](x, y, x.stride(0), x.stride(0), 30, BLOCK=32)
    v = caught.value
    assert (v.argument, v.kind, v.offset, v.extent, v.program) == ("y_ptr", "store", 240, 240, (6, 0, 0))


def test_wrong_row_stride_on_store_into_a_gap_is_caught_by_the_guard_zone():
    # y is a [8, 30] slice of a [8, 36] buffer: with stride 33 every store stays inside
    # y's span, but row 1's first columns (offsets 33..35) land in the gap after row 0 (the
    # buffer's own columns 30..35), which the kernel was not given
    x = torch.randn(8, 30)
    buffer = torch.zeros(8, 36)
    y = buffer[:, :30]
    with interpreter.faithful(), pytest.raises(MemoryViolation) as caught:
        _copy_rows[(8,)](x, y, x.stride(0), 33, 30, BLOCK=32)
    v = caught.value
    assert (v.argument, v.kind, v.detected_by, v.offset) == ("y_ptr", "store", "guard zone", 33)
    assert "in a gap between its elements" in str(v)
    assert torch.equal(buffer, torch.zeros(8, 36))


def test_a_read_from_a_gap_is_poisoned_with_nan():
    # rows of 30 in a buffer of 36 columns, read with a block of 32 and no column mask:
    # the two extra columns are inside the span, so no address check fires; the guard zone
    # hands the kernel NaN, as the harness's NaN-padded sliced inputs do
    x = torch.randn(4, 36)[:, :30]
    y = torch.empty(4, 32)
    with interpreter.faithful():
        _read_past_row[(3,)](x, y, x.stride(0), BLOCK=32)
    assert torch.equal(y[:3, :30], x[:3]) and torch.isnan(y[:3, 30:]).all()


def test_int32_offset_overflow():
    # three rows 2**30 int8 elements apart: row 2's offset 2**31 wraps to -2**31 in int32.
    # The 2 GiB buffer is only reserved (torch.empty does not touch its pages).
    stride = 2**30
    x = torch.empty(2 * stride + 16, dtype=torch.int8).as_strided((3, 16), (stride, 1))
    y = torch.zeros(3, dtype=torch.int32)
    with interpreter.faithful():
        with pytest.raises(MemoryViolation) as caught:
            _row_sums_int32_offsets[(3,)](x, y, stride, BLOCK=16)
        v = caught.value
        assert (v.argument, v.kind, v.offset, v.program) == ("x_ptr", "load", -(2**31), (2, 0, 0))
        assert "before its first element" in str(v)
        _row_sums_int64_offsets[(3,)](x, y, stride, BLOCK=16)  # the fix: int64 row offsets


def test_atomic_out_of_bounds():
    idx = torch.tensor([0, 1, 2, 9] * 4, dtype=torch.int32)
    counts = torch.zeros(8, dtype=torch.int32)
    with interpreter.faithful(), pytest.raises(MemoryViolation) as caught:
        _histogram_missing_mask[(1,)](idx, counts, BLOCK=16)
    assert (caught.value.argument, caught.value.kind, caught.value.offset, caught.value.lanes) == (
        "counts_ptr",
        "atomic",
        9,
        4,
    )


def test_kernel_sees_the_arguments_strides_and_writes_through_views():
    # column 2 of an [8, 8] buffer (stride 8), doubled in place: the guard zone relocates the
    # whole buffer, the kernel sees the same stride, and only the column comes back
    base = torch.arange(64, dtype=torch.float32).reshape(8, 8)
    expected = base.clone()
    expected[:, 2] *= 2
    with interpreter.faithful():
        _scale_strided[(1,)](base[:, 2], base[:, 2].stride(0), 8, BLOCK=8)
    assert torch.equal(base, expected)
    # a sliced input (rows 8 apart, 6 columns from column 1) read through its row stride
    out = torch.empty(8, 6)
    with interpreter.faithful():
        _copy_rows[(8,)](base[:, 1:7], out, 8, 6, 6, BLOCK=8)
    assert torch.equal(out, base[:, 1:7])


def test_arguments_sharing_a_storage_stay_aliased():
    # x[1:] and x[:-1] overlap: one relocated buffer for both, so the kernel's store through
    # one is what a later load through the other would see, as on the GPU
    x = torch.arange(16, dtype=torch.float32)
    with interpreter.faithful():
        _copy[(1,)](x[1:], x[:-1], 15, BLOCK=16)
    assert torch.equal(x, torch.tensor([*range(1, 16), 15], dtype=torch.float32))


_CRASHING = """
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
import torch, triton, triton.language as tl
from pytest_aina import interpreter

@triton.jit
def scatter(x_ptr, y_ptr, BLOCK: tl.constexpr):
    o = tl.arange(0, BLOCK)
    tl.store(y_ptr + o.to(tl.int64) * (1 << 36), tl.load(x_ptr + o))  # far outside y: unmapped memory

if sys.argv[1] == "sanitized":
    interpreter.install()
try:
    scatter[(1,)](torch.randn(16), torch.empty(16), BLOCK=16)
except interpreter.MemoryViolation as violation:
    print("caught:", violation.argument, violation.kind, violation.offset)
print("still running")
"""


@pytest.mark.parametrize("mode", ["raw", "sanitized"])
def test_out_of_bounds_store_crashes_the_raw_interpreter_not_the_sanitized_one(mode, tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(_CRASHING))
    done = subprocess.run([sys.executable, str(script), mode], check=False, capture_output=True, text=True, timeout=300)
    if mode == "raw":
        assert done.returncode < 0 or done.returncode > 128, done.stdout + done.stderr  # killed by a signal
        assert "still running" not in done.stdout
    else:
        assert done.returncode == 0, done.stderr
        assert "caught: y_ptr store 68719476736" in done.stdout and "still running" in done.stdout
