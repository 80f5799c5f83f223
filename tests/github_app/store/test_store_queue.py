"""The store's contract, part 1: the durable job queue the App's workers share.

What the worker relies on (github_app/worker.py): a claimed job is one worker's until its
lease runs out; completion, retry, deferral and failure count only from the worker holding
it, and follow-ups are enqueued in the same transaction; jobs with one key wait behind each
other and never run at once (that is how one hypothesis gets one PR); schedules fire once
per interval across every worker.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from github_app.store import DEFERRED, DONE, FAILED, QUEUED, RUNNING, JobSpec


def test_enqueue_gives_ids_and_claim_takes_due_jobs_oldest_first(store):
    ids = store.enqueue([JobSpec("a", {"n": 1}), JobSpec("b", {"n": 2}, repository="o/r")])
    assert all(isinstance(i, int) for i in ids) and ids[0] != ids[1]
    first = store.claim(["default"], "w", lease=30)
    assert (first.id, first.kind, first.payload, first.state) == (ids[0], "a", {"n": 1}, RUNNING)
    assert (first.attempts, first.max_attempts, first.worker) == (1, 3, "w")
    assert first.checkpoint == {} and first.result is None and first.last_error is None
    second = store.claim(["default"], "w", lease=30)
    assert (second.id, second.repository) == (ids[1], "o/r")
    assert store.claim(["default"], "w", lease=30) is None


def test_a_delayed_job_waits_for_its_time(store):
    [j] = store.enqueue([JobSpec("later", {}, delay=0.4)])
    assert store.claim(["default"], "w", lease=30) is None
    time.sleep(0.5)
    assert store.claim(["default"], "w", lease=30).id == j


def test_a_worker_claims_from_its_own_queues_only(store):
    [e] = store.enqueue([JobSpec("evolve", {}, queue="evolution")])
    assert store.claim(["default"], "w", lease=30) is None
    assert store.claim(["evolution"], "e", lease=30).id == e
    [d] = store.enqueue([JobSpec("d", {})])
    assert store.claim(["evolution", "default"], "e", lease=30).id == d


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


def test_a_heartbeat_keeps_the_lease_and_only_its_holder_can_beat(store):
    [j] = store.enqueue([JobSpec("k", {})])
    store.claim(["default"], "w1", lease=0.3)
    for _ in range(3):
        time.sleep(0.15)
        assert store.heartbeat(j, "w1", 0.3)
    assert store.claim(["default"], "w2", lease=5) is None, "a beating worker's job was taken"
    assert not store.heartbeat(j, "w2", 5)
    time.sleep(0.35)
    assert store.claim(["default"], "w2", lease=5).id == j
    assert not store.heartbeat(j, "w1", 5), "the old holder must learn it lost the job"


def test_checkpoints_merge_and_survive_a_takeover(store):
    [j] = store.enqueue([JobSpec("evolve", {})])
    store.claim(["default"], "w1", lease=0.2)
    assert store.checkpoint(j, "w1", {"run_id": 7})
    assert store.checkpoint(j, "w1", {"stage": "search"})
    time.sleep(0.25)
    again = store.claim(["default"], "w2", lease=5)
    assert again.checkpoint == {"run_id": 7, "stage": "search"}
    assert store.checkpoint(j, "w2", {"stage": "write"})
    assert store.job(j).checkpoint == {"run_id": 7, "stage": "write"}


def test_one_key_one_waiting_job_and_never_two_running(store):
    a, b = store.enqueue([JobSpec("k", {"v": 1}, key="same"), JobSpec("k", {"v": 2}, key="same")])
    assert a is not None and b is None
    running = store.claim(["default"], "w1", lease=30)
    [c] = store.enqueue([JobSpec("k", {"v": 3}, key="same")])
    assert c is not None, "a change arriving mid-run must wait behind the run, not be lost"
    assert store.claim(["default"], "w2", lease=30) is None, "same key must not run twice at once"
    store.complete(running.id, "w1", None)
    assert store.claim(["default"], "w2", lease=30).payload == {"v": 3}


def test_a_job_waiting_behind_a_dead_run_waits_until_the_run_is_taken_over_and_ends(store):
    [first] = store.enqueue([JobSpec("publish", {"v": 1}, key="publish:o/r:h1")])
    store.claim(["default"], "w1", lease=0.2)
    [second] = store.enqueue([JobSpec("publish", {"v": 2}, key="publish:o/r:h1")])
    time.sleep(0.25)
    taken = store.claim(["default"], "w2", lease=30)
    assert taken.id == first, "the dead run is taken over before the job behind it"
    assert store.claim(["default"], "w3", lease=30) is None
    assert store.complete(first, "w2", None)
    assert store.claim(["default"], "w3", lease=30).id == second


def test_a_failing_job_is_superseded_by_a_newer_one_with_its_key(store):
    [first] = store.enqueue([JobSpec("k", {"v": 1}, key="same")])
    store.claim(["default"], "w1", lease=30)
    store.enqueue([JobSpec("k", {"v": 2}, key="same")])
    assert store.retry(first, "w1", time.time(), "boom")
    assert store.job(first).state == "done" and "superseded" in store.job(first).last_error


def test_retry_requeues_with_its_error_and_counts_the_attempt_unless_told_not_to(store):
    [j] = store.enqueue([JobSpec("k", {})])
    store.claim(["default"], "w", lease=30)
    assert not store.retry(j, "other", time.time(), "not mine")
    assert store.retry(j, "w", time.time() + 0.3, "HTTP 502")
    job = store.job(j)
    assert (job.state, job.last_error, job.attempts) == (QUEUED, "HTTP 502", 1)
    assert store.claim(["default"], "w", lease=30) is None, "retried before its time"
    time.sleep(0.35)
    assert store.claim(["default"], "w", lease=30).attempts == 2
    assert store.retry(j, "w", time.time(), "rate limited", count_attempt=False)
    assert store.claim(["default"], "w", lease=30).attempts == 2


def test_deferred_jobs_wait_for_their_repository_to_release_them(store):
    [j] = store.enqueue([JobSpec("publish", {}, key="p", repository="o/r")])
    store.claim(["default"], "w", lease=30)
    assert store.defer(j, "w", "no slot")
    assert store.claim(["default"], "w", lease=30) is None
    assert store.release_deferred("o/other") == 0
    assert store.release_deferred("o/r") == 1
    assert store.claim(["default"], "w", lease=30).id == j


def test_a_deferral_does_not_count_as_an_attempt_and_keeps_the_key_waiting(store):
    [j] = store.enqueue([JobSpec("publish", {"v": 1}, key="p", repository="o/r")])
    store.claim(["default"], "w", lease=30)
    assert store.defer(j, "w", "2 bot PRs open")
    job = store.job(j)
    assert (job.state, job.attempts, job.last_error) == (DEFERRED, 0, "2 bot PRs open")
    assert store.enqueue([JobSpec("publish", {"v": 2}, key="p", repository="o/r")]) == [None]


def test_a_deferral_is_superseded_by_a_newer_waiting_job_with_its_key(store):
    [first] = store.enqueue([JobSpec("publish", {"v": 1}, key="p", repository="o/r")])
    store.claim(["default"], "w", lease=30)
    [newer] = store.enqueue([JobSpec("publish", {"v": 2}, key="p", repository="o/r")])
    assert store.defer(first, "w", "no slot")
    assert store.job(first).state == DONE and "superseded" in store.job(first).last_error
    assert store.job(newer).state == QUEUED


def test_follow_ups_are_enqueued_with_completion_or_failure_only(store):
    [j] = store.enqueue([JobSpec("a", {})])
    store.claim(["default"], "w", lease=30)
    assert store.fail(j, "w", "bad", [JobSpec("dashboard", {}, key="d")])
    assert [x.kind for x in store.jobs(state="queued")] == ["dashboard"]


def test_a_refused_completion_enqueues_nothing(store):
    [j] = store.enqueue([JobSpec("a", {})])
    store.claim(["default"], "w1", lease=0.1)
    time.sleep(0.15)
    store.claim(["default"], "w2", lease=30)
    assert not store.complete(j, "w1", {"by": "w1"}, [JobSpec("publish", {}, key="x")])
    assert not store.fail(j, "w1", "late", [JobSpec("dashboard", {}, key="d")])
    assert store.jobs(state=QUEUED) == []
    assert store.complete(j, "w2", {"by": "w2"}, [JobSpec("publish", {"n": 1}, key="x")])
    job = store.job(j)
    assert (job.state, job.result, job.attempts) == (DONE, {"by": "w2"}, 2)
    assert [(x.kind, x.payload) for x in store.jobs(state=QUEUED)] == [("publish", {"n": 1})]


def test_complete_and_claim_completes_then_takes_the_next_due_job(store):
    """What a worker that keeps up does after each job: its completion (with follow-ups)
    and its next claim in one call, the same as the two calls one after the other."""
    a, b = store.enqueue([JobSpec("a", {}, key="ka"), JobSpec("b", {})])
    store.claim(["default"], "w", lease=30)
    done, nxt = store.complete_and_claim(a, "w", {"n": 1}, [JobSpec("c", {}, key="ka")], ["default"], 30)
    assert done and store.job(a).state == DONE and store.job(a).result == {"n": 1}
    assert (nxt.id, nxt.state, nxt.worker, nxt.attempts) == (b, RUNNING, "w", 1)
    # the follow-up, with the key of the job just done, is due and free to run
    done, follow = store.complete_and_claim(b, "w", None, [], ["default"], 30)
    assert done and (follow.kind, follow.key, follow.state) == ("c", "ka", RUNNING)
    assert store.complete_and_claim(follow.id, "w", None, [], ["default"], 30) == (True, None)
    # a completion refused (not this worker's job) still lets the worker claim its next
    [d, e] = store.enqueue([JobSpec("d", {}), JobSpec("e", {})])
    assert store.claim(["default"], "w2", lease=30).id == d
    done, nxt = store.complete_and_claim(d, "w", None, [JobSpec("x", {})], ["default"], 30)
    assert not done and nxt.id == e and store.job(d).state == RUNNING
    assert [j.kind for j in store.jobs(state=QUEUED)] == []  # the refused follow-up is not queued


def test_complete_and_claim_takes_a_job_waiting_on_the_finished_jobs_key_not_the_finished_job(store):
    """The finished job is not running any more for the claim made with its completion: a
    job queued behind its key is taken, and the finished job itself is not claimed again,
    even where its lease has lapsed (PostgreSQL does both in one statement, whose snapshot
    still shows it running)."""
    [a] = store.enqueue([JobSpec("a", {}, key="k")])
    store.claim(["default"], "w", lease=30)
    [b] = store.enqueue([JobSpec("b", {}, key="k")])  # the same work asked again meanwhile
    assert store.claim(["default"], "w2", lease=30) is None  # held back while a runs
    done, nxt = store.complete_and_claim(a, "w", None, [], ["default"], 30)
    assert done and nxt is not None and nxt.id == b
    # a lease that lapsed while the job ran: completed, not taken over by its own worker
    [c] = store.enqueue([JobSpec("c", {})])
    assert store.claim(["default"], "w", lease=-1).id == c
    time.sleep(0.01)
    assert store.complete(b, "w", None)
    done, nxt = store.complete_and_claim(c, "w", {"ok": 1}, [], ["default"], 30)
    assert done and nxt is None
    assert (store.job(c).state, store.job(c).result, store.job(c).attempts) == (DONE, {"ok": 1}, 1)


def test_failure_is_final_and_keeps_its_error(store):
    [j] = store.enqueue([JobSpec("a", {}, key="k")])
    store.claim(["default"], "w", lease=30)
    assert store.fail(j, "w", "Permanent: policy refuses kernels/x.py")
    job = store.job(j)
    assert (job.state, job.last_error) == (FAILED, "Permanent: policy refuses kernels/x.py")
    assert store.claim(["default"], "w", lease=30) is None
    assert store.enqueue([JobSpec("a", {}, key="k")])[0] is not None, "a failed job frees its key"


def test_cancelling_a_repository_fails_its_waiting_jobs_only(store):
    q, d, r, other = store.enqueue(
        [
            JobSpec("a", {}, key="q", repository="o/r"),
            JobSpec("b", {}, key="d", repository="o/r"),
            JobSpec("c", {}, key="r", repository="o/r"),
            JobSpec("e", {}, repository="o/other"),
        ]
    )
    store.claim(["default"], "w", lease=30)  # q runs
    store.claim(["default"], "w", lease=30)  # d runs ...
    store.defer(d, "w", "no slot")  # ... and waits for a slot
    assert store.cancel_jobs("o/r") == 2
    states = {j: store.job(j).state for j in (q, d, r, other)}
    assert states == {q: RUNNING, d: FAILED, r: FAILED, other: QUEUED}
    assert "lost access" in store.job(r).last_error


def test_jobs_are_listed_by_state_kind_and_repository_and_counted(store):
    a, b, c = store.enqueue(
        [
            JobSpec("evolve", {}, repository="o/r", queue="evolution"),
            JobSpec("dashboard", {}, repository="o/r"),
            JobSpec("dashboard", {}, repository="o/s"),
        ]
    )
    store.claim(["default"], "w", lease=30)
    assert [j.id for j in store.jobs()] == [a, b, c]
    assert [j.id for j in store.jobs(state=QUEUED)] == [a, c]
    assert [j.id for j in store.jobs(kind="dashboard", repository="o/s")] == [c]
    assert [j.id for j in store.jobs(state=RUNNING, kind="dashboard", repository="o/r")] == [b]
    assert [j.id for j in store.jobs(limit=2)] == [a, b]
    assert store.job(10**9) is None
    assert store.job_counts() == {("evolve", QUEUED): 1, ("dashboard", RUNNING): 1, ("dashboard", QUEUED): 1}


def test_a_schedule_fires_once_per_interval_across_workers(store, another):
    other = another()
    assert store.due("reason_all", 60) is True
    assert other.due("reason_all", 60) is False
    assert other.due("redeliver", 0.2) is True and store.due("redeliver", 0.2) is False
    time.sleep(0.25)
    assert store.due("redeliver", 0.2) is True


def test_concurrent_claimers_take_each_job_exactly_once(store, another):
    n_jobs, n_workers = 120, 4
    store.enqueue([JobSpec("k", {"i": i}) for i in range(n_jobs)])
    handles = [another() for _ in range(n_workers)]
    done: list[tuple[str, int]] = []
    errors = []

    def work(w: int):
        name = f"w{w}"
        try:
            while True:
                job = handles[w].claim(["default"], name, lease=30)
                if job is None:
                    return
                assert handles[w].complete(job.id, name, {"by": name})
                done.append((name, job.id))
        except BaseException as exc:  # shown below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(j for _, j in done) == sorted(j.id for j in store.jobs(limit=1000))
    assert Counter(j for _, j in done).most_common(1)[0][1] == 1
    assert store.job_counts() == {("k", DONE): n_jobs}


def test_concurrent_claimers_never_run_two_jobs_with_one_key(store, another):
    """Workers race for jobs that share a few keys while more arrive and leases run out:
    at no moment do two jobs with one key run."""
    keys = [f"publish:o/r:h{i}" for i in range(3)]
    handles = [another() for _ in range(4)]
    running: dict[str, int] = {}
    overlaps, errors, ran = [], [], Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            store.enqueue([JobSpec("publish", {"i": i}, key=keys[i % len(keys)])])
            i += 1
            time.sleep(0.002)

    def work(w: int):
        name = f"w{w}"
        try:
            while not stop.is_set():
                # Short leases, and now and then a worker that "dies" mid-job, so jobs
                # are also taken over while a job with their key waits.
                job = handles[w].claim(["default"], name, lease=0.15)
                if job is None:
                    time.sleep(0.002)
                    continue
                with lock:
                    if running.get(job.key) not in (None, job.id):
                        overlaps.append((job.key, running[job.key], job.id))
                    running[job.key] = job.id
                ran[job.id] += 1
                if ran[job.id] == 1 and job.id % 7 == 0:
                    time.sleep(0.2)  # dead: its lease runs out, another worker takes it
                    continue
                time.sleep(0.003)
                with lock:
                    if running.get(job.key) == job.id:
                        del running[job.key]
                handles[w].complete(job.id, name, None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=feed)] + [threading.Thread(target=work, args=(w,)) for w in range(len(handles))]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(ran) > 20, f"only {len(ran)} jobs ran: the test proves nothing"
    assert any(n > 1 for n in ran.values()), "no lease ran out: the test proves less"
    assert not overlaps, f"jobs with one key ran at once: {overlaps[:5]}"
