"""Guard zones: each tensor argument relocated into a poisoned buffer for the launch.

The address checks (``sanitizer.py``) see a tensor as the span from its first to its last
element. What they cannot see: an access inside that span that is not one of the tensor's
elements (a row's padding when the tensor is a slice of a wider buffer, the gap a wrong
row stride walks into), and any access the checks do not cover. So for the launch each
storage the arguments use is copied into a fresh buffer laid out byte for byte like the
original (same strides, same storage offsets, same alignment modulo 64 bytes), with
``GUARD_BYTES`` before and after, and every byte that belongs to no argument's element
filled with a pattern: a quiet NaN with a recognisable payload for float tensors (a stray
read poisons the result), ``0xA5`` bytes for the rest. After the launch the pattern is
compared: a changed byte is a store outside the arguments (:class:`MemoryViolation`,
``detected_by="guard zone"``); otherwise the arguments' elements are copied back, and
nothing else of the original storage is touched. If the launch fails, the originals are
left as they were.

The kernel sees the same shapes, strides and values; only the addresses differ. CPU
tensors only (the interpreter's own case); the byte work is numpy's, single-threaded:
torch's intra-op threads cost more than the copies on a loaded machine.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from triton.runtime.jit import TensorWrapper

from pytest_aina.interpreter.sanitizer import describe, span_elements
from pytest_aina.interpreter.violations import MemoryViolation

#: Bytes of pattern before and after each relocated storage (a multiple of 64).
GUARD_BYTES = 512
#: Storages whose arguments span more than this are left in place (address checks only):
#: a tensor of billions of elements that the kernel touches sparsely must stay cheap.
MAX_GUARDED_BYTES = 256 << 20
_ALIGN = 64

#: The pattern's element, by dtype: quiet NaNs with payloads (0x...A5...) for floats.
_FLOAT_PATTERNS = {
    torch.float32: (np.int32, 0x7FE5A5A5),
    torch.float16: (np.int16, 0x7E5A),
    torch.bfloat16: (np.int16, 0x7FE5),
    torch.float64: (np.int64, 0x7FFA5A5A5A5A5A5A),
}
_INT_VIEW = {1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64}


@dataclasses.dataclass
class _View:
    argument: str
    original: torch.Tensor
    shadow: torch.Tensor | None = None


@dataclasses.dataclass
class _Storage:
    """One original storage and its relocated copy."""

    views: list[_View]
    low: int = 0  # first byte any view reaches, as an address in the original
    high: int = 0  # one past the last
    buffer: np.ndarray | None = None  # the relocated bytes, guards included
    origin: int = 0  # index in ``buffer`` of the original's byte ``low``
    pattern: np.ndarray | None = None
    covered: np.ndarray | None = None  # bytes that belong to some view's elements; None: all of the span

    @property
    def length(self) -> int:
        return self.high - self.low

    def original_bytes(self) -> np.ndarray:
        """The original storage's bytes [low, high), writable, shared with the tensors."""
        first = self.views[0].original
        out = torch.empty(0, dtype=torch.uint8)
        out.set_(first.untyped_storage(), self.low - first.untyped_storage().data_ptr(), (self.length,), (1,))
        return out.numpy()


def _non_overlapping(shape, strides) -> bool:
    """True when no two elements of a layout share an address once broadcast (stride-0)
    dims are cut to one element."""
    reach = 0
    for stride, size in sorted((abs(st), s) for s, st in zip(shape, strides) if s > 1 and st != 0):
        if stride <= reach:
            return False
        reach += (size - 1) * stride
    return True


