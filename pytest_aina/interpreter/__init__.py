"""A GPU-faithful Triton interpreter and a memory sanitizer for it.

Triton's interpreter (``TRITON_INTERPRET=1``) runs ``@triton.jit`` kernels with numpy on a
CPU. Where it computes differently from a GPU, or lets a stray store crash the process,
CPU testing stops telling the truth about a kernel. ``install()`` patches the interpreter
(never the kernels) so that::

    from pytest_aina import interpreter

    interpreter.install()            # faithful semantics + sanitizer, idempotent
    try:
        with interpreter.case("softmax[bfloat16] M=3 N=70"):
            out = softmax(x)         # an interpreted kernel launch
    except interpreter.MemoryViolation as violation:
        print(violation.kernel, violation.argument, violation.offset, violation.kind)

See ``docs/interpreter.md`` for each deviation fixed, what the sanitizer checks, and how a
harness should isolate the crashes that remain possible. Importing this package does not
import Triton, torch or numpy; ``install()`` does.
"""

from pytest_aina.interpreter.installation import (
    TESTED_TRITON_VERSIONS,
    UntestedTritonWarning,
    faithful,
    install,
    installed,
    raw,
    sanitizing,
    supported,
    uninstall,
)
from pytest_aina.interpreter.violations import MemoryViolation, announce_cases, case, current_case

__all__ = [
    "TESTED_TRITON_VERSIONS",
    "MemoryViolation",
    "UntestedTritonWarning",
    "announce_cases",
    "case",
    "current_case",
    "faithful",
    "install",
    "installed",
    "raw",
    "sanitizing",
    "supported",
    "uninstall",
]
