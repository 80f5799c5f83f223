"""What an invariant is: a name, the schema of its parameters, a check and a ratchet rule.

One :class:`InvariantDef` per invariant holds everything the rest of pytest-aina needs to
know about it: the spec schema takes its parameter schema from it, the loader its key and
label, the checking layer its check, the ratchet its rule for a change of parameters. This
package sits below the spec layer and imports neither the spec nor the checking layer: a
check gets what it needs in an :class:`Observation`, filled by the checking layer, with
callables for what only that layer can do (compare within the spec's tolerance, call the
kernel again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_aina.invariants.rules import CHANGED, Move, ParamRule


@dataclass(frozen=True)
class Observation:
    """One call of the kernel on one case, as every check sees it."""

    out: Any  # what the kernel returned
    ref: Any  # what the reference returned, on its own copy of the inputs
    inputs: dict[str, Any]  # the tensors passed, by name, as the kernel left them
    buffers: dict[str, Any]  # the memory behind each of them, padding included
    before: dict[str, Any]  # those buffers as they were before the call
    case: Any  # the spec's case (handed on to ``python`` checks)
    close: Callable[[Any, Any], str | None]  # within the case's tolerance? None, or how far off
    again: Callable[[], Any]  # the kernel called again, on fresh inputs identical to these
    #: inputs the spec says the kernel overwrites with an output: name -> that output's index
    in_place: Mapping[str, int] = field(default_factory=dict)

    @property
    def output(self):
        """The output checks look at: the first one when the kernel returns several."""
        return self.out[0] if isinstance(self.out, (tuple, list)) else self.out

    @property
    def primary(self):
        """The first input: what shape_preserved and dtype_preserved compare with."""
        return next(iter(self.inputs.values()))


Check = Callable[[Observation, dict], "str | None"]


@dataclass(frozen=True)
class InvariantDef:
    """One named invariant a spec can state.

    ``params`` is the JSON Schema of its parameter mapping, or None for an invariant
    written as a bare name. ``check`` returns None when the invariant holds, else a message
    saying how it is broken. ``identity`` names the parameters that say *which* boundary
    this is (``sums_to`` along another dim is another boundary); ``key`` and ``label`` make
    the key the ratchet matches statements by and the name reports use (default: the
    invariant's name). ``ratchet`` classifies a change of each other parameter; a
    parameter it does not list that changes is reported as needing review.
    """

    name: str
    check: Check
    params: dict | None = None
    identity: tuple[str, ...] = ()
    ratchet: Mapping[str, ParamRule] = field(default_factory=dict)
    key_of: Callable[[dict], str] | None = None
    label_of: Callable[[dict], str] | None = None

    def key(self, params: dict) -> str:
        return self.key_of(params) if self.key_of else self.name

    def label(self, params: dict) -> str:
        return self.label_of(params) if self.label_of else self.name

    def compare(self, before: dict, after: dict) -> list[tuple[str, Move]]:
        """``(parameter, move)`` for each parameter whose change moved a boundary or needs a
        look, between two statements of this invariant with the same key."""
        out: list[tuple[str, Move]] = []
        for param, rule in self.ratchet.items():
            move = rule(self.name, param, before.get(param), after.get(param))
            if move is not None:
                out.append((param, move))
        handled = set(self.ratchet) | set(self.identity)
        for param in sorted((set(before) | set(after)) - handled):
            if before.get(param) != after.get(param):
                out.append(
                    (
                        param,
                        Move(
                            CHANGED,
                            f"{self.name} parameter {param} changed: needs review",
                            before.get(param),
                            after.get(param),
                        ),
                    )
                )
        return out
