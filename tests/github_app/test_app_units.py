"""The pieces with no HTTP in them: the job queue's rules, policy, changes, the dashboard's
check-boxes, and which hypotheses are worth a run."""

from __future__ import annotations

import json
import time

import pytest

from github_app.bridge import worth_running
from github_app.dashboard import gain_of, render, ticked
from github_app.policy import Policy, PolicyError, parse_policy
from github_app.store import JobSpec, SQLiteStore
from pytest_aina.changer.change import Change, ChangeError
from pytest_aina.reasoner import Hypothesis

from app_helpers import make_change


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "q.sqlite3", max_attempts=3)
    yield s
    s.close()


def test_a_dead_workers_job_is_taken_over_when_its_lease_runs_out(store):
    [job_id] = store.enqueue([JobSpec("k", {"n": 1})])
    job = store.claim(["default"], "w1", lease=0.2)
    assert job.id == job_id and store.claim(["default"], "w2", lease=0.2) is None
    time.sleep(0.25)
    again = store.claim(["default"], "w2", lease=5)
    assert again.id == job_id and again.attempts == 2
    # The first worker comes back from the dead: it no longer owns anything.
    assert not store.complete(job_id, "w1", {"by": "w1"})
    assert not store.checkpoint(job_id, "w1", {"x": 1})
    assert store.complete(job_id, "w2", {"by": "w2"})
    assert store.job(job_id).result == {"by": "w2"}


def test_one_key_one_waiting_job_and_never_two_running(store):
    a, b = store.enqueue([JobSpec("k", {"v": 1}, key="same"), JobSpec("k", {"v": 2}, key="same")])
    assert a is not None and b is None
    running = store.claim(["default"], "w1", lease=30)
    [c] = store.enqueue([JobSpec("k", {"v": 3}, key="same")])
    assert c is not None, "a change arriving mid-run must wait behind the run, not be lost"
    assert store.claim(["default"], "w2", lease=30) is None, "same key must not run twice at once"
    store.complete(running.id, "w1", None)
    assert store.claim(["default"], "w2", lease=30).payload == {"v": 3}


def test_a_failing_job_is_superseded_by_a_newer_one_with_its_key(store):
    [first] = store.enqueue([JobSpec("k", {"v": 1}, key="same")])
    store.claim(["default"], "w1", lease=30)
    store.enqueue([JobSpec("k", {"v": 2}, key="same")])
    assert store.retry(first, "w1", time.time(), "boom")
    assert store.job(first).state == "done" and "superseded" in store.job(first).last_error


def test_deferred_jobs_wait_for_their_repository_to_release_them(store):
    [j] = store.enqueue([JobSpec("publish", {}, key="p", repository="o/r")])
    store.claim(["default"], "w", lease=30)
    assert store.defer(j, "w", "no slot")
    assert store.claim(["default"], "w", lease=30) is None
    assert store.release_deferred("o/other") == 0
    assert store.release_deferred("o/r") == 1
    assert store.claim(["default"], "w", lease=30).id == j


def test_follow_ups_are_enqueued_with_completion_or_failure_only(store):
    [j] = store.enqueue([JobSpec("a", {})])
    store.claim(["default"], "w", lease=30)
    assert store.fail(j, "w", "bad", [JobSpec("dashboard", {}, key="d")])
    assert [x.kind for x in store.jobs(state="queued")] == ["dashboard"]


def test_a_schedule_fires_once_per_interval_across_workers(tmp_path, store):
    other = SQLiteStore(store.path)
    assert store.due("reason_all", 60) is True
    assert other.due("reason_all", 60) is False
    other.close()


def test_telemetry_batches_are_deduplicated(store):
    w = {"kernel": "softmax", "service": "s", "calls": 1}
    assert store.store_telemetry("b1", "o/r", 1, [w], None) == 1
    assert store.store_telemetry("b1", "o/r", 1, [w], None) is None
    assert store.store_telemetry("b2", "o/r", 1, [w, {**w, "calls": 2}], None) == 1


