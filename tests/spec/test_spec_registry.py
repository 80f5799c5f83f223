"""The spec layer reads invariants from the registry: a definition added there is in the
schema, loads, and is ratcheted by its own rule, with no other change."""

import pytest
from spec_samples import VALID, variant

from pytest_aina import invariants
from pytest_aina.invariants import InvariantDef
from pytest_aina.invariants.rules import ADDED, REMOVED, WEAKENED, tolerance
from pytest_aina.spec import reader, schema
from pytest_aina.spec.model import parse_spec
from pytest_aina.spec.ratchet import diff_specs


@pytest.fixture
def with_new_invariant(monkeypatch):
    """A definition added to the registry, as a newcomer would add one to the library."""
    new = InvariantDef(
        "max_abs",
        lambda o, p: None,
        params={
            "type": "object",
            "required": ["limit"],
            "additionalProperties": False,
            "properties": {"limit": {"type": "number", "minimum": 0}},
        },
        ratchet={"limit": tolerance(0.0)},
    )
    monkeypatch.setattr(invariants, "REGISTRY", {**invariants.REGISTRY, new.name: new})
    for cached in (schema._document, reader._validator):
        cached.cache_clear()
    yield new
    monkeypatch.undo()
    for cached in (schema._document, reader._validator):
        cached.cache_clear()


def test_a_new_definition_reaches_the_schema_the_loader_and_the_ratchet(with_new_invariant):
    assert "max_abs" in schema.schema()["$defs"]["invariant"]["oneOf"][1]["properties"]
    before = parse_spec(variant("  - non_negative\n", "  - non_negative\n  - max_abs: {limit: 1}\n"), "base.yaml")
    after = parse_spec(variant("  - non_negative\n", "  - non_negative\n  - max_abs: {limit: 2}\n"), "head.yaml")
    assert before.invariants[-2].definition is with_new_invariant
    changes = diff_specs({"softmax": before}, {"softmax": after})
    assert [(c.kind, c.path, c.message) for c in changes] == [
        (WEAKENED, "invariants[max_abs].limit", "max_abs limit loosened")
    ]
    dropped = diff_specs({"softmax": before}, {"softmax": parse_spec(VALID, "head.yaml")})
    assert [(c.kind, c.path) for c in dropped] == [(REMOVED, "invariants[max_abs]")]
    added = diff_specs({"softmax": parse_spec(VALID, "base.yaml")}, {"softmax": after})
    assert [(c.kind, c.path) for c in added] == [(ADDED, "invariants[max_abs]")]
