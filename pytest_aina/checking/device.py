"""Where kernels run, and making Triton usable and faithful there.

Kept apart from the inputs (``cases``): choosing the device has a side effect on the
process (Triton's interpreter is switched on before any kernel is defined, and patched to
compute as a GPU does), which every entry point (the plugin, ``aina eval``, the Changer,
generated tests) must do first. The kernels themselves know nothing of this.
"""

from __future__ import annotations

import os

from pytest_aina import interpreter


def device() -> str:
    """The device kernels run on: CUDA when present, else the CPU (Triton interpreter)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def interpreting() -> bool:
    """True when ``@triton.jit`` will give interpreted functions (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def prepare_runtime(*, sanitize: bool = True) -> str:
    """Pick the device and make Triton usable and faithful on it; returns ``"cuda"`` or ``"cpu"``.

    On a machine without a GPU, Triton kernels only run in its interpreter, which
    ``@triton.jit`` chooses when the kernel is *defined*: the variable must be set before
    any kernel module is imported, which is why this runs before resolving a spec's
    implementation. An explicit ``TRITON_INTERPRET`` (even ``0``) is respected.

    Whenever kernels will be interpreted, the interpreter is patched to GPU semantics
    (:mod:`pytest_aina.interpreter`, ``docs/interpreter.md``) and, with ``sanitize``, every
    load and store is checked against the tensors the kernel was given. The patches apply to
    the interpreter's classes, so kernels defined before this call are covered too.
    """
    dev = device()
    if dev == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if interpreting():
        interpreter.install(sanitize=sanitize)
    return dev
