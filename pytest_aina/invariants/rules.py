"""How the ratchet classifies a change of one invariant parameter.

The kinds of boundary change are defined here, below the spec layer, because an
invariant's rule names them; ``pytest_aina.spec.ratchet`` uses the same constants. When in
doubt a rule calls a change a weakening: a new target value is a boundary removed, not one
moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ADDED, TIGHTENED = "added", "tightened"
REMOVED, WEAKENED = "removed", "weakened"
CHANGED = "changed"


@dataclass(frozen=True)
class Move:
    """What one parameter's change did to a boundary: a kind, why, and both values."""

    kind: str
    message: str
    before: Any = None
    after: Any = None


#: ``rule(invariant, parameter, before, after)``; before/after are None where the parameter
#: is not given. Returns None when no boundary moved.
ParamRule = Callable[[str, str, Any, Any], "Move | None"]


def tolerance(default: float) -> ParamRule:
    """An allowance (``atol``): raising it weakens, lowering it tightens; missing = ``default``."""

    def rule(invariant: str, param: str, before: Any, after: Any) -> Move | None:
        b = float(default if before is None else before)
        a = float(default if after is None else after)
        if a > b:
            return Move(WEAKENED, f"{invariant} {param} loosened", b, a)
        if a < b:
            return Move(TIGHTENED, f"{invariant} {param} tightened", b, a)
        return None

    return rule


def target(message: str) -> ParamRule:
    """A value the output must meet: any change drops the old boundary."""

    def rule(invariant: str, param: str, before: Any, after: Any) -> Move | None:
        return Move(WEAKENED, message, before, after) if float(before) != float(after) else None

    return rule


def bound(side: str) -> ParamRule:
    """An optional ``min`` or ``max``: removing it or moving it outwards weakens."""
    wider = (lambda old, new: new < old) if side == "min" else (lambda old, new: new > old)

    def rule(invariant: str, param: str, before: Any, after: Any) -> Move | None:
        if before == after:
            return None
        if after is None:
            return Move(WEAKENED, f"{invariant}: {param} bound removed", before, None)
        if before is None:
            return Move(TIGHTENED, f"{invariant}: {param} bound added", None, after)
        if wider(before, after):
            return Move(WEAKENED, f"{invariant} range widened", before, after)
        return Move(TIGHTENED, f"{invariant} range narrowed", before, after)

    return rule


def review(message: str) -> ParamRule:
    """Neither stronger nor weaker, but a human should look."""

    def rule(invariant: str, param: str, before: Any, after: Any) -> Move | None:
        return Move(CHANGED, message, before, after) if before != after else None

    return rule
