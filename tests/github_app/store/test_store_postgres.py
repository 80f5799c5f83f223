"""What only the PostgreSQL store has: schema migrations, the ``postgresql://`` setting, a
server that goes away and comes back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

from github_app.store import JobSpec, StoreUnavailable, open_store
from github_app.store.postgres import PostgresStore
from github_app.store.postgres_schema import MIGRATIONS, migrate


@pytest.fixture
def empty(postgres):
    """A database with nothing in it, not even the schema."""
    dsn = postgres.create_database("migrate")
    yield dsn
    postgres.drop_database(dsn)


def versions(dsn) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as con:
        return con.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()


def test_a_fresh_database_is_migrated_to_the_latest_version(empty):
    store = PostgresStore(empty)
    store.close()
    assert versions(empty) == [(v, d) for v, d, _ in MIGRATIONS]
    again = PostgresStore(empty)  # opening again changes nothing
    again.enqueue([JobSpec("k", {})])
    again.close()
    assert versions(empty) == [(v, d) for v, d, _ in MIGRATIONS]


def test_app_processes_starting_together_migrate_once(empty):
    start_at = time.time() + 3
    code = textwrap.dedent(f"""
        import sys, time
        from github_app.store import open_store
        time.sleep(max(0, {start_at} - time.time()))
        store = open_store(sys.argv[1])
        store.set_meta("opened-by-" + sys.argv[2], "yes")
        store.close()
    """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, empty, str(i)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert versions(empty) == [(v, d) for v, d, _ in MIGRATIONS]
    store = PostgresStore(empty)
    assert [store.get_meta(f"opened-by-{i}") for i in range(4)] == ["yes"] * 4
    store.close()


def test_a_later_migration_runs_once_and_all_or_nothing(empty):
    PostgresStore(empty).close()
    latest = MIGRATIONS[-1][0]
    with psycopg.connect(empty, autocommit=True) as con:
        added = MIGRATIONS + [(latest + 1, "a note on meta", "ALTER TABLE meta ADD COLUMN note TEXT")]
        assert migrate(con, added) == latest + 1
        assert migrate(con, added) == latest + 1  # a second process finds nothing to do
        broken = added + [
            (latest + 2, "half a change", "ALTER TABLE meta ADD COLUMN half TEXT; SELECT no_such_function()")
        ]
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrate(con, broken)
        columns = {
            r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'meta'")
        }
    assert columns == {"key", "value", "note"}, "a failed migration left half its change"
    assert [v for v, _ in versions(empty)] == [v for v, _, _ in added]


def test_a_database_newer_than_the_app_is_refused(empty):
    PostgresStore(empty).close()
    with psycopg.connect(empty, autocommit=True) as con:
        con.execute("INSERT INTO schema_version VALUES (999, 'from the future', 0)")
    with pytest.raises(ValueError, match="version 999, newer than this App"):
        PostgresStore(empty)


def test_the_database_setting_takes_a_postgresql_url(empty, tmp_path):
    store = open_store(empty, max_attempts=4)
    try:
        assert isinstance(store, PostgresStore) and store.max_attempts == 4
        [j] = store.enqueue([JobSpec("k", {})])
        assert store.job(j).max_attempts == 4
    finally:
        store.close()
    with pytest.raises(ValueError, match="write postgresql://"):
        open_store("postgres://somewhere/aina")
    with pytest.raises(ValueError) as caught:
        open_store("mysql://user:secret@db/aina")
    assert "secret" not in str(caught.value), "a password in the setting was echoed"
    assert type(open_store(str(tmp_path / "x.sqlite3"))).__name__ == "SQLiteStore"


def test_the_app_runs_on_postgresql(postgres_database, app_key, tmp_path):
    from github_app import create_app

    app = create_app({"APP_ID": 7, "PRIVATE_KEY": app_key[0], "WEBHOOK_SECRET": "s", "DATABASE": postgres_database})
    services = app.extensions["aina"]
    try:
        assert isinstance(services.store, PostgresStore)
        client = app.test_client()
        assert client.get("/healthz").json == {"status": "ok"}
        assert client.get("/metrics").status_code == 200
    finally:
        services.store.close()


def test_an_unreachable_server_is_unavailable_at_once(postgres):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        PostgresStore(f"postgresql://aina@127.0.0.1:{port}/nothing", timeout=1.0)
    assert time.monotonic() - started < 10


def test_a_server_that_goes_away_and_comes_back(postgres, empty):
    store = PostgresStore(empty, timeout=1.0)
    try:
        [before] = store.enqueue([JobSpec("before", {})])
        postgres.pause()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                store.enqueue([JobSpec("while-down", {})])
            assert time.monotonic() - started < 10
        finally:
            postgres.resume()
        # The pool's connections died with the server; the next call gets a live one.
        [after] = store.enqueue([JobSpec("after", {})])
        assert [j.kind for j in store.jobs()] == ["before", "after"]
        assert store.job(before).state == "queued" and after != before
    finally:
        store.close()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_makes_its_own_connections(empty):
    """gunicorn --preload opens the App before it forks: a child must not use the parent's
    connections (two processes talking on one socket corrupts both)."""
    store = PostgresStore(empty)
    try:
        store.set_meta("parent", "1")  # the parent's pool exists and holds a connection
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: use the store, report, and leave without cleanup
            try:
                store.set_meta("child", "2")
                os.write(w, (store.get_meta("parent") or "?").encode())
            finally:
                os._exit(0)
        os.close(w)
        got = os.read(r, 10).decode()
        os.waitpid(pid, 0)
        assert got == "1"
        assert store.get_meta("child") == "2" and store.get_meta("parent") == "1"
    finally:
        store.close()


def test_job_transitions_skip_the_wal_flush_and_what_is_acknowledged_waits_for_it(empty, monkeypatch):
    """The queue's own transitions commit with synchronous_commit off (as SQLite's with
    synchronous=NORMAL); a delivery, an enqueue and everything else keep the server's
    setting, and the connection goes back to the pool with it."""
    from github_app.store.postgres import _NO_FLUSH

    store = PostgresStore(empty, pool_size=1)  # one connection: what one call set, the next sees
    setting = "current_setting('synchronous_commit')"
    store.enqueue([JobSpec("a", {})])
    # The mechanism: a row the UPDATE changes has passed _NO_FLUSH, so the setting is in
    # force in its transaction (RETURNING is computed after the WHERE clause) ...
    changed, row = store._write(f"UPDATE jobs SET attempts = attempts WHERE {_NO_FLUSH} RETURNING {setting} AS s")
    assert (changed, row) == (1, {"s": "off"})
    # ... and only there: the next statement on the same connection has the server's.
    assert store._rows(f"SELECT {setting} AS s") == [{"s": "on"}]
    with store._tx(durable=False) as con:
        assert con.execute(f"SELECT {setting} AS s").fetchone()["s"] == "off"
    assert store._rows(f"SELECT {setting} AS s") == [{"s": "on"}]

    # Which writes take it: every statement and transaction of each call, looked at.
    sqls: list[str] = []
    real_write, real_tx = PostgresStore._write, PostgresStore._tx
    monkeypatch.setattr(
        PostgresStore, "_write", lambda self, sql, args=(): (sqls.append(sql), real_write(self, sql, args))[1]
    )
    monkeypatch.setattr(
        PostgresStore,
        "_tx",
        lambda self, *, durable=True: (sqls.append("" if durable else _NO_FLUSH), real_tx(self, durable=durable))[1],
    )

    def flushed(call) -> set[bool]:
        sqls.clear()
        call()
        assert sqls, "the call wrote nothing"
        return {_NO_FLUSH not in sql for sql in sqls}

    assert flushed(lambda: store.record_delivery("d-1", "push", None, [JobSpec("b", {})], "handled")) == {True}
    assert flushed(lambda: store.enqueue([JobSpec("c", {}), JobSpec("d", {})])) == {True}
    assert flushed(lambda: store.set_meta("k", "v")) == {True}
    jobs = []
    assert flushed(lambda: jobs.extend(store.claim(["default"], "w", 30) for _ in range(4))) == {False}
    assert all(jobs)
    assert flushed(lambda: store.heartbeat(jobs[0].id, "w", 30)) == {False}
    assert flushed(lambda: store.complete(jobs[0].id, "w", {"ok": 1}, [JobSpec("then", {})])) == {False}
    assert flushed(lambda: store.fail(jobs[3].id, "w", "no")) == {False}
    assert flushed(lambda: store.retry(jobs[1].id, "w", time.time() + 60, "later")) == {False}
    assert flushed(lambda: store.defer(jobs[2].id, "w", "wait")) == {False}
    assert store.due("every-minute", 0)  # the first time inserts (and flushes): rare
    assert flushed(lambda: store.due("every-minute", 60)) == {False}
    assert store.job_counts()[("then", "queued")] == 1  # the follow-up went in with the completion
    store.close()


def test_a_redelivery_on_postgresql_is_found_by_the_write_alone(postgres_database, app_key, monkeypatch):
    """On PostgreSQL the webhook view does not read before it records (one round trip
    per acknowledgement, not two): record_delivery's conflict says "handled before", and
    the answer is the same 200 "duplicate", with the delivery's jobs enqueued once."""
    import hashlib
    import hmac
    import json

    from github_app import create_app

    app = create_app(
        {"APP_ID": 7, "PRIVATE_KEY": app_key[0], "WEBHOOK_SECRET": "s" * 16, "DATABASE": postgres_database}
    )
    store = app.extensions["aina"].store
    monkeypatch.setattr(store, "delivery_seen", lambda guid: pytest.fail("the view read before recording"))
    body = json.dumps(
        {
            "action": "closed",
            "installation": {"id": 7},
            "repository": {"full_name": "o/r"},
            "pull_request": {"number": 3, "merged": False, "head": {"ref": "aina/softmax/x"}},
            "sender": {"login": "m"},
        }
    ).encode()
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "redelivered-1",
        "X-Hub-Signature-256": "sha256=" + hmac.new(b"s" * 16, body, hashlib.sha256).hexdigest(),
    }
    try:
        client = app.test_client()
        first = client.post("/webhook", data=body, headers=headers)
        again = client.post("/webhook", data=body, headers=headers)
        assert (first.status_code, first.json["status"]) == (202, "handled")
        assert (again.status_code, again.json) == (200, {"status": "duplicate", "delivery": "redelivered-1"})
        assert store.job_counts().get(("pull_closed", "queued")) == 1  # the database may hold other tests' jobs
    finally:
        store.close()
