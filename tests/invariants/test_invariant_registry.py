"""The registry: each invariant one definition, with its parameters' schema and ratchet rules."""

import jsonschema
import pytest

from pytest_aina import invariants
from pytest_aina.invariants import InvariantDef
from pytest_aina.invariants.rules import CHANGED, TIGHTENED, WEAKENED, bound, review, target, tolerance
from pytest_aina.spec import schema
from pytest_aina.spec.model import Invariant


def test_every_parameter_schema_is_valid_json_schema():
    defs = {"import_path": schema.schema()["$defs"]["import_path"]}
    for d in invariants.REGISTRY.values():
        if d.params is not None:
            jsonschema.Draft202012Validator.check_schema({"$defs": defs, **d.params})
            assert d.params["type"] == "object", d.name


def test_identity_parameters_are_parameters():
    for d in invariants.REGISTRY.values():
        declared = set((d.params or {}).get("properties", {}))
        assert set(d.identity) <= declared, d.name
        assert set(d.ratchet) <= declared, d.name


def test_keys_and_labels():
    assert Invariant("finite").key == Invariant("finite").label == "finite"
    assert Invariant("sums_to", {"value": 1}).key == "sums_to(dim=-1)"
    assert Invariant("mean_zero", {"dim": 0}).key == "mean_zero(dim=0)"
    named = Invariant("python", {"check": "pkg.checks:rows_sorted", "name": "sorted"})
    assert (named.key, named.label) == ("python:sorted", "sorted")
    unnamed = Invariant("python", {"check": "pkg.checks:rows_sorted"})
    assert (unnamed.key, unnamed.label) == ("python:pkg.checks:rows_sorted", "rows_sorted")


def test_an_unknown_name_says_which_are_known():
    with pytest.raises(KeyError, match="unknown invariant 'sum_to'; known: close_to_reference, "):
        invariants.get("sum_to")


@pytest.mark.parametrize(
    "rule, before, after, expected",
    [
        (tolerance(1e-3), None, None, None),
        (tolerance(1e-3), None, 1e-3, None),
        (tolerance(1e-3), None, 1e-2, (WEAKENED, "inv p loosened", 1e-3, 1e-2)),
        (tolerance(1e-3), 1e-2, None, (TIGHTENED, "inv p tightened", 1e-2, 1e-3)),
        (target("moved"), 1, 1.0, None),
        (target("moved"), 1, 2, (WEAKENED, "moved", 1, 2)),
        (target("moved"), 2, 1, (WEAKENED, "moved", 2, 1)),
        (bound("min"), 0, 0, None),
        (bound("min"), 0, None, (WEAKENED, "inv: p bound removed", 0, None)),
        (bound("min"), None, 0, (TIGHTENED, "inv: p bound added", None, 0)),
        (bound("min"), 0, -1, (WEAKENED, "inv range widened", 0, -1)),
        (bound("min"), 0, 1, (TIGHTENED, "inv range narrowed", 0, 1)),
        (bound("max"), 1, 2, (WEAKENED, "inv range widened", 1, 2)),
        (bound("max"), 1, 0.5, (TIGHTENED, "inv range narrowed", 1, 0.5)),
        (review("look"), "a:b", "a:b", None),
        (review("look"), "a:b", "a:c", (CHANGED, "look", "a:b", "a:c")),
    ],
)
def test_parameter_rules(rule, before, after, expected):
    move = rule("inv", "p", before, after)
    assert (move and (move.kind, move.message, move.before, move.after)) == expected


def test_compare_runs_the_rules_in_order_then_flags_other_parameters():
    d = InvariantDef(
        "thing",
        lambda o, p: None,
        params={"type": "object"},
        identity=("dim",),
        ratchet={"atol": tolerance(1.0), "value": target("value moved")},
    )
    moves = d.compare({"atol": 2, "value": 1, "dim": 0, "z": 1, "a": 1}, {"value": 2, "dim": 1, "z": 2, "a": 2})
    assert [(p, m.kind, m.message) for p, m in moves] == [
        ("atol", TIGHTENED, "thing atol tightened"),
        ("value", WEAKENED, "value moved"),
        ("a", CHANGED, "thing parameter a changed: needs review"),
        ("z", CHANGED, "thing parameter z changed: needs review"),
    ]
