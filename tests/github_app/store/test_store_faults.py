"""The store's contract, part 3: deadlines. A database that cannot take a write in time
(another process holds its lock) makes the call raise StoreUnavailable within the deadline,
with nothing written, instead of holding the caller: a webhook thread must answer (503)
well inside GitHub's 10 s. Reads go on meanwhile."""

from __future__ import annotations

import threading
import time

import pytest

from github_app.store import DEADLINE_SECONDS, JobSpec, StoreUnavailable

DEADLINE = 0.5
#: What a loaded CI machine may add to a deadline before the call comes back.
SLACK = 3.0


def test_the_default_deadline_leaves_room_inside_githubs_ten_seconds():
    assert DEADLINE_SECONDS * 2 <= 10


def test_a_write_while_another_process_holds_the_lock_gives_up_at_the_deadline(backend):
    store = backend.open(timeout=DEADLINE)
    try:
        store.enqueue([JobSpec("before", {})])
        with backend.locked():
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                store.record_delivery("g1", "push", None, [JobSpec("push", {})], "queued")
            waited = time.monotonic() - started
            assert DEADLINE * 0.8 <= waited < DEADLINE + SLACK, waited
            assert caught.value.retry_after > 0
            # Reads are not held up by a writer.
            assert not store.delivery_seen("g1")
            assert [j.kind for j in store.jobs()] == ["before"]
        assert not store.delivery_seen("g1"), "a call that gave up wrote something"
        assert store.record_delivery("g1", "push", None, [JobSpec("push", {})], "queued")
        assert [j.kind for j in store.jobs()] == ["before", "push"]
    finally:
        store.close()


def test_every_waiting_thread_gives_up_within_the_deadline(backend):
    """Threads of one process queue behind each other for the database; that queue has the
    same deadline, so eight webhook threads do not wait eight deadlines."""
    store = backend.open(timeout=DEADLINE)
    waits, outcomes = [], []

    def write(i):
        started = time.monotonic()
        try:
            store.store_telemetry(f"batch-{i}", "o/r", 1, [{"calls": i}], None)
            outcomes.append("stored")
        except StoreUnavailable:
            outcomes.append("unavailable")
        waits.append(time.monotonic() - started)

    try:
        with backend.locked():
            threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert outcomes == ["unavailable"] * 8
        assert max(waits) < DEADLINE + SLACK, waits
        assert store.telemetry_summary("o/r")["windows"] == 0
        assert store.store_telemetry("batch-0", "o/r", 1, [{"calls": 0}], None) == 1
    finally:
        store.close()


def test_a_claim_on_a_locked_database_is_unavailable_not_a_lost_job(backend):
    store = backend.open(timeout=DEADLINE)
    try:
        [j] = store.enqueue([JobSpec("k", {})])
        with backend.locked(), pytest.raises(StoreUnavailable):
            store.claim(["default"], "w", lease=30)
        assert store.job(j).state == "queued" and store.job(j).attempts == 0
        assert store.claim(["default"], "w", lease=30).id == j
    finally:
        store.close()
