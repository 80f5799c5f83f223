"""Relations between inputs: how one input is drawn from the others.

A relation is named and takes parameters, like an invariant; an input lists the relations
it is drawn with (``relations: [{argmax_of: {input: logits, margin: 8}}]``) and they are
applied in order, after every input has been drawn on its own, each to a ``frequency`` of
the rows, so they compose. The spec schema takes each relation's parameter schema from
:data:`REGISTRY`; the checking layer calls :meth:`RelationDef.apply`. Torch is imported
only when a relation is applied: specs are read where torch is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_FREQUENCY = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": 1,
    "description": "Fraction of rows drawn this way (default 1).",
}


@dataclass(frozen=True)
class RelationDef:
    """``apply(tensors, name, params, gen)`` changes ``tensors[name]`` (and may change the
    input it relates to) in place; ``shape_issue(shapes, name, params)`` says why the
    shapes cannot relate, or None."""

    name: str
    params: dict
    apply: Callable[[dict, str, dict, Any], None]
    shape_issue: Callable[[dict, str, dict], str | None]
    description: str

    def inputs(self, params: dict) -> tuple[str, ...]:
        """The other inputs this relation reads or writes."""
        return (params["input"],)


def _rows(gen, n: int, frequency: float):
    import torch

    return torch.rand(n, generator=gen) < frequency


def _argmax_apply(tensors: dict, name: str, params: dict, gen) -> None:
    """Targets are the arg-max of their logits' row, by ``margin`` over the runner-up:
    confident predictions, where p(target) is within rounding of 1."""
    import torch

    target, logits = tensors[name], tensors[params["input"]]
    n = logits.shape[-1]
    if target.numel() == 0 or n == 0:
        return
    flat_t = target.reshape(-1)
    pick = _rows(gen, flat_t.numel(), float(params.get("frequency", 1.0)))
    values = logits.detach().to("cpu", torch.float32).reshape(-1, n)
    best = values.argmax(dim=-1)
    others = values.clone()
    others[torch.arange(values.shape[0]), best] = float("-inf")
    runner_up = others.max(dim=-1).values if n > 1 else values[:, 0]
    raised = values.clone()
    raised[torch.arange(values.shape[0]), best] = runner_up + float(params["margin"]) if n > 1 else values[:, 0]
    new_logits = torch.where(pick[:, None], raised, values)
    new_target = torch.where(pick, best, flat_t.to("cpu", torch.int64))
    # Written back through the views, so sliced and transposed layouts keep their strides.
    logits.copy_(new_logits.reshape(logits.shape).to(logits.dtype))
    target.copy_(new_target.reshape(target.shape).to(target.dtype))


def _argmax_shapes(shapes: dict, name: str, params: dict) -> str | None:
    other = params["input"]
    if tuple(shapes[name]) != tuple(shapes[other][:-1]):
        return f"argmax_of needs {name}'s shape to be {other}'s without its last dim ({list(shapes[other][:-1])})"
    return None


REGISTRY: dict[str, RelationDef] = {
    d.name: d
    for d in (
        RelationDef(
            "argmax_of",
            {
                "type": "object",
                "required": ["input", "margin"],
                "additionalProperties": False,
                "properties": {
                    "input": {"type": "string"},
                    "margin": {"type": "number", "minimum": 0},
                    "frequency": _FREQUENCY,
                },
            },
            _argmax_apply,
            _argmax_shapes,
            "Each element is the arg-max of its row of `input`, which is raised `margin` above the runner-up.",
        ),
    )
}


def schema() -> dict:
    """One relation as a spec writes it: a mapping of one name to its parameters."""
    return {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {d.name: d.params | {"description": d.description} for d in REGISTRY.values()},
    }
