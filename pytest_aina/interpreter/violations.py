"""What the sanitizer reports: one exception type, and the case it is attributed to.

Kept free of Triton and numpy so that a harness can ``except MemoryViolation`` (and a
sandbox can pickle one across a process boundary) without importing either.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

_CASE: contextvars.ContextVar[str | None] = contextvars.ContextVar("aina_interpreter_case", default=None)
_ANNOUNCE: Callable[[str], None] | None = None


def announce_cases(send: Callable[[str], None] | None) -> None:
    """Have every :func:`case` block pass its description to ``send`` before its body runs
    (``None`` stops it). A harness that runs kernels in a worker process uses it to know the
    case in flight when the worker dies: the crash leaves no exception to carry the case."""
    global _ANNOUNCE
    _ANNOUNCE = send


@contextlib.contextmanager
def case(description: str) -> Iterator[None]:
    """Attribute every :class:`MemoryViolation` raised inside the block to ``description``
    (e.g. ``"softmax property[bfloat16] M=3 N=70 seed=1"``): the harness knows the case,
    the kernel launch deep below it does not."""
    token = _CASE.set(description)
    if _ANNOUNCE is not None:
        _ANNOUNCE(description)
    try:
        yield
    finally:
        _CASE.reset(token)


def current_case() -> str | None:
    """The case set by the innermost :func:`case` block, if any."""
    return _CASE.get()


class MemoryViolation(Exception):
    """A load or store of an interpreted kernel outside the tensors it was given.

    Raised by the sanitizer instead of letting the access corrupt memory or crash the
    process. The attributes say what a fix needs: ``kernel`` (name), ``location`` (the
    kernel's file:line of the access, when known), ``argument`` (the pointer argument whose
    tensor the pointer was derived from), ``kind`` (``"load"``, ``"store"`` or ``"atomic"``),
    ``offset`` (the first offending element, counted from the argument's first element;
    negative before it), ``extent`` (how many elements the tensor spans), ``lanes`` (how
    many active lanes of the access were out of bounds), ``program`` (the program id),
    ``detected_by`` (``"address check"`` or ``"guard zone"``) and ``case``.
    """

    def __init__(
        self,
        *,
        kernel: str,
        argument: str,
        kind: str,
        offset: int,
        extent: int,
        tensor: str = "",
        lanes: int = 1,
        program: tuple[int, ...] | None = None,
        location: str | None = None,
        detected_by: str = "address check",
        case: str | None = None,
    ) -> None:
        self.kernel = kernel
        self.argument = argument
        self.kind = kind
        self.offset = offset
        self.extent = extent
        self.tensor = tensor
        self.lanes = lanes
        self.program = program
        self.location = location
        self.detected_by = detected_by
        self.case = case if case is not None else current_case()
        super().__init__(self._message())

    def __reduce__(self):
        # keyword-only __init__: pickling (the sandbox's pipe) must pass the fields by name
        return _rebuild, (self.fields(),)

    def fields(self) -> dict:
        """The finding as plain data (for a JSON report or a message across processes)."""
        return {
            "kernel": self.kernel,
            "argument": self.argument,
            "kind": self.kind,
            "offset": self.offset,
            "extent": self.extent,
            "tensor": self.tensor,
            "lanes": self.lanes,
            "program": self.program,
            "location": self.location,
            "detected_by": self.detected_by,
            "case": self.case,
        }

    def _message(self) -> str:
        where = f" at {self.location}" if self.location else ""
        program = f", program {self.program}" if self.program is not None else ""
        if self.offset < 0:
            relative = "before its first element"
        elif self.offset >= self.extent:
            relative = "past its end"
        else:
            relative = "inside its span, in a gap between its elements"
        tensor = f" {self.tensor}" if self.tensor else ""
        count = (
            "element(s) outside the tensors changed"
            if self.detected_by == "guard zone"
            else "active lane(s) out of bounds"
        )
        lanes = f", {self.lanes} {count}" if self.lanes > 1 else ""
        case = f"\n  case: {self.case}" if self.case else ""
        return (
            f"out-of-bounds {self.kind} in kernel {self.kernel}{where}{program}: argument {self.argument!r}"
            f"{tensor} at element offset {self.offset}, {relative} (elements 0..{self.extent - 1}){lanes}"
            f" [{self.detected_by}]{case}"
        )


def _rebuild(fields: dict) -> MemoryViolation:
    return MemoryViolation(**fields)
