"""Inputs and comparisons of the widened format, without running a kernel."""

import sys
from pathlib import Path

import torch

from pytest_aina.checking import profiles, strategies
from pytest_aina.checking.cases import make_inputs
from pytest_aina.checking.compare import compare
from pytest_aina.spec.model import Case, Tolerance, parse_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))
import format_specs as S  # noqa: E402

CE = parse_spec(S.CROSS_ENTROPY, "ce.yaml")


def test_integer_targets_in_range_with_sentinels():
    case = Case((("M", 400), ("V", 7)), "float32", seed=3)
    t = make_inputs(CE, case).tensors["target"]
    assert t.dtype == torch.int64
    kept = t[t != -100]
    assert kept.min() >= 0 and kept.max() < 7
    assert 0.1 < (t == -100).float().mean() < 0.4
    every = make_inputs(CE, Case(case.dims, "float32", sentinels="all")).tensors["target"]
    assert (every == -100).all()
    none = make_inputs(CE, Case(case.dims, "float32", sentinels="none")).tensors["target"]
    assert (none != -100).all()
    as32 = make_inputs(CE, Case(case.dims, "float32", input_dtypes=(("target", "int32"),))).tensors["target"]
    assert as32.dtype == torch.int32


def test_argmax_relation_makes_confident_targets():
    spec = parse_spec(
        S.CE_GRAD.replace("RELATIONS", "relations: [{argmax_of: {input: logits, margin: 8.0}}]"), "g.yaml"
    )
    ins = make_inputs(spec, Case((("M", 50), ("V", 30)), "float32", seed=1)).tensors
    logits, target = ins["logits"], ins["target"]
    assert (logits.argmax(-1) == target).all()
    top2 = logits.topk(2, dim=-1).values
    assert ((top2[:, 0] - top2[:, 1]) >= 7.99).all()


def test_case_with_alternatives_round_trips_through_aina_case():
    case = Case(
        (("M", 3), ("V", 9)),
        "bfloat16",
        seed=5,
        args=(("reduction", "sum"),),
        input_dtypes=(("target", "int32"),),
        sentinels="all",
    )
    assert Case.from_arg(case.to_arg()) == case
    old = Case((("M", 3), ("V", 9)), "float32")
    assert old.to_arg() == "M=3,V=9,dtype=float32,layout=contiguous,values=normal,seed=0"


def test_edge_cases_cover_alternatives_sentinels_and_the_budget():
    p = profiles.get("ci")
    cases = strategies.edge_cases(CE, dtype="float32", profile=p)
    assert {dict(c.args).get("reduction", "mean") for c in cases} == {"mean", "sum", "none"}
    assert {c.sentinels for c in cases} == {"some", "none", "all"}
    assert any(dict(c.input_dtypes).get("target") == "int32" for c in cases)
    assert max(c.dim_map["M"] for c in cases) == p.max_rows
    assert max(c.dim_map["M"] * c.dim_map["V"] for c in cases) >= p.max_numel // 2


def test_conditioned_tolerance_follows_the_magnitude():
    ref = torch.tensor([1e-3, 1.0])
    out = torch.tensor([2e-3, 1.0])
    tol = Tolerance(atol=0.0, rtol=1e-3, ctol=1e-4)
    assert compare(out, ref, tol) is not None  # |ref| alone is too small a scale
    assert compare(out, ref, tol, magnitude=torch.tensor([100.0, 1.0])) is None  # the terms were ~100
    m = compare(out, ref, tol, name="loss", magnitude=torch.tensor([1.0, 1.0]))
    assert m is not None and "in loss" in m.describe()
