"""The Reasoner's ``rollback`` and ``retire`` hypotheses become the revert and retire PRs, on
the fake through the real queue (telemetry posted signed to ``/telemetry``, the reason job,
the publish job), with one home each (:mod:`github_app.jobs.removals`):

* production slower than the variant's evidence -> ONE revert PR, however often the
  telemetry is redelivered or the Reasoner and the hourly look run again; with a recorded
  claim being verified, the verification decides and both inputs meet in one PR;
* a variant idle for ``retire.unused_days`` while its kernel ran -> ONE retire PR, waiting for
  a person (``retire.automerge`` is false);
* a hot kernel's rollback that is not worth it (the generic variant is slower still) -> no PR;
* a worker killed (kill -9) after the Reasoner decided, or while GitHub opens the PR -> one
  revert PR (slow).

The repository's real softmax spec is pushed so the Reasoner reads these windows; the policy
says ``automatic: false`` so no evolution run (minutes) starts beside the removals.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from dataclasses import replace

import pytest
from app_helpers import drain, kill_worker_when_held, publish, start_worker, wait_until, window
from test_app_merging import comments, verdict
from test_app_verification import (
    CASE,
    POLICY,
    ROOT,
    SHAPE,
    TEST,
    VARIANT,
    backdate,
    claiming_change,
    dashboard,
    files_at,
    merge_after_the_gate,
    post_telemetry,
    production,
    table_with_variant,
)

from github_app.bridge import reasoner_config, worth_running
from github_app.jobs import removals, verification
from github_app.jobs.dashboard_updates import left_alone
from github_app.jobs.repository import reason_job
from github_app.policy import Policy, parse_policy
from pytest_aina.reasoner import Hypothesis, reason
from pytest_aina.reasoner.inputs import load_specs
from pytest_aina.runtime.dispatch import parse_table

REPO = "octo-org/kernels"
REAL_SPEC = (ROOT / "specs/softmax.yaml").read_text()
QUIET = POLICY + "automatic: false\n"


def with_variant(fake, repo, tmp_path, policy: str = QUIET) -> None:
    """Main holds the policy, the real spec, the table with the variant and its generated test,
    pushed as a person would (the push event: a new baseline for the Reasoner)."""
    _, table = table_with_variant(tmp_path)
    files = {
        ".github/aina.yml": policy,
        "specs/softmax.yaml": REAL_SPEC,
        "kernels/variants/softmax.yaml": table,
        f"tests/evolved/test_{VARIANT}.py": TEST,
    }
    fake.push(repo, files, "a variant merged by a person")


def removal_pulls(repo, kind: str) -> list:
    return [p for p in repo.pulls() if f"aina:{kind}" in p.labels]


def generic_at(windows: list, slower: float) -> list:
    """The same hours at the same shape served by the generic variant (another service),
    ``slower`` times the variant's latency."""
    out = []
    for w in windows:
        lat = w.latency
        g = replace(w, variant="generic", service="chat-prefill")
        scaled = replace(lat, min=lat.min * slower, p50=lat.p50 * slower, p90=lat.p90 * slower,
                         p99=lat.p99 * slower, max=lat.max * slower)  # fmt: skip
        out.append(replace(g, latency=scaled, time_s=w.time_s * slower))
    return out


