"""What only the SQLite store does: group commits for the acknowledged writes, two
durability levels, and a worker that looks before it takes the write lock (the
module docstring of :mod:`github_app.store.sqlite` says why)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from github_app.store import JobSpec, SQLiteStore, StoreConflict, StoreUnavailable


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "store.sqlite3", timeout=2.0)
    yield s
    s.close()


def _traced(store: SQLiteStore) -> list[str]:
    """The statements this thread's connection runs from now on."""
    statements: list[str] = []
    store._con().set_trace_callback(statements.append)
    return statements


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_acknowledged_writes_that_wait_together_commit_together_and_fail_alone(store):
    """Deliveries that arrive while a commit is in progress share the next one; one whose
    own write fails (here: a payload that is not JSON) raises in its thread alone, and
    the others are stored."""
    results: dict[str, object] = {}
    commits: list[str] = []

    def deliver(guid, payload):
        store._con().set_trace_callback(lambda sql: sql == "COMMIT" and commits.append(guid))
        try:
            results[guid] = store.record_delivery(guid, "push", None, [JobSpec("k", payload, key=guid)], "handled")
        except Exception as exc:
            results[guid] = exc

    guids = [f"d{i}" for i in range(6)]
    store._write_lock.acquire()  # a commit in progress: the writes queue up behind it
    threads = [threading.Thread(target=deliver, args=(g, {"bad": object()} if g == "d3" else {"n": g})) for g in guids]
    for t in threads:
        t.start()
    _wait_for(lambda: len(store._pending) == len(guids))
    store._write_lock.release()
    for t in threads:
        t.join(10)

    assert len(commits) == 1, f"one commit for the group, not {commits}"
    assert isinstance(results.pop("d3"), TypeError)
    assert results == {g: True for g in guids if g != "d3"}
    assert {g for g in guids if store.delivery_seen(g)} == set(guids) - {"d3"}
    assert sorted(j.key for j in store.jobs(limit=100)) == sorted(set(guids) - {"d3"})


def test_recording_a_delivery_already_recorded_writes_nothing(store):
    """A redelivery found by the write: its INSERT OR IGNORE changes no page, so its commit
    appends nothing to the WAL and has nothing to fsync (a storm of redeliveries stays off
    the disk; Store.CHECK_SEEN_FIRST says why SQLite still reads first)."""
    wal = f"{store.path}-wal"
    assert store.record_delivery("once", "push", None, [JobSpec("b", {})], "handled") is True
    statements = _traced(store)
    size, mtime = os.path.getsize(wal), os.stat(wal).st_mtime_ns
    assert store.record_delivery("once", "push", None, [JobSpec("b", {})], "handled") is False
    assert "COMMIT" in statements  # it did go through a write transaction
    assert (os.path.getsize(wal), os.stat(wal).st_mtime_ns) == (size, mtime)
    assert len(store.jobs(kind="b")) == 1


