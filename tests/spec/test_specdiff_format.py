"""The ratchet classifies every key of the widened format: adding checks more, removing an
alternative or loosening a tolerance is a weakening."""

import pytest

from pytest_aina.spec.model import parse_spec
from pytest_aina.spec.ratchet import diff_specs

BASE = """\
aina: 1
name: ce
implementation: m:f
reference: m:g
inputs:
  logits: {shape: [M, V]}
  target:
    shape: [M]
    dtypes: [int64, int32]
    range: [0, V]
    sentinel: {value: -100, frequency: 0.25}
    relations: [{argmax_of: {input: logits, margin: 8}}]
args:
  reduction: [mean, sum, none]
  ignore_index: -100
dims:
  M: {min: 1, max: 64}
  V: {min: 1, max: 64}
dtypes: [float32]
tolerance:
  float32: {atol: 1.0e-5, rtol: 1.0e-5}
outputs:
  loss: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5, ctol: 1.0e-6}}, magnitude: abs_inputs, invariants: [finite]}
  z: {}
gradients:
  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}}
upstream: {values: [normal, mixed]}
"""


def changes(old, new):
    base = parse_spec(BASE, "base.yaml")
    head = parse_spec(BASE.replace(old, new), "head.yaml")
    assert BASE.count(old) == 1
    return [(c.kind, c.path) for c in diff_specs({"ce": base}, {"ce": head})]


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("[mean, sum, none]", "[mean, sum]", ("removed", "args.reduction")),
        ("[mean, sum, none]", "[mean, sum, none, max]", ("added", "args.reduction")),
        ("dtypes: [int64, int32]", "dtypes: [int64]", ("removed", "inputs.target.dtypes")),
        ("range: [0, V]", "range: [1, V]", ("weakened", "inputs.target.range")),
        ("range: [0, V]", "range: [-1, V]", ("tightened", "inputs.target.range")),
        ("    sentinel: {value: -100, frequency: 0.25}\n", "", ("removed", "inputs.target.sentinel")),
        ("    relations: [{argmax_of: {input: logits, margin: 8}}]\n", "", ("removed", "inputs.target.relations")),
        ("margin: 8}", "margin: 2}", ("changed", "inputs.target.relations")),
        ("  z: {}\n", "", ("removed", "outputs.z")),
        ("  z: {}\n", "  z: {}\n  w: {}\n", ("added", "outputs.w")),
        ("ctol: 1.0e-6", "ctol: 1.0e-5", ("weakened", "outputs.loss.tolerance.float32.ctol")),
        ("ctol: 1.0e-6", "ctol: 1.0e-7", ("tightened", "outputs.loss.tolerance.float32.ctol")),
        ("invariants: [finite]", "invariants: []", ("removed", "outputs.loss.invariants")),
        (
            "  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}}",
            "  logits: {tolerance: {float32: {atol: 1.0e-4, rtol: 1.0e-5}}}",
            ("weakened", "gradients.logits.tolerance.float32.atol"),
        ),
        ("  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}}\n", "  {}\n", None),
        ("upstream: {values: [normal, mixed]}", "upstream: {values: [normal]}", ("removed", "upstream")),
        ("magnitude: abs_inputs", "magnitude: m:h", ("changed", "outputs.loss.magnitude")),
        # a ctol over dims is compared at the domain's smallest and largest sizes
        ("ctol: 1.0e-6", "ctol: '2 * V * 2**-24'", ("weakened", "outputs.loss.tolerance.float32.ctol")),
        ("ctol: 1.0e-6", "ctol: '(V + 1) * 2**-30'", ("tightened", "outputs.loss.tolerance.float32.ctol")),
        ("ctol: 1.0e-6", "ctol: 'V * 1.0e-7'", ("weakened", "outputs.loss.tolerance.float32.ctol")),  # at V = 64
        ("ctol: 1.0e-6", "ctol: 'V / V * 1.0e-6'", ("changed", "outputs.loss.tolerance.float32.ctol")),
        (
            "  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}}",
            "  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}, invariants: [finite]}",
            ("added", "gradients.logits.invariants"),
        ),
        # another distribution for normal values: a reviewer's call, neither more nor fewer cases
        ("logits: {shape: [M, V]}", "logits: {shape: [M, V], scale: 3.0}", ("changed", "inputs.logits.scale")),
        # a sentinel that follows an arg, a gradient written in place
        ("value: -100,", "value: {arg: ignore_index},", ("changed", "inputs.target.sentinel")),
        (
            "  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}}",
            "  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}, in_place: {when: {reduction: sum}}}",
            ("changed", "gradients.logits.in_place"),
        ),
    ],
)
def test_each_new_key_is_classified(old, new, expected):
    if expected is None:  # the gradient removed altogether
        got = changes(
            "gradients:\n  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}}\nupstream: {values: [normal, mixed]}\n",
            "",
        )
        assert ("removed", "gradients.logits") in got, got
        return
    assert expected in changes(old, new)


