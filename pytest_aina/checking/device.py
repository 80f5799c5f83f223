"""Where kernels run, and making Triton usable there.

Kept apart from the inputs (``cases``): choosing the device has a side effect on the
process (Triton's interpreter is switched on before any kernel is defined), which every
entry point (the plugin, ``aina eval``, the Changer, generated tests) must do first.
"""

from __future__ import annotations

import os


def device() -> str:
    """The device kernels run on: CUDA when present, else the CPU (Triton interpreter)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def prepare_runtime() -> str:
    """Pick the device and make Triton usable on it; returns ``"cuda"`` or ``"cpu"``.

    On a machine without a GPU, Triton kernels only run in its interpreter, which
    ``@triton.jit`` chooses when the kernel is *defined*: the variable must be set before
    any kernel module is imported, which is why this runs before resolving a spec's
    implementation.
    """
    dev = device()
    if dev == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    return dev
