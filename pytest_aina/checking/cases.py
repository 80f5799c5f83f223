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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_aina.spec.model import Case, Input, Spec, evaluate

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


def _values(kind: str, shape: list[int], dtype: str, gen, scale: float = 1.0) -> Any:
    import torch

    n = math.prod(shape)
    if kind == "normal":
        v = torch.randn(n, generator=gen) * scale
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


#: What fills the padding of an integer input's sliced buffer (NaN for floats): far outside
#: any range a spec gives, so a kernel reading it indexes out of bounds or is caught.
_INT_PAD = -(2**30)


def _int_values(inp: Input, case: Case, shape: list[int], gen) -> Any:
    import torch

    names = case.dim_map
    lo, hi = (int(evaluate(b, names)) if isinstance(b, str) else int(b) for b in inp.range)
    n = math.prod(shape)
    if hi <= lo:
        return torch.full((n,), lo, dtype=torch.int64).reshape(shape)
    return torch.randint(lo, hi, (n,), generator=gen).reshape(shape)


def _apply_sentinel(inp: Input, case: Case, t, gen, value: int) -> None:
    """Sentinels (``ignore_index``) at the input's frequency; whole rows too, so a row with
    every element ignored is drawn (for a 1-D input the whole tensor: sentinels=all)."""
    import torch

    if inp.sentinel is None or case.sentinels == "none" or t.numel() == 0:
        return
    if case.sentinels == "all":
        t.fill_(value)
        return
    flat = torch.rand(t.shape, generator=gen) < inp.sentinel.frequency
    if t.dim() >= 2:
        rows = torch.rand(t.shape[:-1], generator=gen) < inp.sentinel.frequency
        flat |= rows[..., None]
    cur = t.to("cpu")
    t.copy_(torch.where(flat, torch.full_like(cur, value), cur))


@dataclass
class Inputs:
    """Materialised inputs: the tensors passed to the kernel, and the buffers behind them
    (so a check can see writes into padding a view does not show)."""

    tensors: dict[str, Any]
    buffers: dict[str, Any] = field(default_factory=dict)

    def clone(self) -> Inputs:
        """Same values, same strides, new memory."""
        import torch

        tensors, buffers = {}, {}
        for name, t in self.tensors.items():
            buf = self.buffers[name].clone()
            tensors[name] = torch.as_strided(
                buf, t.shape, t.stride(), t.storage_offset() - self.buffers[name].storage_offset()
            )
            buffers[name] = buf
        return Inputs(tensors, buffers)

    def snapshot(self) -> dict[str, Any]:
        return {name: buf.clone() for name, buf in self.buffers.items()}


def make_inputs(spec: Spec, case: Case, dev: str = "cpu") -> Inputs:
    """Build the inputs of ``case`` for ``spec`` on ``dev``, deterministically from the seed."""
    import torch

    tensors, buffers = {}, {}
    for i, inp in enumerate(spec.inputs):
        dtype = inp.dtype_for(case)
        shape = shape_of(inp, case)
        gen = torch.Generator().manual_seed((case.seed * 1_000_003 + i) % 2**63)
        if inp.integer:
            values = _int_values(inp, case, shape, gen).to(torch_dtype(dtype))
        else:
            kind = case.values if case.values in inp.values else inp.values[0]
            values = _values(kind, shape, dtype, gen, inp.scale).to(torch_dtype(dtype))
        layout = case.layout if case.layout in inp.layouts else "contiguous"
        buf, view = _layout(layout, shape, torch_dtype(dtype), dev)
        view.copy_(values.to(dev))
        tensors[inp.name], buffers[inp.name] = view, buf
    # Relations and sentinels come after every input is drawn on its own: a relation reads
    # (and may adjust) another input, and an ignored element stays ignored whatever drew it.
    for i, inp in enumerate(spec.inputs):
        gen = torch.Generator().manual_seed((case.seed * 1_000_003 + 7919 + i) % 2**63)
        for rel in inp.relations:
            rel.definition.apply(tensors, inp.name, rel.params, gen)
        if inp.sentinel is not None:
            _apply_sentinel(inp, case, tensors[inp.name], gen, inp.sentinel.value_for(spec.args_for(case)))
    return Inputs(tensors, buffers)


def upstream(spec: Spec, case: Case, refs: list, dev: str) -> list:
    """One upstream gradient per output, drawn like an input (never all ones): the value
    kind and layout of the case where ``upstream`` allows them."""
    import torch

    out = []
    for i, r in enumerate(refs):
        shape = list(r.shape)
        gen = torch.Generator().manual_seed((case.seed * 1_000_003 + 104729 + i) % 2**63)
        kind = case.values if case.values in spec.upstream_values else spec.upstream_values[0]
        dtype = str(r.dtype).removeprefix("torch.")
        values = _values(kind, shape, dtype if dtype in _LARGE else "float32", gen).to(r.dtype)
        layout = case.layout if case.layout in spec.upstream_layouts else "contiguous"
        _, view = _layout(layout, shape, r.dtype, dev)
        view.copy_(values.to(dev))
        out.append(view)
    return out


def _layout(layout: str, shape: list[int], dtype, dev: str):
    import torch

    fill = float("nan") if dtype.is_floating_point else _INT_PAD
    if layout == "sliced" and shape:
        pad = max(1, shape[-1] // 3) + 1
        buf = torch.full(shape[:-1] + [shape[-1] + pad], fill, dtype=dtype, device=dev)
        return buf, buf[..., : shape[-1]]
    if layout == "transposed" and len(shape) >= 2:
        buf = torch.empty(shape[:-2] + [shape[-1], shape[-2]], dtype=dtype, device=dev)
        return buf, buf.transpose(-1, -2)
    if layout == "transposed" and len(shape) == 1:
        buf = torch.full([2 * shape[0]], fill, dtype=dtype, device=dev)
        return buf, buf[::2]
    buf = torch.empty(shape, dtype=dtype, device=dev)
    return buf, buf


def call(fn: Callable, spec: Spec, inputs: Inputs, case: Case | None = None, tensors: dict | None = None):
    """Call ``fn`` the way its kind is called: a plain function with the tensors in order
    and the args as keywords; a ``torch.autograd.Function`` with ``apply`` (positional
    only: the args follow the tensors in spec order); an ``nn.Module`` class built with the
    args, then called with the tensors, those named like its parameters bound to them."""
    tensors = inputs.tensors if tensors is None else tensors
    args = spec.args_for(case) if case is not None else spec.args
    with warnings.catch_warnings():
        # Triton's interpreter runs kernels in numpy, which warns on overflow or 0/0; the
        # output is judged against the reference anyway, and under -W error the warning
        # would replace that clear verdict with an exception from inside numpy.
        warnings.simplefilter("ignore", RuntimeWarning)
        if isinstance(fn, type):
            import torch

            if issubclass(fn, torch.autograd.Function):
                return fn.apply(*tensors.values(), *args.values())
            if issubclass(fn, torch.nn.Module):
                return _call_module(fn(**args), tensors, {})
        import torch

        if isinstance(fn, torch.nn.Module):
            return _call_module(fn, tensors, args)
        return fn(*tensors.values(), **args)


def _call_module(module, tensors: dict, kwargs: dict):
    from torch.func import functional_call

    own = dict(module.named_parameters()) | dict(module.named_buffers())
    bound = {k: v for k, v in tensors.items() if k in own}
    rest = tuple(v for k, v in tensors.items() if k not in own)
    return functional_call(module, bound, rest, kwargs)