def test_slower_than_its_evidence_opens_one_revert_pr_however_often_it_is_looked_at(fake, app, onboarded, tmp_path):
    repo, inst = onboarded
    store = app.services.store
    with_variant(fake, repo, tmp_path)
    drain(app.services, timeout=60)
    # no claim recorded (a person merged it): the Reasoner's rollback is the only input
    windows = production(time.time() - 10 * 3600, 1.30)
    post_telemetry(app, inst, windows)
    drain(app.services, timeout=60)

    [h] = [h for h in store.hypotheses(REPO) if h["kind"] == "rollback"]
    assert h["variant"] == VARIANT and h["evidence"]["slowdown"] == pytest.approx(1.30, rel=0.01)
    [revert] = removal_pulls(repo, "rollback")
    assert revert.labels == ["aina", "kernel:softmax", "aina:rollback", "risk:low"]
    body = repo.issues[revert.number].body
    assert f"Reverts `{VARIANT}`: production contradicts the evidence it was merged with" in body
    # claimed (the table's evidence), the threshold (+15%), production's mean, the ratio
    assert f"| {CASE} | 80.0 µs [–, –] | 92.0 µs | 103.9 µs [–, –] | 1.30 |" in body
    refs = h["evidence"]["windows"]["refs"]
    assert len(refs) == 10 and all(r.startswith("telemetry_windows#") for r in refs)
    stored = {i for i, _ in store.telemetry_rows(REPO, "softmax")}
    assert {int(r.rpartition("#")[2]) for r in refs} <= stored  # cited by their stored ids
    assert "**Telemetry windows cited** (ids in the App's store): telemetry_windows #" in body
    assert "the Reasoner's rollback tolerance" in body
    files = files_at(repo, revert.head_sha)
    assert [v.name for v in parse_table(files["kernels/variants/softmax.yaml"], "s.yaml").variants] == ["generic"]
    assert f"tests/evolved/test_{VARIANT}.py" not in files and files["specs/softmax.yaml"] == REAL_SPEC
    statement = json.loads(files[f"provenance/softmax/{VARIANT}.rollback.intoto.json"])
    assert statement["predicate"]["hypothesis"]["id"] == removals.removal_id("rollback", "softmax", VARIANT)

    # redelivered telemetry, the reason job run again, the hourly look: still one PR
    post_telemetry(app, inst, windows)
    store.enqueue([reason_job(REPO, inst.id), verification.verify_all_job()])
    drain(app.services, timeout=60)
    store.enqueue([reason_job(REPO, inst.id)])
    drain(app.services, timeout=60)
    assert [p.number for p in removal_pulls(repo, "rollback")] == [revert.number]
    assert fake.count("POST", "pulls/create") == 1
    assert not store.jobs(state="failed"), [(j.kind, j.last_error) for j in store.jobs(state="failed")]


@pytest.mark.slow  # two worker processes and a kill: ~15 s each on 2 cores
@pytest.mark.parametrize(
    "job, method, pattern, opened",
    [
        ("reason", "GET", r"/git/ref/heads/main$", 0),  # the Reasoner decided, the revert not queued yet
        ("publish", "POST", r"/repos/octo-org/kernels/pulls$", 1),  # GitHub opens it; the answer never comes
    ],
)
def test_a_worker_killed_while_the_reasoner_reverts_leaves_one_revert_pr(
    fake, app, onboarded, app_key, tmp_path, job, method, pattern, opened
):
    repo, inst = onboarded
    store = app.services.store
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    with_variant(fake, repo, tmp_path)
    drain(app.services, timeout=60)
    hold = fake.hold(method, pattern)
    post_telemetry(app, inst, production(time.time() - 10 * 3600, 1.30))
    kill_worker_when_held(fake, app, key_file, tmp_path / "worker1.log", hold, timeout=90)
    [killed] = store.jobs(state="running")
    assert killed.kind == job
    assert len(repo.pulls()) == opened

    second = start_worker(fake, app, key_file, tmp_path / "worker2.log")
    try:
        wait_until(lambda: removal_pulls(repo, "rollback") and store.open_pull(
            REPO, removals.removal_id("rollback", "softmax", VARIANT)), 90, "the revert PR to be recorded")  # fmt: skip
        wait_until(lambda: not store.jobs(state="queued") and not store.jobs(state="running"), 90, "follow-ups")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert len(removal_pulls(repo, "rollback")) == 1 and fake.count("POST", "pulls/create") == 1
    assert not store.jobs(state="failed"), [(j.kind, j.last_error) for j in store.jobs(state="failed")]


def test_a_rollback_of_a_claim_being_verified_waits_for_the_verification_one_pr_either_way(
    fake, app, onboarded, tmp_path
):
    repo, inst = onboarded
    store = app.services.store
    base_table, _ = table_with_variant(tmp_path)
    fake.push(repo, {".github/aina.yml": QUIET, "kernels/variants/softmax.yaml": base_table,
                     "specs/softmax.yaml": REAL_SPEC}, "policy, table and spec")  # fmt: skip
    drain(app.services, timeout=60)
    # the claiming PR, its spec the real one (the Reasoner reads it), gated, soaked, merged
    _, table = table_with_variant(tmp_path)
    change = claiming_change(table)
    change["files"]["specs/softmax.yaml"] = REAL_SPEC
    statement = json.loads(change["files"][change["attestation"]])
    for subject in statement["subject"]:
        subject["digest"]["sha256"] = hashlib.sha256(change["files"][subject["name"]].encode()).hexdigest()
    change["files"][change["attestation"]] = json.dumps(statement, indent=1)
    publish(app, inst, change)
    [pr] = repo.pulls()
    merge_after_the_gate(fake, app, repo, pr)
    merged_at = backdate(app, pr.number, 10)
    post_telemetry(app, inst, production(merged_at, 1.30))
    drain(app.services, timeout=60)

    # both inputs saw it: the Reasoner's rollback (left to the verification) and the claim's
    assert [h["variant"] for h in store.hypotheses(REPO) if h["kind"] == "rollback"] == [VARIANT]
    # the Reasoner left it to the verification every time it looked (the key would have
    # made one PR anyway: this is about which input decides)
    looks = [j.result["removals"] for j in store.jobs(state="done", kind="reason", repository=REPO)]
    assert not any(look["publishing"] for look in looks)
    assert any("its verification decides" in " ".join(look["left"].values()) for look in looks)
    claim = store.claim_of(REPO, pr.number)
    assert claim["status"] == "contradicted"
    [revert] = removal_pulls(repo, "rollback")
    assert claim["revert_number"] == revert.number
    assert f"Reverts #{pr.number}: production contradicts its claim" in repo.issues[revert.number].body
    store.enqueue([reason_job(REPO, inst.id), verification.verify_all_job()])
    drain(app.services, timeout=60)
    assert len(removal_pulls(repo, "rollback")) == 1 and fake.count("POST", "pulls/create") == 2


