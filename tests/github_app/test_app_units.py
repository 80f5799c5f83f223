"""The pieces with no HTTP in them: policy, changes, the dashboard's check-boxes, and which
hypotheses are worth a run. (The job queue's rules are the store's contract:
tests/github_app/store.)"""

from __future__ import annotations

import json

import pytest
from app_helpers import make_change

from github_app.bridge import worth_running
from github_app.dashboard_markdown import gain_of, render, ticked
from github_app.policy import Policy, PolicyError, parse_policy
from pytest_aina.changer.change import Change, ChangeError
from pytest_aina.reasoner import Hypothesis


def test_policy_defaults_and_errors():
    assert parse_policy(None) == Policy()
    p = parse_policy("max_open_prs: 1\npaths: ['kernels/**', 'specs/*.yaml']\nkernels: [soft*]\n")
    assert p.path_allowed("kernels/a/b.py") and p.path_allowed("specs/x.yaml")
    assert not p.path_allowed("specs/deep/x.yaml") and not p.path_allowed("setup.py")
    assert p.kernel_allowed("softmax") and not p.kernel_allowed("rms_norm")
    for text, message in [
        ("max_open_prs: -1", "max_open_prs"),
        ("paths: kernels", "paths"),
        ("colour: red", "unknown key"),
        ("[1, 2]", "mapping"),
        ("a: [", "not valid YAML"),
        ("automatic: maybe", "automatic"),
        ("min_expected_gain: -3", "min_expected_gain"),
    ]:
        with pytest.raises(PolicyError, match=message):
            parse_policy(text, source=".github/aina.yml")


def test_the_app_reads_the_gates_settings_in_the_same_file():
    """One .github/aina.yml for the App and the merge gate: a gate: section is not an unknown key."""
    p = parse_policy("max_open_prs: 2\ngate:\n  coverage: 90\n  review: [high]\n")
    assert p.max_open_prs == 2 and p.gate.coverage == 90 and p.gate.review == ("high",)
    with pytest.raises(PolicyError, match="gate.coverag"):
        parse_policy("gate:\n  coverag: 90\n")


def test_a_change_is_checked_field_by_field():
    Change.from_json(make_change())
    for mutate, message in [
        (lambda c: c.update(branch="feature/x"), "under 'aina/'"),
        (lambda c: c["files"].update({"../etc/passwd": "x"}), "normalised relative path"),
        (lambda c: c["files"].update({".git/config": "x"}), "inside .git"),
        (lambda c: c.update(attestation="nope.json"), "one of the files"),
        (lambda c: c["files"].update({c["attestation"]: "not json"}), "not JSON"),
        (lambda c: c["files"].update({c["attestation"]: "{}"}), "no _type"),
        (lambda c: c.update(surprise=1), "unknown keys"),
        (lambda c: c.pop("title"), "lacks keys"),
        (lambda c: c.update(labels=["x" * 60]), "labels"),
    ]:
        change = json.loads(json.dumps(make_change()))
        mutate(change)
        with pytest.raises(ChangeError, match=message):
            Change.from_json(change)


def test_dashboard_boxes_round_trip():
    hyps = [
        {"id": "h1", "kind": "hot_shape", "kernel": "softmax", "expected_gain": 7200},
        {"id": "h|2", "kind": "shift", "kernel": "rms_norm", "expected_gain": {"gpu_seconds_per_day": 30}},
        {"id": "has space", "kind": "retire", "kernel": "x", "expected_gain": 1},
    ]
    body = render(
        repository={"full_name": "o/r", "default_branch": "main", "baseline_sha": "a" * 40},
        hypotheses=hyps,
        open_pulls=[],
        recent_pulls=[],
        runs=[],
        waiting=[],
        queued=set(),
        telemetry={"windows": 3, "services": 1, "last_received": 0},
    )
    assert ticked(body) == []
    assert "2.0 GPU-h/day" in body and "30.0 GPU-s/day" in body
    assert "h\\|2" in body, "a pipe in an id must not break the markdown table"
    assert "<!-- aina-run:has space -->" not in body  # no box for an id we could not parse back
    assert ticked(body.replace("- [ ] <!-- aina-run:h1 -->", "- [x] <!-- aina-run:h1 -->")) == ["h1"]
    assert gain_of({"expected_gain": True}) == 0.0


def test_worth_running_respects_policy_slots_and_past_decisions():
    hyps = [
        Hypothesis.from_json({"id": f"h{i}", "kind": "hot_unspecialised", "kernel": k, "expected_gain": g})
        for i, (k, g) in enumerate(
            [("softmax", 900), ("rms_norm", 800), ("softmax", 700), ("softmax", 5), ("softmax", 600)]
        )
    ]
    policy = Policy(max_open_prs=2, kernels=("softmax",), min_expected_gain=10)
    chosen = worth_running(hyps, policy, open_ids=set(), rejected_ids={"h2"}, queued_ids=set())
    assert [h.id for h in chosen] == ["h0", "h4"]
    assert worth_running(hyps, policy, open_ids={"h0"}, rejected_ids=set(), queued_ids={"h9"}) == []
    assert worth_running(hyps, Policy(automatic=False), open_ids=set(), rejected_ids=set(), queued_ids=set()) == []


def test_the_evolution_settings_are_checked_when_the_app_starts(app_key, tmp_path):
    from github_app import ConfigError, create_app
    from pytest_aina.changer.settings import EvolutionSettings

    config = {
        "APP_ID": 1,
        "PRIVATE_KEY": app_key[0],
        "WEBHOOK_SECRET": "s",
        "DATABASE": str(tmp_path / "a.sqlite3"),
        "WORK_DIR": str(tmp_path),
    }
    with pytest.raises(
        ConfigError,
        match=r"EVOLUTION \(environment variable AINA_EVOLUTION\): "
        r"unknown key\(s\) \['budgte'\]",
    ):
        create_app(dict(config, EVOLUTION={"budgte": {"evaluations": 2}}))
    app = create_app(dict(config, EVOLUTION={"budget": {"evaluations": 2}, "workers": 1}))
    settings = app.extensions["aina"].config["EVOLUTION"]
    assert isinstance(settings, EvolutionSettings)
    assert (settings.budget.evaluations, settings.budget.wall_s, settings.workers) == (2, 600.0, 1)
    app.extensions["aina"].store.close()