def test_policy_defaults_and_errors():
    assert parse_policy(None) == Policy()
    p = parse_policy("max_open_prs: 1\npaths: ['kernels/**', 'specs/*.yaml']\nkernels: [soft*]\n")
    assert p.path_allowed("kernels/a/b.py") and p.path_allowed("specs/x.yaml")
    assert not p.path_allowed("specs/deep/x.yaml") and not p.path_allowed("setup.py")
    assert p.kernel_allowed("softmax") and not p.kernel_allowed("rms_norm")
    for text, message in [("max_open_prs: -1", "max_open_prs"), ("paths: kernels", "paths"),
                          ("colour: red", "unknown key"), ("[1, 2]", "mapping"),
                          ("a: [", "not valid YAML"), ("automatic: maybe", "automatic"),
                          ("min_expected_gain: -3", "min_expected_gain")]:
        with pytest.raises(PolicyError, match=message):
            parse_policy(text, source=".github/aina.yml")


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
    hyps = [{"id": "h1", "kind": "hot_shape", "kernel": "softmax", "expected_gain": 7200},
            {"id": "h|2", "kind": "shift", "kernel": "rms_norm",
             "expected_gain": {"gpu_seconds_per_day": 30}},
            {"id": "has space", "kind": "retire", "kernel": "x", "expected_gain": 1}]
    body = render(repository={"full_name": "o/r", "default_branch": "main",
                              "baseline_sha": "a" * 40},
                  hypotheses=hyps, open_pulls=[], recent_pulls=[], runs=[], waiting=[],
                  queued=set(), telemetry={"windows": 3, "services": 1, "last_received": 0})
    assert ticked(body) == []
    assert "2.0 GPU-h/day" in body and "30.0 GPU-s/day" in body
    assert "h\\|2" in body, "a pipe in an id must not break the markdown table"
    assert "<!-- aina-run:has space -->" not in body  # no box for an id we could not parse back
    assert ticked(body.replace("- [ ] <!-- aina-run:h1 -->", "- [x] <!-- aina-run:h1 -->")) == ["h1"]
    assert gain_of({"expected_gain": True}) == 0.0


def test_worth_running_respects_policy_slots_and_past_decisions():
    hyps = [Hypothesis.from_json({"id": f"h{i}", "kind": "hot_unspecialised", "kernel": k, "expected_gain": g})
            for i, (k, g) in enumerate([("softmax", 900), ("rms_norm", 800), ("softmax", 700), ("softmax", 5),
                                        ("softmax", 600)])]
    policy = Policy(max_open_prs=2, kernels=("softmax",), min_expected_gain=10)
    chosen = worth_running(hyps, policy, open_ids=set(), rejected_ids={"h2"}, queued_ids=set())
    assert [h.id for h in chosen] == ["h0", "h4"]
    assert worth_running(hyps, policy, open_ids={"h0"}, rejected_ids=set(),
                         queued_ids={"h9"}) == []
    assert worth_running(hyps, Policy(automatic=False), open_ids=set(), rejected_ids=set(),
                         queued_ids=set()) == []


def test_the_evolution_settings_are_checked_when_the_app_starts(app_key, tmp_path):
    from github_app import ConfigError, create_app
    from pytest_aina.changer.settings import EvolutionSettings

    config = {"APP_ID": 1, "PRIVATE_KEY": app_key[0], "WEBHOOK_SECRET": "s",
              "DATABASE": str(tmp_path / "a.sqlite3"), "WORK_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"EVOLUTION \(environment variable AINA_EVOLUTION\): "
                                          r"unknown key\(s\) \['budgte'\]"):
        create_app(dict(config, EVOLUTION={"budgte": {"evaluations": 2}}))
    app = create_app(dict(config, EVOLUTION={"budget": {"evaluations": 2}, "workers": 1}))
    settings = app.extensions["aina"].config["EVOLUTION"]
    assert isinstance(settings, EvolutionSettings)
    assert (settings.budget.evaluations, settings.budget.wall_s, settings.workers) == (2, 600.0, 1)
    app.extensions["aina"].store.close()