def test_a_hot_kernels_rollback_that_is_not_worth_it_opens_no_pr(fake, app, onboarded, tmp_path):
    repo, inst = onboarded
    store = app.services.store
    with_variant(fake, repo, tmp_path)
    drain(app.services, timeout=60)
    # 30% slower than its evidence, but the generic variant at the same shapes is 1.5x slower
    # still: going back would cost GPU time
    mine = production(time.time() - 10 * 3600, 1.30)
    post_telemetry(app, inst, mine + generic_at(mine, 1.5))
    drain(app.services, timeout=60)
    done = max(store.jobs(state="done", kind="reason", repository=REPO), key=lambda j: j.id)
    assert done.result["windows"] == 2 * len(mine)  # the Reasoner read them all...
    assert "rollback" not in [h["kind"] for h in store.hypotheses(REPO)]  # ...and let the variant be
    assert repo.pulls() == [] and fake.count("POST", "pulls/create") == 0
    # ...and said why: the reason job keeps its left-alone list, which the dashboard shows
    [why] = [x for x in left_alone(store, REPO) if x["kernel"] == "softmax"]
    assert "rollback would not gain" in why["detail"], why
    body = repo.issues[store.repository(REPO)["dashboard_issue"]].body
    assert "## Hot kernels left alone, and why" in body and "- `softmax` (" in body


def test_a_variant_idle_for_retire_days_gets_one_retire_pr_that_waits_for_a_person(fake, app, onboarded, tmp_path):
    repo, inst = onboarded
    store = app.services.store
    with_variant(fake, repo, tmp_path, QUIET + "reviewers: [maintainer]\nretire:\n  unused_days: 1\n")
    drain(app.services, timeout=60)
    # two days of production, every call served by the generic variant
    now = time.time()
    windows = [
        replace(
            window(0),
            variant="generic",
            dims=SHAPE,
            start=now - 48 * 3600 + 1800 * i,
            end=now - 48 * 3600 + 1800 * (i + 1),
        )  # fmt: skip
        for i in range(95)
    ]
    post_telemetry(app, inst, windows)
    drain(app.services, timeout=60)

    [h] = [h for h in store.hypotheses(REPO) if h["kind"] == "retire"]
    assert h["variant"] == VARIANT and h["evidence"]["idle_s"] == 86400  # the policy's day, not 6 hours
    [cand] = verification.retire_candidates(store, REPO)
    [pr] = repo.pulls()
    assert (cand["kernel"], cand["variant"], cand["number"]) == ("softmax", VARIANT, pr.number)
    assert pr.labels == ["aina", "kernel:softmax", "aina:retire", "risk:low"]
    body = repo.issues[pr.number].body
    assert f"Retires `{VARIANT}` of `softmax`: no call in the App's stored telemetry" in body
    assert "retire.unused_days: 1" in body and "telemetry_windows #" in body
    files = files_at(repo, pr.head_sha)
    assert [v.name for v in parse_table(files["kernels/variants/softmax.yaml"], "s.yaml").variants] == ["generic"]
    assert f"tests/evolved/test_{VARIANT}.py" not in files and files["specs/softmax.yaml"] == REAL_SPEC
    assert f"Retire candidates\n\n- `softmax` variant `{VARIANT}`" in dashboard(app, repo)

    # the gate passes; low risk merges on its own, but a retirement only with retire.automerge
    fake.complete_gate(repo, pr.head_sha, verdict(pr.head_sha))
    drain(app.services, timeout=30)
    assert pr.state == "open" and fake.count("PUT", "pulls/merge") == 0
    assert pr.requested_reviewers == ["maintainer"]
    assert any("retire.automerge" in c for c in comments(repo, pr))
    # the hourly look and the Reasoner again: nothing more
    store.enqueue([verification.verify_all_job(), reason_job(REPO, inst.id)])
    drain(app.services, timeout=60)
    assert len(repo.pulls()) == 1 and fake.count("POST", "pulls/create") == 1


