"""The store's contract, part 2: what the App keeps besides jobs. Webhook deliveries handled
once, installations and repositories, telemetry windows accepted exactly once, hypotheses,
one open bot PR per hypothesis, evolution runs, and the rows the dashboard and /metrics
read; each the same in every backend, down to the rows' columns."""

from __future__ import annotations

import threading
import time

import pytest

from github_app.store import QUEUED, JobSpec, StoreConflict, window_digest

REPO = "octo-org/kernels"


# -- webhooks ----------------------------------------------------------------------------
def test_a_delivery_is_handled_once_and_its_jobs_enqueued_with_it(store):
    jobs = [
        JobSpec("push", {"sha": "a"}, key=f"push:{REPO}", repository=REPO),
        JobSpec("dashboard", {}, key=f"dashboard:{REPO}", repository=REPO),
    ]
    assert not store.delivery_seen("guid-1")
    assert store.record_delivery("guid-1", "push", None, jobs, "queued") is True
    assert store.delivery_seen("guid-1")
    assert store.record_delivery("guid-1", "push", None, jobs, "queued") is False
    assert [(j.kind, j.payload) for j in store.jobs()] == [("push", {"sha": "a"}), ("dashboard", {})]
    assert store.record_delivery("guid-2", "ping", None, [], "ignored") is True
    assert len(store.jobs()) == 2


