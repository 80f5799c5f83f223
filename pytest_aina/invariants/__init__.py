"""The registry of invariants: each one a single :class:`InvariantDef` in ``library``.

The spec schema, the spec loader, the checks and the ratchet all look invariants up here,
so an invariant is defined in one place (plus its row in ``docs/specs.md``)::

    from pytest_aina import invariants

    definition = invariants.get("sums_to")
    definition.params                     # the JSON Schema of its parameters
    definition.key({"value": 1})          # 'sums_to(dim=-1)': how the ratchet matches it
    definition.check(observation, params) # None, or how the output breaks it
"""

from __future__ import annotations

from pytest_aina.invariants.base import InvariantDef, Observation
from pytest_aina.invariants.library import DEFAULT_ATOL, LIBRARY

__all__ = ["DEFAULT_ATOL", "REGISTRY", "InvariantDef", "Observation", "get"]

REGISTRY: dict[str, InvariantDef] = {d.name: d for d in LIBRARY}


def get(name: str) -> InvariantDef:
    """The definition of invariant ``name``; a KeyError names the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown invariant {name!r}; known: {', '.join(REGISTRY)}") from None
