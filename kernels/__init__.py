"""Triton kernels with their torch references: the system under control.

Every kernel module (``kernels.softmax``, ``kernels.rms_norm``, ``kernels.layer_norm``)
defines ``<name>`` (the public function), ``<name>_generic(..., **config)`` (the kernel with
explicit meta-parameters), ``<name>_reference`` (torch, in float32), ``<name>_dims`` (a
call's named dims, as in the spec) and ``TUNABLES`` (the meta-parameter search space).

Choosing Triton's backend
-------------------------
On a machine without a CUDA GPU, Triton kernels only run in Triton's interpreter. In
triton 3.9, ``@triton.jit`` reads ``TRITON_INTERPRET`` (``triton.knobs.runtime.interpret``,
re-read from the environment on every use) at the moment it *decorates* a function, i.e.
when a kernel module's body runs, and returns an ``InterpretedFunction`` instead of a
``JITFunction``. That choice is fixed per kernel: setting the variable after a kernel
module was imported changes nothing for it, while importing ``triton`` itself earlier is
harmless. Python runs this file before any ``kernels.*`` submodule, so setting the
variable here, when it is unset and torch sees no GPU, makes importing any kernel module
on a CPU-only machine just work. An explicit value (even ``0``) is respected.
"""

import os


def _use_interpreter_without_gpu() -> None:
    if "TRITON_INTERPRET" in os.environ:
        return
    import torch  # only when the choice is ours to make

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


_use_interpreter_without_gpu()
