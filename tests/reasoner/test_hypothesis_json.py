"""A Hypothesis crosses process boundaries (the App's job queue and store, ``aina reason
--json``, a change's attestation) as JSON: it must come back as the same hypothesis, and a
malformed one must be refused with the key named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_aina.reasoner import ACTIONABLE, KINDS, Hypothesis, HypothesisError, reason_about_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample() -> list[Hypothesis]:
    report = reason_about_file(
        ROOT / "telemetry/sample-fleet-day.jsonl", specs=ROOT / "specs", variants=ROOT / "kernels/variants"
    )
    assert report.hypotheses
    return report.hypotheses


def test_every_hypothesis_of_the_sample_round_trips_through_json(sample):
    for h in sample:
        data = json.loads(json.dumps(h.to_json()))  # as the job queue stores it
        back = Hypothesis.from_json(data)
        assert back.to_json() == h.to_json()
        assert (back.id, back.kind, back.kernel, back.domain, back.evidence, back.variant) == (
            h.id,
            h.kind,
            h.kernel,
            h.domain,
            h.evidence,
            h.variant,
        )
        assert back.external_id is None  # the Reasoner's id is derived, so it is not carried as given
        assert back.expected_gain == pytest.approx(h.expected_gain, abs=5e-4)


def test_an_id_from_another_reasoner_is_kept():
    h = Hypothesis.from_json(
        {"id": "short-rows-02", "kind": "hot_shape", "kernel": "softmax", "domain": {"dims": {"N": [1, 1024]}}}
    )
    assert h.id == "short-rows-02" and h.external_id == "short-rows-02"
    assert Hypothesis.from_json(h.to_json()) == h
    assert not h.actionable  # a kind of its own: the Changer acts only on the Reasoner's specialisations


def test_which_kinds_are_actionable_is_said_once():
    assert set(ACTIONABLE) <= set(KINDS)
    made = {
        k: Hypothesis(kind=k, kernel="softmax", domain={}, title="", expected_gain=1.0, gain_basis="", evidence={})
        for k in KINDS
    }
    assert [k for k, h in made.items() if h.actionable] == list(ACTIONABLE)
    assert {"rollback", "retire"}.isdisjoint(ACTIONABLE)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("id"), "has no id"),
        (lambda d: d.pop("kernel"), r"lacks \['kernel'\]"),
        (lambda d: d.update(summary="typo for title"), r"unknown keys \['summary'\]"),
        (lambda d: d.update(expected_gain="lots"), "expected_gain must be a number"),
        (lambda d: d.update(expected_gain_unit="gpu_h_per_day"), "expected_gain_unit must be 'gpu_s_per_day'"),
        (lambda d: d.update(domain=[1, 2]), "domain must be an object"),
        (lambda d: d.update(kind=""), "kind must be non-empty text"),
    ],
)
def test_a_malformed_hypothesis_is_refused_with_the_key(sample, edit, message):
    data = sample[0].to_json()
    edit(data)
    with pytest.raises(HypothesisError, match=message):
        Hypothesis.from_json(data)
    with pytest.raises(HypothesisError, match="must be a JSON object"):
        Hypothesis.from_json([data])
