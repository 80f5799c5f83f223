"""Address checks for interpreted kernels: a memcheck that also knows which argument a
pointer came from.

Each pointer argument of a launch gets a tag (1..255) in the top byte of its 64-bit
address: user-space addresses use 47 bits, so the tag rides through every pointer
operation the kernel does (``ptr + offs``, broadcasts, ``tl.where``, casts to int and back)
for free. Every load, store and atomic strips the tags before memory is touched and checks
each active lane (masked lanes are excluded, as on the GPU) against the span of the tensor
its tag names: from the first element to the end of the last, by shape and strides. A lane
outside raises :class:`MemoryViolation` before the access happens, so an out-of-bounds
store can no longer corrupt the heap and abort the process.

Pointers without a tag (read from memory, e.g. a table of data_ptr()s) are not checked:
their allocation is unknown here.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import triton.language as tl
from triton.runtime import interpreter as _interp

from pytest_aina.interpreter.patching import Patches
from pytest_aina.interpreter.violations import MemoryViolation

_TAG_SHIFT = np.uint64(56)
_ADDRESS_MASK = np.uint64((1 << 56) - 1)
_MAX_TAGS = 255


@dataclasses.dataclass(frozen=True)
class Allocation:
    """The memory one pointer argument may reach: ``[base, end)`` in bytes."""

    argument: str
    base: int
    end: int
    element_size: int
    description: str

    @property
    def extent(self) -> int:
        return (self.end - self.base) // self.element_size


def describe(tensor) -> str:
    """``float32[4, 70] strides (70, 1)``: what a message needs to know about a tensor."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    shape = ", ".join(str(s) for s in tensor.shape)
    return f"{dtype}[{shape}] strides {tuple(tensor.stride())}"


def span_elements(tensor) -> int:
    """Elements from the first to the last one, by shape and strides (0 when empty)."""
    if tensor.numel() == 0:
        return 0
    return 1 + sum((size - 1) * abs(stride) for size, stride in zip(tensor.shape, tensor.stride()))


class Launch:
    """One kernel launch under the sanitizer: its pointer arguments and where it is."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.kernel_name = getattr(kernel, "__name__", str(kernel))
        self.allocations: list[Allocation | None] = [None]  # tag 0: no provenance
        self._base = np.zeros(_MAX_TAGS + 1, dtype=np.uint64)
        self._end = np.zeros(_MAX_TAGS + 1, dtype=np.uint64)

    def tag(self, argument: str, tensor, handle) -> None:
        """Register ``tensor`` (a host tensor the kernel reads through ``handle``) and tag
        the handle's address with it."""
        if len(self.allocations) > _MAX_TAGS:
            return  # more pointer arguments than tags: the rest go unchecked
        size = tensor.element_size()
        base = int(tensor.data_ptr())
        allocation = Allocation(argument, base, base + span_elements(tensor) * size, size, describe(tensor))
        tag = len(self.allocations)
        self.allocations.append(allocation)
        self._base[tag], self._end[tag] = allocation.base, allocation.end
        handle.data = handle.data | (np.uint64(tag) << _TAG_SHIFT)

    def check(self, pointers: np.ndarray, mask: np.ndarray | None, element_size: int, kind: str) -> np.ndarray:
        """The untagged addresses of ``pointers``; raises MemoryViolation if an active lane
        of a tagged pointer falls outside its argument's span."""
        pointers = np.asarray(pointers, dtype=np.uint64)
        tags = (pointers >> _TAG_SHIFT).astype(np.intp)
        addresses = pointers & _ADDRESS_MASK
        if not tags.any():
            return addresses
        active = np.ones(pointers.shape, dtype=bool) if mask is None else np.broadcast_to(mask, pointers.shape)
        base, end = self._base[tags], self._end[tags]
        inside = (addresses >= base) & (addresses + np.uint64(element_size) <= end)
        bad = active & ~inside & (tags != 0)
        if bad.any():
            raise self._violation(tags, addresses, bad, element_size, kind)
        return addresses

    def _violation(self, tags, addresses, bad, element_size: int, kind: str) -> MemoryViolation:
        lane = tuple(np.argwhere(bad)[0])
        tag = int(tags[lane])
        allocation = self.allocations[tag] if tag < len(self.allocations) else None
        location = _kernel_location()
        program = tuple(_interp.interpreter_builder.grid_idx)
        if allocation is None:
            # the tag itself was overwritten: pointer arithmetic moved the address by > 2**56
            return MemoryViolation(
                kernel=self.kernel_name,
                argument="<unknown: the pointer overflowed>",
                kind=kind,
                offset=0,
                extent=0,
                lanes=int(bad.sum()),
                program=program,
                location=location,
            )
        offset = (int(addresses[lane]) - allocation.base) // allocation.element_size
        return MemoryViolation(
            kernel=self.kernel_name,
            argument=allocation.argument,
            kind=kind,
            offset=offset,
            extent=allocation.extent,
            tensor=allocation.description,
            lanes=int(bad.sum()),
            program=program,
            location=location,
        )


