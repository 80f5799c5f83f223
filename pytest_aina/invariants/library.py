"""The library of named invariants a spec can state, one :class:`InvariantDef` each.

To add one: write its check and its definition here, append it to :data:`LIBRARY`, and
give it a row in the table of ``docs/specs.md``. The spec schema, the loader, the checks
and the ratchet all read it from there. ``python: {check: module:function}`` is the
escape hatch for anything the library does not cover.

Checks import torch when they run, never at import: specs are read where torch is absent.
"""

from __future__ import annotations

from pytest_aina.imports import resolve
from pytest_aina.invariants.base import InvariantDef, Observation
from pytest_aina.invariants.rules import bound, review, target, tolerance

#: The atol of sums_to and mean_zero when a spec gives none (the checks and the ratchet agree on it).
DEFAULT_ATOL = 1e-3


def _dim(params: dict) -> int:
    return int(params.get("dim", -1))


def _by_dim(name: str):
    return lambda params: f"{name}(dim={params.get('dim', -1)})"


def _worst(x, bad, what: str) -> str:
    import torch

    n = int(bad.sum())
    flat = int(torch.nonzero(bad.flatten())[0])
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), x.shape))
    return f"{n} of {x.numel()} elements {what}; first at index {index}: {float(x.flatten()[flat]):.6g}"


def _bits(t):
    import torch

    flat = t.contiguous().view(-1)
    return flat.view(torch.uint8)


# -- checks of the output alone


def close_to_reference(o: Observation, params: dict) -> str | None:
    return o.close(o.out, o.ref)


def non_negative(o: Observation, params: dict) -> str | None:
    y = o.output.float()
    bad = ~(y >= 0)
    return _worst(y, bad, "are negative (or NaN)") if bad.any() else None


def finite(o: Observation, params: dict) -> str | None:
    y = o.output.float()
    bad = ~y.isfinite()
    return _worst(y, bad, "are NaN or infinite") if bad.any() else None


def bounded(o: Observation, params: dict) -> str | None:
    y = o.output.float()
    lo, hi = params.get("min", float("-inf")), params.get("max", float("inf"))
    bad = ~((y >= lo) & (y <= hi))
    return _worst(y, bad, f"are outside [{lo}, {hi}]") if bad.any() else None


def sums_to(o: Observation, params: dict) -> str | None:
    y = o.output.float()
    if y.numel() == 0:
        return None
    s = y.sum(dim=_dim(params))
    value, atol = float(params["value"]), float(params.get("atol", DEFAULT_ATOL))
    bad = ~((s - value).abs() <= atol)
    if not bad.any():
        return None
    return _worst(s, bad, f"of the sums along dim {_dim(params)} are off {value} by more than {atol}")


def mean_zero(o: Observation, params: dict) -> str | None:
    y = o.output.float()
    m = y.mean(dim=_dim(params))
    atol = float(params.get("atol", DEFAULT_ATOL))
    bad = ~(m.abs() <= atol)
    if not bad.any():
        return None
    return _worst(m, bad, f"of the means along dim {_dim(params)} are further than {atol} from 0")


# -- checks of the output against the inputs


def shape_preserved(o: Observation, params: dict) -> str | None:
    y, x = o.output, o.primary
    if tuple(y.shape) == tuple(x.shape):
        return None
    return f"output shape {tuple(y.shape)} != input shape {tuple(x.shape)}"


def dtype_preserved(o: Observation, params: dict) -> str | None:
    y, x = o.output, o.primary
    return None if y.dtype == x.dtype else f"output dtype {y.dtype} != input dtype {x.dtype}"


def _outside_view(buf, view):
    """True for each element of ``buf`` that ``view`` does not show."""
    import torch

    shown = torch.zeros(buf.shape, dtype=torch.bool, device=buf.device)
    torch.as_strided(shown, view.shape, view.stride(), view.storage_offset() - buf.storage_offset()).fill_(True)
    return ~shown


def no_input_mutation(o: Observation, params: dict) -> str | None:
    import torch

    for name, buf in o.buffers.items():
        # Compare bit patterns of the whole buffer (padding included): NaN == NaN here, and
        # a write into a sliced view's padding counts as mutation too.
        if name in o.in_place:
            # Overwritten by design with an output (checked like one); only the rest of
            # its buffer, a sliced view's padding, must stay as it was.
            outside = _outside_view(buf, o.inputs[name])
            old = o.before[name]
            changed = outside & (buf != old) & ~(_isnan(buf) & _isnan(old))
            if changed.any():
                return f"input {name!r} was written outside the output it holds: {_worst(buf, changed, 'changed')}"
            continue
        if not torch.equal(_bits(buf), _bits(o.before[name])):
            changed = (buf.float() != o.before[name].float()) & ~(_isnan(buf) & _isnan(o.before[name]))
            where = _worst(buf, changed, "changed") if changed.any() else "bits changed"
            return f"input {name!r} was modified by the kernel: {where}"
    return None


