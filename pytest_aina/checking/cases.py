"""Turning a :class:`~pytest_aina.spec.model.Case` into real tensors, the way kernels break.

Inputs are generated on the CPU from the case's seed (so a case reproduces bit for bit on
any machine) and then moved to the device. Layouts are real strided views:

* ``sliced``: the tensor is a view into a wider buffer whose padding holds NaN, so a kernel
  whose mask lets it read past the end of a row produces NaN and is caught;
* ``transposed``: the last dim is not unit-stride (a transposed view of a contiguous
  buffer; a strided view for 1-D inputs).

Value kinds aim at known failure modes: ``large`` magnitudes (overflow in ``exp`` or in
``x*x`` without fp32 accumulation), ``small`` ones (epsilon handling, subnormals),
``ties`` (constant rows, zero variance, equal maxima), all-``negative`` rows (a running max
started at 0 instead of -inf) and ``mixed`` scales.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from pytest_aina.spec.model import Case, Input, Spec

#: Scale of "large" values per dtype: big enough to overflow naive arithmetic, small
#: enough that the inputs themselves are representable.
_LARGE = {"float32": 1e4, "float16": 1e3, "bfloat16": 1e4}


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def shape_of(inp: Input, case: Case) -> list[int]:
    dims = case.dim_map
    shape = [dims[d] for d in inp.shape]
    if inp.batch_dims and case.batch:
        shape = list(case.batch) + shape[1:]
    return shape


def _values(kind: str, shape: list[int], dtype: str, gen) -> "Any":
    import torch

    n = math.prod(shape)
    if kind == "normal":
        v = torch.randn(n, generator=gen)
    elif kind == "large":
        v = torch.randn(n, generator=gen) * _LARGE[dtype]
    elif kind == "small":
        v = torch.randn(n, generator=gen) * 1e-4
    elif kind == "ties":
        # a few distinct values, and the last row entirely constant: equal maxima,
        # zero variance, the cases where a kernel divides by ~0 or picks one of many maxima.
        v = torch.randint(-2, 3, (n,), generator=gen).float()
        last = shape[-1] if shape else 1
        v[-last:] = 1.5
    elif kind == "negative":
        # far enough below 0 that exp(x) underflows: a running max started at 0 gives 0/0
        v = -(torch.rand(n, generator=gen) * 100 + 90)
    elif kind == "mixed":
        v = torch.randn(n, generator=gen) * torch.pow(10.0, torch.rand(n, generator=gen) * 6 - 3)
    else:  # pragma: no cover - the schema forbids it
        raise ValueError(f"unknown value kind {kind!r}")
    return v.reshape(shape)


@dataclass
class Inputs:
    """Materialised inputs: the tensors passed to the kernel, and the buffers behind them
    (so a check can see writes into padding a view does not show)."""

    tensors: dict[str, Any]
    buffers: dict[str, Any] = field(default_factory=dict)

    def clone(self) -> "Inputs":
        """Same values, same strides, new memory."""
        import torch

        tensors, buffers = {}, {}
        for name, t in self.tensors.items():
            buf = self.buffers[name].clone()
            tensors[name] = torch.as_strided(buf, t.shape, t.stride(), t.storage_offset() - self.buffers[name].storage_offset())
            buffers[name] = buf
        return Inputs(tensors, buffers)

    def snapshot(self) -> dict[str, Any]:
        return {name: buf.clone() for name, buf in self.buffers.items()}


def make_inputs(spec: Spec, case: Case, dev: str = "cpu") -> Inputs:
    """Build the inputs of ``case`` for ``spec`` on ``dev``, deterministically from the seed."""
    import torch

    tensors, buffers = {}, {}
    for i, inp in enumerate(spec.inputs):
        dtype = inp.dtype or case.dtype
        shape = shape_of(inp, case)
        gen = torch.Generator().manual_seed((case.seed * 1_000_003 + i) % 2**63)
        kind = case.values if case.values in inp.values else inp.values[0]
        values = _values(kind, shape, dtype, gen).to(torch_dtype(dtype))
        layout = case.layout if case.layout in inp.layouts else "contiguous"
        buf, view = _layout(layout, shape, torch_dtype(dtype), dev)
        view.copy_(values.to(dev))
        tensors[inp.name], buffers[inp.name] = view, buf
    return Inputs(tensors, buffers)


def _layout(layout: str, shape: list[int], dtype, dev: str):
    import torch

    if layout == "sliced" and shape:
        pad = max(1, shape[-1] // 3) + 1
        buf = torch.full(shape[:-1] + [shape[-1] + pad], float("nan"), dtype=dtype, device=dev)
        return buf, buf[..., : shape[-1]]
    if layout == "transposed" and len(shape) >= 2:
        buf = torch.empty(shape[:-2] + [shape[-1], shape[-2]], dtype=dtype, device=dev)
        return buf, buf.transpose(-1, -2)
    if layout == "transposed" and len(shape) == 1:
        buf = torch.full([2 * shape[0]], float("nan"), dtype=dtype, device=dev)
        return buf, buf[::2]
    buf = torch.empty(shape, dtype=dtype, device=dev)
    return buf, buf


def call(fn: Callable, spec: Spec, inputs: Inputs):
    with warnings.catch_warnings():
        # Triton's interpreter runs kernels in numpy, which warns on overflow or 0/0; the
        # output is judged against the reference anyway, and under -W error the warning
        # would replace that clear verdict with an exception from inside numpy.
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*inputs.tensors.values(), **spec.args)
