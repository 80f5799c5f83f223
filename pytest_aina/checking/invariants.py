"""The library of named invariants a spec can state.

Each check receives a :class:`Observation` (the case, its inputs before and after the
call, the output and the reference output) and returns ``None`` when the invariant holds or
a message saying how it is broken. ``python: {check: module:function}`` is the escape hatch
for anything the library does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pytest_aina.checking.cases import Inputs, call, first_tensor, make_inputs, resolve
from pytest_aina.checking.compare import compare
from pytest_aina.spec.model import DEFAULT_INVARIANT_ATOL, Case, Invariant, Spec


@dataclass
class Observation:
    spec: Spec
    case: Case
    inputs: Inputs          # as the kernel left them
    before: dict            # input buffers before the call
    out: Any
    ref: Any
    impl: Callable
    device: str

    @property
    def primary(self):
        return next(iter(self.inputs.tensors.values()))


def _dim(params: dict) -> int:
    return int(params.get("dim", -1))


def _worst(x, bad, what: str) -> str:
    import torch

    n = int(bad.sum())
    flat = int(torch.nonzero(bad.flatten())[0])
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), x.shape))
    return f"{n} of {x.numel()} elements {what}; first at index {index}: {float(x.flatten()[flat]):.6g}"


def close_to_reference(o: Observation, params: dict) -> str | None:
    m = compare(o.out, o.ref, o.spec.tolerance[o.case.dtype])
    return m.describe() if m else None


def non_negative(o: Observation, params: dict) -> str | None:
    y = first_tensor(o.out).float()
    bad = ~(y >= 0)
    return _worst(y, bad, "are negative (or NaN)") if bad.any() else None


def finite(o: Observation, params: dict) -> str | None:
    y = first_tensor(o.out).float()
    bad = ~y.isfinite()
    return _worst(y, bad, "are NaN or infinite") if bad.any() else None


def bounded(o: Observation, params: dict) -> str | None:
    y = first_tensor(o.out).float()
    lo, hi = params.get("min", float("-inf")), params.get("max", float("inf"))
    bad = ~((y >= lo) & (y <= hi))
    return _worst(y, bad, f"are outside [{lo}, {hi}]") if bad.any() else None


def shape_preserved(o: Observation, params: dict) -> str | None:
    y, x = first_tensor(o.out), o.primary
    return None if tuple(y.shape) == tuple(x.shape) else f"output shape {tuple(y.shape)} != input shape {tuple(x.shape)}"


def dtype_preserved(o: Observation, params: dict) -> str | None:
    y, x = first_tensor(o.out), o.primary
    return None if y.dtype == x.dtype else f"output dtype {y.dtype} != input dtype {x.dtype}"


def _bits(t):
    import torch

    flat = t.contiguous().view(-1)
    return flat.view(torch.uint8)


def no_input_mutation(o: Observation, params: dict) -> str | None:
    import torch

    for name, buf in o.inputs.buffers.items():
        # Compare bit patterns of the whole buffer (padding included): NaN == NaN here, and
        # a write into a sliced view's padding counts as mutation too.
        if not torch.equal(_bits(buf), _bits(o.before[name])):
            changed = (buf.float() != o.before[name].float()) & ~(buf.isnan() & o.before[name].isnan())
            where = _worst(buf, changed, "changed") if changed.any() else "bits changed"
            return f"input {name!r} was modified by the kernel: {where}"
    return None


def no_output_aliasing(o: Observation, params: dict) -> str | None:
    outs = o.out if isinstance(o.out, (tuple, list)) else [o.out]
    for y in outs:
        start, end = y.data_ptr(), y.data_ptr() + y.untyped_storage().nbytes()
        for name, buf in o.inputs.buffers.items():
            b0 = buf.data_ptr()
            b1 = b0 + buf.untyped_storage().nbytes()
            if start < b1 and b0 < end:
                return f"output shares memory with input {name!r}"
    return None


def deterministic(o: Observation, params: dict) -> str | None:
    import torch

    again = call(o.impl, o.spec, make_inputs(o.spec, o.case, o.device))
    a, b = first_tensor(o.out), first_tensor(again)
    if a.shape != b.shape or not torch.equal(_bits(a), _bits(b)):
        diff = (a.float() - b.float()).abs().nan_to_num(nan=float("inf"))
        return f"two runs on identical inputs differ: max |run1 - run2| = {float(diff.max()):.6g}"
    return None


def sums_to(o: Observation, params: dict) -> str | None:
    y = first_tensor(o.out).float()
    if y.numel() == 0:
        return None
    s = y.sum(dim=_dim(params))
    value, atol = float(params["value"]), float(params.get("atol", DEFAULT_INVARIANT_ATOL))
    bad = ~((s - value).abs() <= atol)
    return _worst(s, bad, f"of the sums along dim {_dim(params)} are off {value} by more than {atol}") if bad.any() else None


def mean_zero(o: Observation, params: dict) -> str | None:
    y = first_tensor(o.out).float()
    m = y.mean(dim=_dim(params))
    atol = float(params.get("atol", DEFAULT_INVARIANT_ATOL))
    bad = ~(m.abs() <= atol)
    return _worst(m, bad, f"of the means along dim {_dim(params)} are further than {atol} from 0") if bad.any() else None


def python(o: Observation, params: dict) -> str | None:
    fn = resolve(params["check"])
    try:
        result = fn(dict(o.inputs.tensors), o.out, o.case)
    except AssertionError as exc:
        return str(exc) or f"{params['check']} failed"
    if result is None or result is True:
        return None
    return str(result) if result is not False else f"{params['check']} returned False"


CHECKS: dict[str, Callable[[Observation, dict], str | None]] = {
    "close_to_reference": close_to_reference,
    "non_negative": non_negative,
    "finite": finite,
    "bounded": bounded,
    "shape_preserved": shape_preserved,
    "dtype_preserved": dtype_preserved,
    "no_input_mutation": no_input_mutation,
    "no_output_aliasing": no_output_aliasing,
    "deterministic": deterministic,
    "sums_to": sums_to,
    "mean_zero": mean_zero,
    "python": python,
}


def check(inv: Invariant, o: Observation) -> str | None:
    return CHECKS[inv.name](o, inv.params)