def test_old_specs_diff_clean_against_themselves():
    from pathlib import Path

    from pytest_aina.spec.ratchet import load_spec_set

    specs = load_spec_set(Path(__file__).resolve().parents[2] / "specs")
    assert diff_specs(specs, specs) == []


def test_a_gradient_states_invariants_of_its_values_only():
    from pytest_aina.spec.reader import SpecError

    text = BASE.replace(
        "  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}}",
        "  logits: {tolerance: {float32: {atol: 1.0e-5, rtol: 1.0e-5}}, invariants: [finite, deterministic]}",
    )
    with pytest.raises(SpecError, match="deterministic is about the call"):
        parse_spec(text, "ce.yaml")
    ok = parse_spec(text.replace(", deterministic]", "]"), "ce.yaml")
    assert [i.name for i in ok.gradients[0].invariants] == ["finite"]


def test_scale_draws_normal_values_with_that_deviation_and_is_for_floats_only():
    import torch

    from pytest_aina.checking.cases import make_inputs
    from pytest_aina.spec.model import Case
    from pytest_aina.spec.reader import SpecError

    base = BASE.replace("    relations: [{argmax_of: {input: logits, margin: 8}}]\n", "")  # it moves logits
    scaled = parse_spec(base.replace("logits: {shape: [M, V]}", "logits: {shape: [M, V], scale: 3.0}"), "ce.yaml")
    plain = parse_spec(base, "ce.yaml")
    case = Case(dims=(("M", 64), ("V", 64)), dtype="float32", seed=5)
    a = make_inputs(scaled, case).tensors["logits"]
    b = make_inputs(plain, case).tensors["logits"]
    assert torch.equal(a, 3.0 * b)  # the same draw, three times wider
    assert 2.8 < a.std().item() < 3.2
    # edge value kinds keep their own magnitudes
    small = Case(dims=(("M", 64), ("V", 64)), dtype="float32", seed=5, values="small")
    assert torch.equal(make_inputs(scaled, small).tensors["logits"], make_inputs(plain, small).tensors["logits"])
    with pytest.raises(SpecError, match="scale is for float inputs"):
        parse_spec(BASE.replace("    range: [0, V]\n", "    range: [0, V]\n    scale: 2.0\n"), "ce.yaml")
    with pytest.raises(SpecError):
        parse_spec(BASE.replace("logits: {shape: [M, V]}", "logits: {shape: [M, V], scale: 0}"), "ce.yaml")


def test_a_benchmark_phase_is_its_own_case_for_the_ratchet():
    bench = "benchmarks:\n  - {dims: {M: 8, V: 16}, dtype: float32, devices: [cpu]}\n"
    base = parse_spec(BASE + bench, "base.yaml")
    head = parse_spec(
        BASE + bench + "  - {dims: {M: 8, V: 16}, dtype: float32, devices: [cpu], phase: backward}\n", "h"
    )
    got = [(c.kind, c.path, c.message) for c in diff_specs({"ce": base}, {"ce": head})]
    assert got == [("changed", "benchmarks[M=8,V=16,float32,phase=backward]", "benchmark case added")]