class GuardZones:
    """The relocated arguments of one launch."""

    def __init__(self) -> None:
        self._storages: dict[int, _Storage] = {}
        self._shadow_of: dict[int, torch.Tensor] = {}

    # -- before the launch -----------------------------------------------------------------

    def relocate(self, named_args: dict[str, object]) -> dict[str, object]:
        """``named_args`` with every CPU tensor (also inside tuples and ``triton.reinterpret``
        wrappers) replaced by its relocated copy."""
        for name, value in named_args.items():
            self._collect(name, value)
        for storage in self._storages.values():
            self._relocate(storage)
        return {name: self._substitute(value) for name, value in named_args.items()}

    def _collect(self, name: str, value) -> None:
        if isinstance(value, TensorWrapper):
            self._collect(name, value.base)
        elif isinstance(value, torch.Tensor):
            if value.device.type != "cpu" or span_elements(value) == 0:
                return
            key = value.untyped_storage().data_ptr()
            self._storages.setdefault(key, _Storage([])).views.append(_View(name, value))
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                self._collect(f"{name}[{i}]", item)

    def _substitute(self, value):
        if isinstance(value, TensorWrapper):
            return TensorWrapper(self._substitute(value.base), value.dtype)
        if isinstance(value, torch.Tensor):
            return self._shadow_of.get(id(value), value)
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return tuple(self._substitute(item) for item in value)
        return value

    def _relocate(self, storage: _Storage) -> None:
        starts = [view.original.data_ptr() for view in storage.views]
        storage.low = min(starts)
        storage.high = max(
            s + span_elements(v.original) * v.original.element_size() for s, v in zip(starts, storage.views)
        )
        if storage.length > MAX_GUARDED_BYTES:
            return
        total = GUARD_BYTES + storage.length + GUARD_BYTES + _ALIGN
        total += -total % _ALIGN
        tensor = torch.empty(total, dtype=torch.uint8)  # 64-byte aligned, unlike numpy's
        buffer = tensor.numpy()
        origin = GUARD_BYTES + (storage.low - (tensor.data_ptr() + GUARD_BYTES)) % _ALIGN
        int_dtype, fill = _FLOAT_PATTERNS.get(storage.views[0].original.dtype, (np.uint8, 0xA5))
        buffer.view(int_dtype)[:] = fill
        pattern = buffer.copy()
        buffer[origin : origin + storage.length] = storage.original_bytes()
        for view, start in zip(storage.views, starts):
            t = view.original
            view.shadow = torch.as_strided(
                tensor.view(t.dtype), t.shape, t.stride(), (origin + start - storage.low) // t.element_size()
            )
            self._shadow_of[id(t)] = view.shadow
        if not _dense(storage):
            storage.covered = _covered(storage, starts, origin, total)
            np.copyto(buffer, pattern, where=~storage.covered)  # the gaps get the pattern back
        storage.buffer, storage.origin, storage.pattern = buffer, origin, pattern

    # -- after the launch ------------------------------------------------------------------

    def finish(self, kernel: str) -> None:
        """Check every guard byte, then copy the arguments' elements back to the originals.
        Raises MemoryViolation (and copies nothing) if a guard byte changed."""
        relocated = [s for s in self._storages.values() if s.buffer is not None]
        for storage in relocated:
            self._check(storage, kernel)
        for storage in relocated:
            source = storage.buffer[storage.origin : storage.origin + storage.length]
            if storage.covered is None:
                storage.original_bytes()[:] = source
            else:
                covered = storage.covered[storage.origin : storage.origin + storage.length]
                np.copyto(storage.original_bytes(), source, where=covered)

    def _check(self, storage: _Storage, kernel: str) -> None:
        end = storage.origin + storage.length
        if storage.covered is None:  # dense: only the guards before and after can change
            if np.array_equal(storage.buffer[: storage.origin], storage.pattern[: storage.origin]) and np.array_equal(
                storage.buffer[end:], storage.pattern[end:]
            ):
                return
            changed = storage.buffer != storage.pattern
            changed[storage.origin : end] = False
        else:
            changed = (storage.buffer != storage.pattern) & ~storage.covered
            if not changed.any():
                return
        positions = np.flatnonzero(changed)
        address = storage.low + int(positions[0]) - storage.origin
        view = min(storage.views, key=lambda v: _distance(v.original, address))
        size = view.original.element_size()
        offset = (address - view.original.data_ptr()) // size
        raise MemoryViolation(
            kernel=kernel,
            argument=view.argument,
            kind="store",
            offset=offset,
            extent=span_elements(view.original),
            tensor=describe(view.original),
            lanes=len(np.unique(positions // size)),
            detected_by="guard zone",
        )


def _dense(storage: _Storage) -> bool:
    """True when one view's elements fill its whole span, gap-free (a contiguous tensor)."""
    t = storage.views[0].original
    return (
        len(storage.views) == 1
        and t.numel() * t.element_size() == storage.length
        and _non_overlapping(t.shape, t.stride())
    )


def _covered(storage: _Storage, starts: list[int], origin: int, total: int) -> np.ndarray:
    """The buffer's bytes that belong to some view's elements."""
    covered = np.zeros(total, dtype=np.uint8)
    for view, start in zip(storage.views, starts):
        t = view.original
        size = t.element_size()
        first = origin + start - storage.low
        if _non_overlapping(t.shape, t.stride()):
            elements = np.lib.stride_tricks.as_strided(
                covered[first:].view(_INT_VIEW[size]), t.shape, [stride * size for stride in t.stride()]
            )
            elements[...] = -1 if size > 1 else 0xFF  # every byte of the element nonzero
        else:  # an overlapping layout: count its whole span as its own
            covered[first : first + span_elements(t) * size] = 1
    return covered != 0


def _distance(tensor: torch.Tensor, address: int) -> int:
    start = tensor.data_ptr()
    end = start + span_elements(tensor) * tensor.element_size()
    if address < start:
        return start - address
    return max(0, address - end + 1)
