"""The pipeline's plan: which hypothesis it acts on and what it times, from Hypothesis
objects as the Reasoner hands them on (the search itself is covered by the slow end-to-end
tests of `aina evolve` and the App)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pytest_aina.changer.pipeline import EvolveError, bench_cases_for, hot_dims, plan
from pytest_aina.reasoner import reason_about_file
from pytest_aina.spec.model import load_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hypotheses():
    return reason_about_file(
        ROOT / "telemetry/sample-fleet-day.jsonl", specs=ROOT / "specs", variants=ROOT / "kernels/variants"
    ).hypotheses


def test_the_first_actionable_hypothesis_is_planned_and_the_others_are_said_why(hypotheses):
    top = next(h for h in hypotheses if h.actionable)
    retire = replace(top, kind="retire", variant="old")
    p = plan(ROOT, [retire, top], device="cpu")
    assert p.hypothesis is top and p.kernel == top.kernel and p.spec_path == ROOT / "specs" / f"{top.kernel}.yaml"
    assert p.skipped == [{"id": retire.id, "kind": "retire", "why": "not a specialisation: needs a human"}]
    assert "num_warps" not in p.tunables and any("not searched on this CPU" in n for n in p.notes)
    [case] = p.bench_cases
    assert case["hot_dims"] == {k: v for k, v in hot_dims(top).items()}
    with pytest.raises(EvolveError, match=f"retire {retire.id}: not a specialisation"):
        plan(ROOT, [retire], device="cpu")


def test_a_cpu_times_a_scaled_down_shape_of_the_same_row_width():
    spec = load_spec(ROOT / "specs/softmax.yaml")
    [case], notes = bench_cases_for(spec, "cpu", dims={"M": 4096, "N": 50304}, dtype="bfloat16")
    assert case["dims"]["N"] == 50304 and case["dims"]["M"] < 4096 and case["label"].endswith(",bfloat16")
    assert notes and "instead of the hot shape M=4096,N=50304" in notes[0]
    [case], notes = bench_cases_for(spec, "cuda", dims={"M": 4096, "N": 50304}, dtype="bfloat16")
    assert case["dims"] == {"M": 4096, "N": 50304} and notes == []