def test_a_redelivery_in_the_same_group_is_stored_once(store):
    out: list[bool] = []
    store._write_lock.acquire()
    threads = [
        threading.Thread(target=lambda: out.append(store.record_delivery("same", "push", None, [], "ignored")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    _wait_for(lambda: len(store._pending) == 4)
    store._write_lock.release()
    for t in threads:
        t.join(10)
    assert sorted(out) == [False, False, False, True]


def test_a_conflict_in_a_group_is_that_writes_alone(store, monkeypatch):
    """A broken rule (StoreConflict) fails its own write, rolled back to its savepoint."""
    real = store._enqueue

    def enqueue(con, jobs):
        if jobs and jobs[0].key == "clash":
            con.execute("INSERT INTO schedules (name, next_run) VALUES ('x', 1)")
            con.execute("INSERT INTO schedules (name, next_run) VALUES ('x', 1)")  # primary key
        return real(con, jobs)

    monkeypatch.setattr(store, "_enqueue", enqueue)
    results = {}
    store._write_lock.acquire()
    threads = [
        threading.Thread(
            target=lambda g=g: results.__setitem__(
                g, _capture(lambda: store.record_delivery(g, "push", None, [JobSpec("k", {}, key=g)], "handled"))
            )
        )
        for g in ("a", "clash", "b")
    ]
    for t in threads:
        t.start()
    _wait_for(lambda: len(store._pending) == 3)
    store._write_lock.release()
    for t in threads:
        t.join(10)
    assert isinstance(results["clash"], StoreConflict)
    assert results["a"] is True and results["b"] is True
    assert not store.delivery_seen("clash")
    assert store._row("SELECT COUNT(*) AS n FROM schedules WHERE name = 'x'")["n"] == 0


def _capture(call):
    try:
        return call()
    except Exception as exc:
        return exc


def test_a_group_waiting_past_the_deadline_is_unavailable_and_wrote_nothing(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3", timeout=0.3)
    store._write_lock.acquire()
    try:
        with pytest.raises(StoreUnavailable):
            store.record_delivery("late", "push", None, [], "ignored")
    finally:
        store._write_lock.release()
    assert store._pending == []
    assert not store.delivery_seen("late")
    store.close()


def test_acknowledgements_commit_with_fsync_and_job_transitions_without(store):
    """synchronous=FULL for what a client is told is stored, NORMAL for the job queue's
    transitions (a power loss may take back the last of those: a job runs again)."""
    statements = _traced(store)

    def level():
        return store._con().execute("PRAGMA synchronous").fetchone()[0]

    store.record_delivery("d1", "push", None, [JobSpec("k", {}, key="k1")], "handled")
    assert level() == 2  # FULL
    job = store.claim(["default"], "w", 60)
    assert job is not None and level() == 1  # NORMAL
    assert store.complete(job.id, "w", {"ok": True})
    store.record_delivery("d2", "push", None, [], "ignored")
    assert level() == 2
    store.store_telemetry("b1", "o/r", 1, [{"kernel": "k", "service": "s"}], None)
    assert level() == 2
    assert [s for s in statements if s.startswith("PRAGMA synchronous=")] == [
        "PRAGMA synchronous=NORMAL",
        "PRAGMA synchronous=FULL",
    ]


def test_an_idle_worker_does_not_take_the_write_lock(tmp_path):
    """With nothing due, claim and due only read: they neither wait for another
    process's write transaction nor hold up this process's writers."""
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path, timeout=0.5)
    store.due("reason_all", 600)  # scheduled: not due again for ten minutes
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the deadline
    store._write_lock.acquire()  # and this process's lock taken too
    try:  # taking either lock would wait out the deadline and raise StoreUnavailable
        assert store.claim(["default"], "w", 60) is None
        assert store.due("reason_all", 600) is False
    finally:
        store._write_lock.release()
        other.execute("ROLLBACK")
        other.close()
    store.enqueue([JobSpec("k", {})])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:  # a due job is claimed under the lock, so it waits, then gives up in time
        with pytest.raises(StoreUnavailable):
            store.claim(["default"], "w", 60)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.claim(["default"], "w", 60) is not None
    store.close()


def test_a_group_gives_up_by_its_oldest_writes_deadline(tmp_path):
    """A write that has waited most of its deadline, taken into a group led by a newer
    one, is not held to the newer one's deadline: the group gives up by the oldest's."""
    from github_app.store.sqlite import _Pending

    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path, timeout=1.0)
    older = _Pending(lambda con: "stored")
    older.started -= 0.8  # 0.2 s of its deadline left
    store._pending.append(older)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the lock past every deadline
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.record_delivery("newer", "push", None, [], "ignored")
        waited = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert older.done and isinstance(older.error, StoreUnavailable)
    assert waited < 0.6, f"the group waited {waited:.2f} s: the newer write's deadline, not the older's"
    store.close()


def test_a_claim_walks_the_due_index_and_does_not_sort_the_backlog(store):
    """Each of the claim's queries stops at the first row of the ``jobs_due`` index: one
    query over lapsed runs and due jobs together (an OR) made SQLite gather and sort every
    waiting job on every claim, so a backlog slowed each claim in proportion."""
    store.enqueue([JobSpec("pull_closed", {"n": i}, key=f"k{i}") for i in range(50)])
    statements = _traced(store)
    job = store.claim(("default",), "w", 60)
    assert job is not None and job.payload == {"n": 0}  # the oldest due job
    picks = [s for s in statements if s.lstrip().startswith("SELECT id FROM jobs")]
    assert picks, statements
    con = sqlite3.connect(store.path)
    for sql in picks:
        plan = " / ".join(row[3] for row in con.execute("EXPLAIN QUERY PLAN " + sql))
        assert "jobs_due" in plan and "TEMP B-TREE" not in plan, plan
    con.close()


def test_writes_that_would_change_nothing_do_not_take_the_write_lock(tmp_path):
    """A pull already closed, a repository with nothing deferred: the worker asks for
    these after every ``pull_closed`` job, and a read says there is nothing to do. Taking
    the write lock for them was two of its four turns on it per job."""
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path, timeout=0.5)
    store.save_pull("o/r", "h1", 7, "aina/x", head_sha="s", title="t", kernel="k", change={})
    assert store.close_pull("o/r", 7, "merged")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, past the deadline
    try:  # taking the lock would wait out the deadline and raise StoreUnavailable
        assert store.close_pull("o/r", 7, "closed") is False
        assert store.close_pull("o/r", 8, "closed") is False
        assert store.release_deferred("o/r") == 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.pull("o/r", 7)["outcome"] == "merged"
    # with something to do, they write as before
    [j] = store.enqueue([JobSpec("evolve", {}, repository="o/r")])
    store.claim(["default"], "w", 60)
    assert store.defer(j, "w", "a PR is open")
    assert store.release_deferred("o/r") == 1
    store.close()


def test_complete_and_claim_takes_the_write_lock_once(store):
    """A worker that keeps up completes a job and claims the next in one transaction."""
    store.enqueue([JobSpec("a", {}), JobSpec("b", {})])
    first = store.claim(["default"], "w", 60)
    statements = _traced(store)
    done, nxt = store.complete_and_claim(first.id, "w", {}, [], ["default"], 60)
    assert done and nxt is not None
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
