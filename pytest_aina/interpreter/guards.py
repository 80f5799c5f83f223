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

The kernel sees the same shapes, strides and values; only the addresses differ.
"""

from __future__ import annotations

import dataclasses

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
_FLOAT_PATTERNS = {torch.float32: (torch.int32, 0x7FE5A5A5), torch.float16: (torch.int16, 0x7E5A),
                   torch.bfloat16: (torch.int16, 0x7FE5), torch.float64: (torch.int64, 0x7FFA5A5A5A5A5A5A)}
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


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
    buffer: torch.Tensor | None = None  # the relocated bytes, guards included
    origin: int = 0  # index in ``buffer`` of the original's byte ``low``
    pattern: torch.Tensor | None = None
    covered: torch.Tensor | None = None  # bytes that belong to some view's elements


def _byte_view(tensor: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """The bytes [start, start + length) of ``tensor``'s storage, as a uint8 tensor."""
    out = torch.empty(0, dtype=torch.uint8, device=tensor.device)
    return out.set_(tensor.untyped_storage(), start, (length,), (1,))


def _non_overlapping(tensor: torch.Tensor) -> torch.Tensor | None:
    """``tensor`` with broadcast (stride-0) dims cut to one element, if what is left has no
    two elements at one address; None for a layout that overlaps otherwise."""
    for dim, (size, stride) in enumerate(zip(tensor.shape, tensor.stride())):
        if stride == 0 and size > 1:
            tensor = tensor.narrow(dim, 0, 1)
    reach = 0
    dims = sorted(((abs(st), s) for s, st in zip(tensor.shape, tensor.stride()) if s > 1))
    for stride, size in dims:
        if stride <= reach:
            return None
        reach += (size - 1) * stride
    return tensor


class GuardZones:
    """The relocated arguments of one launch."""

    def __init__(self) -> None:
        self._storages: dict[tuple, _Storage] = {}
        self._shadow_of: dict[int, torch.Tensor] = {}

    # -- before the launch -----------------------------------------------------------------

    def relocate(self, named_args: dict[str, object]) -> dict[str, object]:
        """``named_args`` with every tensor (also inside tuples and ``triton.reinterpret``
        wrappers) replaced by its relocated copy."""
        for name, value in named_args.items():
            self._collect(name, value)
        with torch.no_grad():
            for storage in self._storages.values():
                self._relocate(storage)
        return {name: self._substitute(value) for name, value in named_args.items()}

    def _collect(self, name: str, value) -> None:
        if isinstance(value, TensorWrapper):
            self._collect(name, value.base)
        elif isinstance(value, torch.Tensor):
            if span_elements(value) == 0:
                return
            key = (value.device, value.untyped_storage().data_ptr())
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
        ends = [s + span_elements(v.original) * v.original.element_size() for s, v in zip(starts, storage.views)]
        low, high = min(starts), max(ends)
        if high - low > MAX_GUARDED_BYTES:
            return
        first = storage.views[0].original
        device = first.device
        total = GUARD_BYTES + (high - low) + GUARD_BYTES + _ALIGN
        total += -total % _ALIGN
        buffer = torch.empty(total, dtype=torch.uint8, device=device)
        origin = GUARD_BYTES + (low - (buffer.data_ptr() + GUARD_BYTES)) % _ALIGN
        int_dtype, fill = _FLOAT_PATTERNS.get(first.dtype, (torch.uint8, 0xA5))
        buffer.view(int_dtype).fill_(fill)
        pattern = buffer.clone()

        covered = torch.zeros(total, dtype=torch.uint8, device=device)
        for view, start in zip(storage.views, starts):
            size = view.original.element_size()
            offset = (origin + start - low) // size
            view.shadow = torch.as_strided(buffer.view(view.original.dtype), view.original.shape,
                                           view.original.stride(), offset)
            marked = _non_overlapping(torch.as_strided(covered.view(_INT_VIEW[size]), view.original.shape,
                                                       view.original.stride(), offset))
            if marked is None:  # an overlapping layout: count its whole span as its own
                covered[origin + start - low: origin + start - low + span_elements(view.original) * size] = 1
            else:
                marked.fill_(255 if size == 1 else -1)  # every byte of the element nonzero
        covered = covered != 0
        # one copy of the span, then the pattern back over what is no argument's element
        span = buffer[origin: origin + high - low]
        span.copy_(_byte_view(first, low - first.untyped_storage().data_ptr(), high - low))
        buffer[~covered] = pattern[~covered]

        storage.low, storage.high, storage.buffer, storage.origin = low, high, buffer, origin
        storage.pattern, storage.covered = pattern, covered
        for view in storage.views:
            self._shadow_of[id(view.original)] = view.shadow

    # -- after the launch ------------------------------------------------------------------

    def finish(self, kernel: str) -> None:
        """Check every guard byte, then copy the arguments' elements back to the originals.
        Raises MemoryViolation (and copies nothing) if a guard byte changed."""
        for storage in self._storages.values():
            if storage.buffer is not None:
                self._check(storage, kernel)
        with torch.no_grad():
            for storage in self._storages.values():
                if storage.buffer is None:
                    continue
                first = storage.views[0].original
                length = storage.high - storage.low
                covered = storage.covered[storage.origin: storage.origin + length]
                target = _byte_view(first, storage.low - first.untyped_storage().data_ptr(), length)
                target[covered] = storage.buffer[storage.origin: storage.origin + length][covered]

    def _check(self, storage: _Storage, kernel: str) -> None:
        changed = (storage.buffer != storage.pattern) & ~storage.covered
        if not bool(changed.any()):
            return
        positions = torch.nonzero(changed).flatten()
        first_byte = int(positions[0])
        address = storage.low + first_byte - storage.origin
        view = min(storage.views, key=lambda v: _distance(v.original, address))
        size = view.original.element_size()
        offset = (address - view.original.data_ptr()) // size
        lanes = len({int(p) // size for p in positions.tolist()})
        raise MemoryViolation(kernel=kernel, argument=view.argument, kind="store", offset=offset,
                              extent=span_elements(view.original), tensor=describe(view.original), lanes=lanes,
                              detected_by="guard zone")


def _distance(tensor: torch.Tensor, address: int) -> int:
    start = tensor.data_ptr()
    end = start + span_elements(tensor) * tensor.element_size()
    if address < start:
        return start - address
    return max(0, address - end + 1)