# -- the decisions, without the App -----------------------------------------------------------------

NOW = 1_800_000_000.0


def retire_found(windows, *, days: float = 1, merged_at=None, tmp_path) -> list[str]:
    _, text = table_with_variant(tmp_path)
    specs, _ = load_specs(ROOT / "specs")
    report = reason(
        windows,
        specs,
        tables={"softmax": parse_table(text, "softmax.yaml", kernel="softmax")},
        config=reasoner_config(parse_policy(f"retire: {{unused_days: {days}}}\n")),
        merged_at=merged_at,
    )
    return [h.variant for h in report.hypotheses if h.kind == "retire"]


def at(hours_ago: float, variant: str = "generic"):
    return replace(
        window(0), variant=variant, dims=SHAPE, start=NOW - hours_ago * 3600, end=NOW - hours_ago * 3600 + 60
    )


def test_retire_guards_kernel_called_telemetry_reaching_back_variant_old_enough(tmp_path):
    two_days = [at(h) for h in range(0, 48, 2)]
    assert retire_found(two_days, tmp_path=tmp_path) == [VARIANT]
    assert retire_found([*two_days, at(5, VARIANT)], tmp_path=tmp_path) == []  # called: in use
    assert retire_found(two_days, days=3, tmp_path=tmp_path) == []  # two days cannot say "unused for three"
    assert retire_found([at(h) for h in range(30, 48)], tmp_path=tmp_path) == []  # the kernel was not called
    young = {("softmax", VARIANT): NOW - 3600}  # merged an hour ago: it has not had its chance
    assert retire_found(two_days, merged_at=young, tmp_path=tmp_path) == []
    assert retire_found(two_days, merged_at={("softmax", VARIANT): NOW - 30 * 3600}, tmp_path=tmp_path) == [VARIANT]


def hyp(kind: str, gain: float = 50.0, kernel: str = "softmax") -> Hypothesis:
    return Hypothesis(kind=kind, kernel=kernel, domain={}, title=kind, expected_gain=gain, gain_basis="",
                      evidence={}, variant=VARIANT)  # fmt: skip


def claim(status: str, final: bool = False) -> dict:
    return {"number": 7, "kernel": "softmax", "variant": VARIANT, "status": status, "verification": {"final": final}}


def pull(kind: str, state: str, outcome: str | None = None) -> dict:
    return {"hypothesis_id": removals.removal_id(kind, "softmax", VARIANT), "number": 9, "state": state,
            "outcome": outcome}  # fmt: skip


@pytest.mark.parametrize(
    "h, policy, claims, known, acts, why",
    [
        (hyp("rollback"), Policy(), [], [], True, None),
        (hyp("rollback"), Policy(), [claim("verifying")], [], False, "its verification decides"),
        (hyp("rollback"), Policy(), [claim("verifying", final=True)], [], True, None),  # ended undecided
        (hyp("rollback"), Policy(), [claim("confirmed")], [], True, None),  # production changed since
        (hyp("rollback"), Policy(), [claim("contradicted")], [], False, "contradicted its claim"),
        (hyp("rollback"), Policy(min_expected_gain=100), [], [], False, "min_expected_gain"),
        (hyp("rollback", kernel="rms_norm"), Policy(kernels=("softmax",)), [], [], False, "kernels"),
        (hyp("rollback"), Policy(), [], [pull("rollback", "open")], False, "#9 is open"),
        (hyp("rollback"), Policy(), [], [pull("rollback", "closed", "closed")], False, "a person closed"),
        (hyp("rollback"), Policy(), [], [pull("rollback", "closed", "merged")], True, None),  # back again
        (hyp("retire", gain=0), Policy(), [], [], True, None),
        (hyp("retire", gain=0), Policy(), [], [pull("retire", "open")], False, "#9 is open"),
        (hyp("retire", gain=0), Policy(), [], [pull("rollback", "open")], True, None),  # another key
        (hyp("far_from_limit"), Policy(), [], [], False, None),  # evolution's, not a removal
    ],
)
def test_which_removals_open_a_pr(h, policy, claims, known, acts, why):
    act, left = removals.decide([h], policy, claims=claims, pulls_known=known)
    assert [x.id for x, _ in act] == ([h.id] if acts else [])
    if why:
        assert why in left[h.id]
    # evolution never starts for a removal's kind
    assert worth_running([h], Policy(), open_ids=set(), rejected_ids=set(), queued_ids=set()) == (
        [h] if h.actionable else []
    )