def _isnan(t):
    return t.isnan() if t.is_floating_point() else t != t


def no_output_aliasing(o: Observation, params: dict) -> str | None:
    outs = o.out if isinstance(o.out, (tuple, list)) else [o.out]
    for i, y in enumerate(outs):
        start, end = y.data_ptr(), y.data_ptr() + y.untyped_storage().nbytes()
        for name, buf in o.buffers.items():
            if o.in_place.get(name) == i:
                continue  # an in-place output lives in its input by design
            b0 = buf.data_ptr()
            b1 = b0 + buf.untyped_storage().nbytes()
            if start < b1 and b0 < end:
                return f"output shares memory with input {name!r}"
    return None


def deterministic(o: Observation, params: dict) -> str | None:
    import torch

    again = o.again()
    a, b = o.output, again[0] if isinstance(again, (tuple, list)) else again
    if a.shape != b.shape or not torch.equal(_bits(a), _bits(b)):
        diff = (a.float() - b.float()).abs().nan_to_num(nan=float("inf"))
        return f"two runs on identical inputs differ: max |run1 - run2| = {float(diff.max()):.6g}"
    return None


# -- the escape hatch


def python(o: Observation, params: dict) -> str | None:
    fn = resolve(params["check"])
    try:
        result = fn(dict(o.inputs), o.out, o.case)
    except AssertionError as exc:
        return str(exc) or f"{params['check']} failed"
    if result is None or result is True:
        return None
    return str(result) if result is not False else f"{params['check']} returned False"


def _python_key(params: dict) -> str:
    return f"python:{params.get('name') or params['check']}"


def _python_label(params: dict) -> str:
    return params.get("name") or params["check"].rsplit(":", 1)[-1]


#: Every invariant, in the order the schema lists them (bare names first, then those with parameters).
LIBRARY: tuple[InvariantDef, ...] = (
    InvariantDef("close_to_reference", close_to_reference),
    InvariantDef("non_negative", non_negative),
    InvariantDef("finite", finite),
    InvariantDef("shape_preserved", shape_preserved),
    InvariantDef("dtype_preserved", dtype_preserved),
    InvariantDef("no_input_mutation", no_input_mutation),
    InvariantDef("no_output_aliasing", no_output_aliasing),
    InvariantDef("deterministic", deterministic),
    InvariantDef(
        "sums_to",
        sums_to,
        params={
            "type": "object",
            "required": ["value"],
            "additionalProperties": False,
            "properties": {
                "value": {"type": "number"},
                "dim": {"type": "integer"},
                "atol": {"type": "number", "minimum": 0},
            },
        },
        identity=("dim",),
        key_of=_by_dim("sums_to"),
        ratchet={
            "atol": tolerance(DEFAULT_ATOL),
            "value": target("sums_to target changed: the old boundary is no longer checked"),
        },
    ),
    InvariantDef(
        "bounded",
        bounded,
        params={
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {"min": {"type": "number"}, "max": {"type": "number"}},
        },
        ratchet={"min": bound("min"), "max": bound("max")},
    ),
    InvariantDef(
        "mean_zero",
        mean_zero,
        params={
            "type": "object",
            "additionalProperties": False,
            "properties": {"dim": {"type": "integer"}, "atol": {"type": "number", "minimum": 0}},
            "description": "Mean along dim is 0 (e.g. LayerNorm without affine).",
        },
        identity=("dim",),
        key_of=_by_dim("mean_zero"),
        ratchet={"atol": tolerance(DEFAULT_ATOL)},
    ),
    InvariantDef(
        "python",
        python,
        params={
            "type": "object",
            "required": ["check"],
            "additionalProperties": False,
            "properties": {"check": {"$ref": "#/$defs/import_path"}, "name": {"type": "string"}},
            "description": "Escape hatch: check(inputs: dict, output, case) raises AssertionError "
            "or returns a message on failure.",
        },
        identity=("name",),
        key_of=_python_key,
        label_of=_python_label,
        ratchet={"check": review("python check now calls another function: needs review")},
    ),
)