def _kernel_location() -> str | None:
    """file:line of the innermost interpreted @triton.jit frame on the stack (the tl.load or
    tl.store that is being checked), with the function's name when it is a helper."""
    rewritten = {fn.__code__ for fn in _interp.InterpretedFunction.rewritten_fn.values()}
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code in rewritten:
            return f"{frame.f_code.co_filename}:{frame.f_lineno} (in {frame.f_code.co_name})"
        frame = frame.f_back
    return None


#: The launch being interpreted, if the sanitizer is on for it (the interpreter runs one
#: launch at a time: its builder holds the grid position globally).
active: Launch | None = None


def _element_size(pointer_handle) -> int:
    return max(1, pointer_handle.get_element_ty().primitive_bitwidth // 8)


def _checked(pointer_handle, mask_data, kind: str):
    if active is None:
        return pointer_handle
    addresses = active.check(pointer_handle.data, mask_data, _element_size(pointer_handle), kind)
    return _interp.TensorHandle(addresses, pointer_handle.dtype)


def _wrap_load(original):

    def create_masked_load(self, ptrs, mask, other, cache_policy, is_volatile):
        return original(self, _checked(ptrs, mask.data, "load"), mask, other, cache_policy, is_volatile)

    return create_masked_load


def _wrap_store(original):

    def create_masked_store(self, ptrs, value, mask, cache_policy):
        return original(self, _checked(ptrs, mask.data, "store"), value, mask, cache_policy)

    return create_masked_store


def _wrap_atomic_rmw(original):

    def create_atomic_rmw(self, rmwOp, ptr, val, mask, sem, scope):
        return original(self, rmwOp, _checked(ptr, mask.data, "atomic"), val, mask, sem, scope)

    return create_atomic_rmw


def _wrap_atomic_cas(original):

    def create_atomic_cas(self, ptr, cmp, val, sem, scope):
        return original(self, _checked(ptr, None, "atomic"), cmp, val, sem, scope)

    return create_atomic_cas


def install(patches: Patches) -> None:
    """Check every memory access of the builder (a no-op outside a sanitized launch)."""
    builder = _interp.InterpreterBuilder
    patches.setattr(builder, "create_masked_load", _wrap_load(builder.create_masked_load))
    patches.setattr(builder, "create_masked_store", _wrap_store(builder.create_masked_store))
    patches.setattr(builder, "create_atomic_rmw", _wrap_atomic_rmw(builder.create_atomic_rmw))
    patches.setattr(builder, "create_atomic_cas", _wrap_atomic_cas(builder.create_atomic_cas))


def is_pointer(value) -> bool:
    return isinstance(value, tl.tensor) and isinstance(value.type.scalar, tl.pointer_type)