def test_a_redelivery_storm_across_workers_enqueues_once(store, another):
    """GitHub redelivers while the first attempt is still being answered by another worker:
    one of the racing writers wins, the others are told it was seen."""
    handles = [another() for _ in range(6)]
    results, errors = [], []
    start = threading.Barrier(len(handles))

    def deliver(h):
        try:
            start.wait()
            results.append(
                h.record_delivery("storm", "issue_comment", "created", [JobSpec("comment", {"n": 1})], "queued")
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(results) == [False] * 5 + [True]
    assert len(store.jobs(kind="comment")) == 1


# -- installations and repositories ---------------------------------------------------------
def test_installations_and_their_repositories(store):
    assert store.installation(5) is None and store.repository(REPO) is None
    store.upsert_installation(5, "octo-org", True)
    store.upsert_repository(REPO, 5, repo_id=77, default_branch="main")
    store.upsert_repository("octo-org/other", 5)
    store.upsert_repository("someone/else", 6)
    inst = store.installation(5)
    assert (inst["id"], inst["account"], inst["active"]) == (5, "octo-org", True)
    repo = store.repository(REPO)
    assert (repo["installation_id"], repo["repo_id"], repo["default_branch"], repo["active"]) == (5, 77, "main", True)
    # What an upsert does not say, it keeps.
    store.upsert_repository(REPO, 5)
    assert (store.repository(REPO)["repo_id"], store.repository(REPO)["default_branch"]) == (77, "main")
    assert [r["full_name"] for r in store.repositories()] == ["octo-org/kernels", "octo-org/other", "someone/else"]
    assert [r["full_name"] for r in store.repositories(5)] == ["octo-org/kernels", "octo-org/other"]
    # Suspending the installation deactivates its repositories.
    store.upsert_installation(5, "octo-org", False)
    assert store.installation(5)["active"] is False
    assert store.repository(REPO)["active"] is False
    assert [r["full_name"] for r in store.repositories()] == ["someone/else"]
    store.upsert_repository(REPO, 5, active=True)
    assert store.repositories(5)[0]["active"] is True


def test_repository_fields_are_updated_by_name_and_only_known_ones(store):
    store.upsert_repository(REPO, 5)
    store.update_repository(
        REPO, baseline_sha="abc", dashboard_issue=12, policy_error="max_open_prs must be an integer"
    )
    row = store.repository(REPO)
    assert (row["baseline_sha"], row["dashboard_issue"], row["policy_error"]) == (
        "abc",
        12,
        "max_open_prs must be an integer",
    )
    store.update_repository(REPO, policy_error=None)
    assert store.repository(REPO)["policy_error"] is None
    store.update_repository(REPO)
    with pytest.raises(ValueError, match="active"):
        store.update_repository(REPO, active=False)


# -- telemetry -------------------------------------------------------------------------------
def test_telemetry_batches_are_deduplicated(store):
    w = {"kernel": "softmax", "service": "s", "calls": 1}
    assert store.store_telemetry("b1", "o/r", 1, [w], None) == 1
    assert store.store_telemetry("b1", "o/r", 1, [w], None) is None
    assert store.store_telemetry("b2", "o/r", 1, [w, {**w, "calls": 2}], None) == 1


def test_a_batch_and_its_job_are_stored_together_and_read_back_in_order(store):
    windows = [
        {"kernel": k, "service": s, "calls": i}
        for i, (k, s) in enumerate([("softmax", "a"), ("matmul", "a"), ("softmax", "b"), ("softmax", "a")])
    ]
    job = JobSpec("reason", {"repository": "o/r"}, key="reason:o/r", repository="o/r", delay=30)
    assert store.store_telemetry("batch", "o/r", 1, windows + [windows[0]], job) == 4
    assert store.telemetry_windows("o/r") == windows
    assert store.telemetry_windows("o/other") == []
    [reason] = store.jobs(kind="reason")
    assert (reason.state, reason.key, reason.payload) == (QUEUED, "reason:o/r", {"repository": "o/r"})
    # A second batch within the debounce shares the waiting Reasoner run.
    assert store.store_telemetry("batch-2", "o/r", 1, [{"kernel": "x", "calls": 9}], job) == 1
    assert len(store.jobs(kind="reason")) == 1
    summary = store.telemetry_summary("o/r")
    assert (summary["windows"], summary["services"], summary["kernels"]) == (5, 2, 3)
    assert abs(summary["last_received"] - time.time()) < 60
    assert store.telemetry_summary("o/none") == {"windows": 0, "services": 0, "kernels": 0, "last_received": None}


def test_the_same_window_in_two_repositories_is_two_windows(store):
    w = {"kernel": "softmax", "calls": 1}
    assert store.store_telemetry("b1", "o/a", 1, [w], None) == 1
    assert store.store_telemetry("b2", "o/b", 1, [w], None) == 1
    assert window_digest(w) == window_digest(dict(reversed(list(w.items()))))


def test_windows_are_read_since_a_time_and_pruned_before_one(store):
    store.store_telemetry("old", "o/r", 1, [{"calls": 1}], None)
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    store.store_telemetry("new", "o/r", 1, [{"calls": 2}], None)
    assert store.telemetry_windows("o/r", since=middle) == [{"calls": 2}]
    assert store.prune_telemetry(middle) == 1
    assert store.telemetry_windows("o/r") == [{"calls": 2}]
    # A pruned batch is forgotten with its windows: sent again, it is stored again.
    assert store.store_telemetry("old", "o/r", 1, [{"calls": 1}], None) == 1


def test_a_large_batch_is_stored_in_one_go(store):
    windows = [{"kernel": f"k{i % 7}", "service": f"s{i % 3}", "calls": i} for i in range(5000)]
    assert store.store_telemetry("big", "o/r", 1, windows, None) == 5000
    assert store.telemetry_windows("o/r") == windows
    assert store.telemetry_summary("o/r")["kernels"] == 7


def test_text_no_database_can_hold_is_stored_not_refused(store):
    """A service name from a non-UTF-8 environment variable arrives as a lone surrogate
    (JSON ``"\\ud800"``); PostgreSQL holds no NUL. Neither may make a sender's every batch,
    or a webhook, fail: the window is kept verbatim, the columns read from it are made
    storable."""
    odd = [
        {"kernel": "soft\udcffmax", "service": "svc\ud800", "calls": 1},
        {"kernel": "nul\x00kernel", "service": "nul\x00svc", "calls": 2},
        {"kernel": "softmax", "service": "plain", "calls": 3},
    ]
    assert store.store_telemetry("odd", "o/r", 1, odd, None) == 3
    assert store.telemetry_windows("o/r") == odd
    assert store.telemetry_summary("o/r")["services"] == 3
    assert store.record_delivery("d\x00", "issue_comment", "edit\ud800ed", [], "queued\x00")
    [j] = store.enqueue([JobSpec("k", {"text": "\ud800\x00"})])
    job = store.claim(["default"], "w", lease=30)
    assert job.payload == {"text": "\ud800\x00"}
    assert store.retry(j, "w", time.time(), "boom: \ud800\x00")
    assert store.job(j).last_error.startswith("boom: ")
    store.replace_hypotheses("o/r", [{"id": "h\ud800", "kind": "k\x00", "kernel": "\udcff"}])
    assert store.hypotheses("o/r") == [{"id": "h\ud800", "kind": "k\x00", "kernel": "\udcff"}]


# -- hypotheses, PRs and runs ----------------------------------------------------------------
def test_hypotheses_are_replaced_whole_in_rank_order(store):
    first = [
        {"id": "h1", "kind": "retune", "kernel": "softmax", "expected_gain": 0.2},
        {"id": "h2", "kind": "new_variant", "kernel": "matmul", "expected_gain": True},
    ]
    store.replace_hypotheses(REPO, first)
    assert store.hypotheses(REPO) == first
    second = [{"id": "h3"}, {"id": 2, "x": 1}, {"id": "h1", "expected_gain": "big"}, {"id": "2", "x": 2}]
    store.replace_hypotheses(REPO, second)
    # One per id (ids compare as text), ranked where it last appears.
    assert store.hypotheses(REPO) == [{"id": "h3"}, {"id": "h1", "expected_gain": "big"}, {"id": "2", "x": 2}]
    assert store.hypotheses("o/other") == []
    store.replace_hypotheses(REPO, [])
    assert store.hypotheses(REPO) == []


def test_one_open_pull_per_hypothesis(store):
    change = {"hypothesis_id": "h1", "files": {"kernels/a.py": "x"}}
    store.save_pull(REPO, "h1", 7, "aina/softmax/h1", head_sha="s1", title="t1", kernel="softmax", change=change)
    # The same PR again (a new head): updated in place.
    store.save_pull(
        REPO, "h1", 7, "aina/softmax/h1", head_sha="s2", title="t2", kernel="softmax", change={**change, "v": 2}
    )
    link = store.open_pull(REPO, "h1")
    assert (link["number"], link["head_sha"], link["title"], link["state"]) == (7, "s2", "t2", "open")
    assert link["change"] == {**change, "v": 2}
    assert store.pull_by_head(REPO, "s2")["number"] == 7 and store.pull_by_head(REPO, "s1") is None
    # A second open PR for the hypothesis is refused, and nothing is written.
    with pytest.raises(StoreConflict):
        store.save_pull(REPO, "h1", 8, "aina/softmax/h1-b", head_sha="s3", title="t3", kernel="softmax", change=change)
    assert store.pull(REPO, 8) is None and len(store.pulls(REPO)) == 1
    # Once it is closed, the hypothesis may have a new one.
    assert store.close_pull(REPO, 7, "closed", "maintainer") is True
    assert store.close_pull(REPO, 7, "closed", "maintainer") is False, "closed twice"
    assert store.close_pull(REPO, 99, "merged") is False, "unknown PR"
    # who merged: recorded over the closed event's account, for merged PRs only
    assert store.attribute_merge(REPO, 7, "someone") is False, "closed, not merged"
    assert store.open_pull(REPO, "h1") is None
    closed = store.pull(REPO, 7)
    assert (closed["state"], closed["outcome"], closed["closed_by"]) == ("closed", "closed", "maintainer")
    assert closed["closed_at"] is not None
    store.save_pull(REPO, "h1", 8, "aina/softmax/h1", head_sha="s3", title="t3", kernel="softmax", change=change)
    assert store.open_pull(REPO, "h1")["number"] == 8


def test_pulls_are_listed_newest_first_by_state(store):
    for n, hyp in [(1, "a"), (2, "b"), (3, "c")]:
        store.save_pull(REPO, hyp, n, f"aina/k/{hyp}", head_sha=f"s{n}", title=hyp, kernel=None, change={})
        time.sleep(0.01)
    store.close_pull(REPO, 2, "merged", "app[bot]")
    assert store.attribute_merge(REPO, 2, "maintainer") is True
    assert (store.pull(REPO, 2)["outcome"], store.pull(REPO, 2)["closed_by"]) == ("merged", "maintainer")
    assert [p["number"] for p in store.pulls(REPO)] == [2, 3, 1]
    assert [p["number"] for p in store.pulls(REPO, state="open")] == [3, 1]
    assert [p["number"] for p in store.pulls(REPO, limit=1)] == [2]
    assert store.pulls("o/other") == []
    assert store.pull(REPO, 1)["change"] == {}


def test_runs_are_started_finished_and_listed_newest_first(store):
    r1 = store.start_run(REPO, "h1", 11)
    r2 = store.start_run(REPO, "h2", 12)
    assert r1 != r2
    store.finish_run(r1, "change", "softmax: faster")
    runs = store.runs(REPO)
    assert [r["id"] for r in runs] == [r2, r1]
    assert (runs[1]["outcome"], runs[1]["detail"], runs[1]["job_id"]) == ("change", "softmax: faster", 11)
    assert runs[1]["finished_at"] >= runs[1]["started_at"]
    assert runs[0]["outcome"] is None and runs[0]["finished_at"] is None
    assert [r["id"] for r in store.runs(REPO, limit=1)] == [r2]


def test_meta_values_are_kept_by_key(store):
    assert store.get_meta("schema") is None
    store.set_meta("schema", "1")
    store.set_meta("schema", "2")
    assert store.get_meta("schema") == "2"


def test_rows_have_the_same_columns_in_every_backend(store):
    """The App and the dashboard read rows by column name: a backend must give them all."""
    store.upsert_installation(5, "octo-org", True)
    store.upsert_repository(REPO, 5)
    store.save_pull(REPO, "h1", 7, "b", head_sha="s", title="t", kernel="k", change={"a": 1})
    store.start_run(REPO, "h1", 1)
    assert set(store.installation(5)) == {"id", "account", "active", "updated_at"}
    assert set(store.repository(REPO)) == {
        "full_name",
        "installation_id",
        "repo_id",
        "default_branch",
        "baseline_sha",
        "dashboard_issue",
        "policy_error",
        "active",
        "updated_at",
    }
    assert set(store.pull(REPO, 7)) == {
        "id",
        "repository",
        "hypothesis_id",
        "number",
        "branch",
        "head_sha",
        "title",
        "kernel",
        "change",
        "state",
        "outcome",
        "closed_by",
        "opened_at",
        "updated_at",
        "closed_at",
    }
    assert set(store.runs(REPO)[0]) == {
        "id",
        "repository",
        "hypothesis_id",
        "job_id",
        "outcome",
        "detail",
        "started_at",
        "finished_at",
    }
    assert set(store.telemetry_summary(REPO)) == {"windows", "services", "kernels", "last_received"}


# -- merged claims, verified in production ------------------------------------------------
def _claim(store, number: int, merged_at: float = 100.0, kernel: str = "softmax") -> bool:
    return store.record_claim(
        REPO,
        number,
        kernel=kernel,
        variant=f"{kernel}_c{number}",
        proposer="llm",
        device="NVIDIA H100 80GB HBM3",
        merged_at=merged_at,
        body={"claims": [{"case": "M=4096,N=50304,float16", "latency_s": 1e-4}]},
    )


def test_a_claim_is_recorded_once_and_decided_once(store):
    assert _claim(store, 7) is True
    assert _claim(store, 7, merged_at=999.0) is False  # a merge job run again
    row = store.claim_of(REPO, 7)
    assert (row["status"], row["variant"], row["merged_at"], row["verification"]) == (
        "verifying",
        "softmax_c7",
        100.0,
        None,
    )
    assert row["body"]["claims"][0]["latency_s"] == 1e-4
    assert set(row) == {
        "repository",
        "number",
        "kernel",
        "variant",
        "proposer",
        "device",
        "merged_at",
        "body",
        "status",
        "verification",
        "revert_number",
        "updated_at",
    }
    # not enough data: the claim stays open, its latest look kept
    assert store.settle_claim(REPO, 7, "verifying", {"status": "not enough data"}) is True
    assert store.claim_of(REPO, 7)["verification"] == {"status": "not enough data"}
    assert store.settle_claim(REPO, 7, "contradicted", {"status": "contradicted", "n": 1}) is True
    # decided: another look (a redelivered job, another worker) changes nothing
    assert store.settle_claim(REPO, 7, "confirmed", {"status": "confirmed"}) is False
    assert store.claim_of(REPO, 7)["status"] == "contradicted"
    with pytest.raises(ValueError, match="unknown claim state"):
        store.settle_claim(REPO, 7, "maybe", {})
    assert store.settle_claim(REPO, 99, "confirmed", {}) is False  # unknown


def test_a_revert_is_linked_to_a_contradicted_claim_only(store):
    _claim(store, 7)
    _claim(store, 8, merged_at=50.0)
    assert store.link_revert(REPO, 7, 12) is False  # still verifying
    store.settle_claim(REPO, 7, "contradicted", {})
    assert store.link_revert(REPO, 7, 12) is True
    assert (store.claim_of(REPO, 7)["status"], store.claim_of(REPO, 7)["revert_number"]) == ("contradicted", 12)
    assert store.link_revert(REPO, 7, 12, merged=True) is True
    assert store.claim_of(REPO, 7)["status"] == "reverted"
    assert [c["number"] for c in store.claims(REPO)] == [8, 7]  # oldest merge first
    assert [c["number"] for c in store.claims(REPO, "reverted")] == [7]
    assert store.claims("someone/else") == []


def test_a_claim_undecided_after_max_days_is_inconclusive_final_and_kept_apart(store):
    _claim(store, 7)
    _claim(store, 8, merged_at=50.0)
    look = {"status": "not enough data", "final": True, "reason": "not enough data after 2 days: no shape ran enough"}
    assert store.settle_claim(REPO, 7, "inconclusive", look) is True
    row = store.claim_of(REPO, 7)
    assert (row["status"], row["verification"]) == ("inconclusive", look)
    # final: a later look (late telemetry, another worker) decides nothing more
    assert store.settle_claim(REPO, 7, "contradicted", {"status": "contradicted"}) is False
    assert store.settle_claim(REPO, 7, "verifying", {}) is False
    assert store.link_revert(REPO, 7, 12) is False  # nothing to revert
    assert store.claim_of(REPO, 7)["status"] == "inconclusive"
    assert [c["number"] for c in store.claims(REPO, "inconclusive")] == [7]
    assert [c["number"] for c in store.claims(REPO, "verifying")] == [8]


def test_telemetry_rows_carry_their_stored_ids(store):
    store.upsert_installation(5, "octo-org", True)
    store.upsert_repository(REPO, 5)
    windows = [{"kernel": "softmax", "i": 1}, {"kernel": "rms_norm", "i": 2}, {"kernel": "softmax", "i": 3}]
    store.store_telemetry("d1", REPO, 5, windows, None)
    rows = store.telemetry_rows(REPO, "softmax")
    assert [w["i"] for _, w in rows] == [1, 3]
    ids = [i for i, _ in rows]
    assert len(set(ids)) == 2 and all(isinstance(i, int) for i in ids)
    assert store.telemetry_rows(REPO, "softmax", since=time.time() + 60) == []
    # every kernel's (the Reasoner's input, citing stored ids), in the order they arrived
    every = store.telemetry_rows(REPO, None)
    assert [w["i"] for _, w in every] == [1, 2, 3] and {i for i, _ in every} > set(ids)
