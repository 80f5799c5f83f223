"""Triton kernels with their torch references: the system under control.

Every kernel module (``kernels.softmax``, ``kernels.rms_norm``, ``kernels.layer_norm``)
defines ``<name>`` (the public function), ``<name>_generic(..., **config)`` (the kernel with
explicit meta-parameters), ``<name>_reference`` (torch, in float32), ``<name>_dims`` (a
call's named dims, as in the spec) and ``TUNABLES`` (the meta-parameter search space).

The kernels are written for the GPU and know nothing of the test environment. On a machine
without one, whoever runs them chooses Triton's interpreter (``TRITON_INTERPRET=1``) before
they are imported: ``pytest --aina``, ``aina`` and the sandbox do, through
``pytest_aina.checking.device.prepare_runtime()``, which also makes the interpreter compute
as a GPU does (docs/interpreter.md).
"""
