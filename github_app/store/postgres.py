"""The shared :class:`~github_app.store.base.Store`: PostgreSQL, for App processes on several
machines (``AINA_DATABASE=postgresql://USER:PASSWORD@HOST:PORT/DBNAME``).

The same contract as SQLite (``tests/github_app/store`` runs both); what differs is how
concurrency is made safe without one process-wide lock:

* **Claiming** picks the next due job with ``FOR UPDATE SKIP LOCKED``, so claimers on many
  machines take different jobs without waiting for each other. Jobs that share a key never
  run at once because at most one of them is ever claimable: one may wait (a unique
  index), and it waits while any job with its key is running, even one whose worker died;
  the running one is claimable only once its lease ran out, and the row lock lets one
  claimer have it. (Waiting for the dead run also keeps a key's jobs in order: its run is
  taken over and finished before the newer job starts.)
* **Time** is the database server's (``now()``): leases are granted and expire by one clock,
  whichever machine claims.
* **Schema** changes are migrations (:mod:`github_app.store.postgres_schema`), applied
  when a process opens the store, once per database. A process older than the database's
  schema refuses to start.
* **Deadlines**: connections come from a pool (per process, re-made after a fork) and carry
  ``statement_timeout`` and ``lock_timeout``; waiting for a connection, a lock or a statement
  past the deadline, or losing the server, raises
  :class:`~github_app.store.base.StoreUnavailable`.
* **Durability**: what the App acknowledges, and everything outside the job queue, commits
  with the server's ``synchronous_commit`` (on: the WAL is flushed before the commit
  returns); the queue's own transitions commit without waiting for that flush
  (:data:`_NO_FLUSH`), as SQLite's do with ``synchronous=NORMAL``.
* **Round trips**: a write and the jobs it causes (a delivery, a telemetry batch, a job's
  completion and its follow-ups) are one statement, atomic without BEGIN and COMMIT; only
  the rare multi-step writes take a transaction.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import weakref
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown
from psycopg_pool import ConnectionPool

from github_app.store.base import (
    DEADLINE_SECONDS,
    DEFERRED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Job,
    JobSpec,
    Store,
    StoreConflict,
    StoreUnavailable,
    dumps,
    number_field,
    storable_text,
    stored_window,
    text_field,
)
from github_app.store.postgres_schema import NOW as _NOW
from github_app.store.postgres_schema import migrate
from github_app.store.sql import SqlReads

#: Another job with job ``j``'s key is running, so ``j`` must wait: any running one holds
#: back a queued ``j`` (jobs with one key run in order: a run that lost its worker is taken
#: over before the job behind it starts), a live one holds back a ``j`` whose lease ran out.
#: In the WHERE clause of a job-queue transition's UPDATE (claim, lease renewal,
#: completion, failure, a schedule): the statement's own transaction commits with
#: ``synchronous_commit = off``, without waiting for the WAL's flush. The same promise as
#: SQLite's ``synchronous=NORMAL`` for the same writes: atomic, and safe against any client
#: process killed (the server has the commit); a crash of the server or its machine can
#: take back the last of them (what the WAL writer had not flushed, 0.6 s at most by
#: default), never one made before a later durable commit, since the WAL is one sequence
#: and its flush covers every record before it. A lost transition is a job run again, as
#: after a worker killed half-way (handlers are written for that). Every row the UPDATE
#: changes has passed the whole WHERE clause, this included, so whenever the statement
#: writes, the setting is in force at its commit (which reads it). A flush per transition
#: was two of the job worker's three per job. In the statement, not ``SET LOCAL`` in a
#: transaction: that is three round trips more (measured, in a pipeline too) for one fsync
#: less.
_NO_FLUSH = "set_config('synchronous_commit', 'off', true) IS NOT NULL"

_KEY_BUSY = (
    f"SELECT 1 FROM jobs AS r WHERE r.key = j.key AND r.id <> j.id"
    f" AND r.state = '{RUNNING}' AND (j.state = '{QUEUED}' OR r.lease_until >= {_NOW})"
)


class _Text(StrDumperUnknown):
    """Python text as PostgreSQL takes it: no NUL, no lone surrogates (see storable_text)."""

    def dump(self, obj):
        return super().dump(storable_text(obj))


class _BinaryText(StrBinaryDumper):
    def dump(self, obj):
        return super().dump(storable_text(obj))


@contextmanager
def _errors(what: str):
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise StoreConflict(f"{what}: {exc}") from exc
    except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
        # Timeouts (statement, lock, pool), a lost or restarting server, a full disk,
        # a failover to a read-only standby: nothing was committed, later may work.
        raise StoreUnavailable(f"{what}: {type(exc).__name__}: {exc}".strip()) from exc


class PostgresStore(SqlReads, Store):
    CHECK_SEEN_FIRST = False  # no write lock to shorten; a redelivery costs record_delivery no write
    # Row locks: a job's transitions never take a lock an acknowledgement waits for, so a
    # worker at low priority slows only the jobs (measured: the App's p99 better at +10).
    WORKER_NICE = 10

    def __init__(
        self,
        dsn: str,
        *,
        max_attempts: int = 8,
        timeout: float = DEADLINE_SECONDS,
        pool_size: int = 10,
        migrate_timeout: float = 300.0,
    ):
        self.dsn = dsn
        self.max_attempts = max_attempts
        self._timeout = timeout
        self._pool_size = pool_size
        self._pool_lock = threading.Lock()
        self._pool_obj: ConnectionPool | None = None
        self._pool_pid = 0
        self._connections: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()
        self._used: weakref.WeakKeyDictionary[psycopg.Connection, float] = weakref.WeakKeyDictionary()
        self._inherited: list[ConnectionPool] = []
        me = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (store := me()) and store._after_fork())
        with _errors("migrating the schema"), self._connect() as con:
            ms = int(migrate_timeout * 1000)
            con.execute(f"SET statement_timeout = {ms}; SET lock_timeout = {ms}")
            migrate(con)

    # -- plumbing --------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(2, math.ceil(self._timeout)))

    def _configure(self, con: psycopg.Connection) -> None:
        self._connections.add(con)
        ms = int(self._timeout * 1000)
        con.adapters.register_dumper(str, _Text)
        con.adapters.register_dumper(str, _BinaryText)
        con.row_factory = dict_row
        # A process stopped mid-transaction (SIGSTOP, a hung VM) must not hold its row
        # locks for ever: the server ends such a session after a while.
        con.execute(
            f"SET statement_timeout = {ms}; SET lock_timeout = {ms}; SET idle_in_transaction_session_timeout = 60000"
        )

    def _after_fork(self) -> None:
        # A forked child (gunicorn --preload) shares its parent's sockets: it must neither
        # talk on them nor close them (closing says goodbye to the server for the parent).
        # Each is pointed at /dev/null in the child alone, and the child makes its own pool.
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for con in list(self._connections):
                try:
                    os.dup2(null, con.pgconn.socket)
                except (OSError, psycopg.Error):
                    pass
        finally:
            os.close(null)
        if self._pool_obj is not None:
            self._inherited.append(self._pool_obj)  # never closed here: its threads are gone
        self._pool_obj, self._pool_lock = None, threading.Lock()

    def _pool(self) -> ConnectionPool:
        pid = os.getpid()
        if self._pool_obj is not None and self._pool_pid == pid:
            return self._pool_obj
        with self._pool_lock:
            if self._pool_obj is None or self._pool_pid != pid:
                pool = ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    open=False,
                    timeout=self._timeout,
                    configure=self._configure,
                    check=self._check,
                    name="aina-store",
                    kwargs={"autocommit": True, "connect_timeout": max(2, math.ceil(self._timeout))},
                )
                pool.open()
                self._pool_obj, self._pool_pid = pool, pid
            return self._pool_obj

    #: A connection idle longer than this is asked whether it is alive before it is lent
    #: (a server restart or a proxy's idle timeout may have cut it); one used more recently
    #: is lent as it is, saving a round trip per call.
    CHECK_IDLE_SECONDS = 1.0

    def _check(self, con: psycopg.Connection) -> None:
        if time.monotonic() - self._used.get(con, 0.0) > self.CHECK_IDLE_SECONDS:
            ConnectionPool.check_connection(con)

    @contextmanager
    def _connection(self, what: str):
        with _errors(what), self._pool().connection() as con:
            yield con
            self._used[con] = time.monotonic()

    @contextmanager
    def _tx(self, *, durable: bool = True):
        """A transaction of several statements; ``durable=False`` for the job queue's
        transitions (see :data:`_NO_FLUSH`)."""
        with self._connection("writing") as con, con.transaction():
            if not durable:
                con.execute("SET LOCAL synchronous_commit = off")
            yield con

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._connection("reading") as con:
            # the shared reads (store/sql.py) are written with SQLite's placeholder
            return con.execute(sql.replace("?", "%s"), args).fetchall()

    def _write(self, sql: str, args: Sequence[Any] = ()) -> tuple[int, dict[str, Any] | None]:
        """One writing statement, atomic on its own: no BEGIN and COMMIT round trips. The
        rows it changed, and the first it returned."""
        with self._connection("writing") as con:
            cur = con.execute(sql, args)
            return cur.rowcount, (cur.fetchone() if cur.description else None)

    def _row(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def close(self) -> None:
        """Close the connections; a later call opens new ones, as SQLite's store does."""
        with self._pool_lock:
            pool, self._pool_obj = self._pool_obj, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()

    def __repr__(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        return f"PostgresStore({info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')})"

    # -- webhooks ----------------------------------------------------------------------------
    def record_delivery(self, guid, event, action, jobs, outcome):
        # One statement (one round trip, atomic): the jobs go in only if the delivery did.
        sql = (
            "WITH d AS (INSERT INTO deliveries (guid, event, action, outcome, received_at)"
            f" VALUES (%s, %s, %s, %s, {_NOW}) ON CONFLICT (guid) DO NOTHING RETURNING 1)"
        )
        args = [guid, event, action, outcome]
        sql, args = self._with_jobs(sql, args, jobs, "EXISTS (SELECT 1 FROM d)")
        return self._write(sql + " SELECT count(*) AS n FROM d", args)[1]["n"] > 0

    # -- installations and repositories ---------------------------------------------------
    def upsert_installation(self, installation_id, account, active):
        with self._tx() as con:
            con.execute(
                "INSERT INTO installations (id, account, active, updated_at)"
                f" VALUES (%s, %s, %s, {_NOW}) ON CONFLICT (id) DO UPDATE SET"
                " account = excluded.account, active = excluded.active,"
                " updated_at = excluded.updated_at",
                (installation_id, account, bool(active)),
            )
            if not active:
                con.execute("UPDATE repositories SET active = FALSE WHERE installation_id = %s", (installation_id,))

    def installation(self, installation_id):
        return self._row("SELECT * FROM installations WHERE id = %s", (installation_id,))

    def upsert_repository(self, full_name, installation_id, *, repo_id=None, default_branch=None, active=True):
        self._write(
            "INSERT INTO repositories (full_name, installation_id, repo_id, default_branch,"
            f" active, updated_at) VALUES (%s, %s, %s, %s, %s, {_NOW})"
            " ON CONFLICT (full_name) DO UPDATE SET installation_id = excluded.installation_id,"
            " repo_id = COALESCE(excluded.repo_id, repositories.repo_id),"
            " default_branch = COALESCE(excluded.default_branch, repositories.default_branch),"
            " active = excluded.active, updated_at = excluded.updated_at",
            (full_name, installation_id, repo_id, default_branch, bool(active)),
        )

    def repository(self, full_name):
        return self._row("SELECT * FROM repositories WHERE full_name = %s", (full_name,))

    def repositories(self, installation_id=None):
        if installation_id is None:
            return self._rows("SELECT * FROM repositories WHERE active ORDER BY full_name")
        return self._rows(
            "SELECT * FROM repositories WHERE active AND installation_id = %s ORDER BY full_name", (installation_id,)
        )

    def update_repository(self, full_name, **fields):
        bad = set(fields) - set(self.REPOSITORY_FIELDS)
        if bad:
            raise ValueError(f"update_repository: unknown fields {sorted(bad)}")
        if not fields:
            return
        sets = ", ".join(f"{k} = %s" for k in fields)  # names checked just above
        self._write(
            f"UPDATE repositories SET {sets}, updated_at = {_NOW} WHERE full_name = %s", (*fields.values(), full_name)
        )

    # -- telemetry -----------------------------------------------------------------------------
    def store_telemetry(self, digest, repository, installation_id, windows, job):
        # The windows go as one JSON text (json.dumps is C; psycopg's text arrays quote
        # every element in Python: 50 ms for a hundred windows). Its strings are all
        # storable: the bodies are ASCII JSON, the columns pass text_field.
        rows = []
        for w in windows:
            digest_w, body = stored_window(w)
            rows.append([digest_w, text_field(w.get("kernel")), text_field(w.get("service")), body])
        rows = json.dumps(rows)
        # One statement: the batch, its windows in the order sent (ids keep the arrival
        # order) and its job, all only if the batch is new.
        sql = (
            "WITH b AS (INSERT INTO telemetry_batches (digest, repository, installation_id,"
            f" windows, received_at) VALUES (%s, %s, %s, %s, {_NOW})"
            " ON CONFLICT (digest) DO NOTHING RETURNING 1),"
            " w AS (INSERT INTO telemetry_windows (repository, digest, kernel, service,"
            f" received_at, body) SELECT %s, e.v->>0, e.v->>1, e.v->>2, {_NOW}, e.v->>3"
            " FROM json_array_elements(%s::json) WITH ORDINALITY AS e(v, n)"
            " WHERE EXISTS (SELECT 1 FROM b) ORDER BY e.n"
            " ON CONFLICT (repository, digest) DO NOTHING RETURNING 1)"
        )
        args = [digest, repository, installation_id, len(windows), repository, rows]
        sql, args = self._with_jobs(sql, args, [job] if job else [], "EXISTS (SELECT 1 FROM b)")
        row = self._write(sql + " SELECT (SELECT count(*) FROM b) AS new, (SELECT count(*) FROM w) AS stored", args)[1]
        return row["stored"] if row["new"] else None

    def telemetry_summary(self, repository):
        return self._row(
            "SELECT COUNT(*) AS windows, COUNT(DISTINCT service) AS services,"
            " COUNT(DISTINCT kernel) AS kernels, MAX(received_at) AS last_received"
            " FROM telemetry_windows WHERE repository = %s",
            (repository,),
        )

    def prune_telemetry(self, before):
        with self._tx() as con:
            n = con.execute("DELETE FROM telemetry_windows WHERE received_at < %s", (before,)).rowcount
            con.execute("DELETE FROM telemetry_batches WHERE received_at < %s", (before,))
        return n

    # -- hypotheses, PRs and runs ---------------------------------------------------------------
    def replace_hypotheses(self, repository, ranked):
        # One row per id, ranked where it last appears (as SQLite's INSERT OR REPLACE does).
        rows = {}
        for i, h in enumerate(ranked):
            rows[str(h["id"])] = (
                repository,
                str(h["id"]),
                i,
                text_field(h.get("kind")),
                text_field(h.get("kernel")),
                number_field(h.get("expected_gain")),
                dumps(h),
            )
        with self._tx() as con:
            con.execute("DELETE FROM hypotheses WHERE repository = %s", (repository,))
            if rows:
                con.cursor().executemany(
                    "INSERT INTO hypotheses (repository, id, rank, kind, kernel, expected_gain,"
                    f" body, seen_at) VALUES (%s, %s, %s, %s, %s, %s, %s, {_NOW})",
                    list(rows.values()),
                )

    def save_pull(self, repository, hypothesis_id, number, branch, *, head_sha, title, kernel, change):
        self._write(
            "INSERT INTO pulls (repository, hypothesis_id, number, branch, head_sha, title,"
            " kernel, change, state, opened_at, updated_at)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'open', {_NOW}, {_NOW})"
            " ON CONFLICT (repository, number) DO UPDATE SET head_sha = excluded.head_sha,"
            " title = excluded.title, change = excluded.change, updated_at = excluded.updated_at",
            (repository, hypothesis_id, number, branch, head_sha, title, kernel, dumps(change)),
        )

    def close_pull(self, repository, number, outcome, by=None):
        return (
            self._write(
                f"UPDATE pulls SET state = 'closed', outcome = %s, closed_by = %s,"
                f" closed_at = {_NOW}, updated_at = {_NOW}"
                " WHERE repository = %s AND number = %s AND state = 'open'",
                (outcome, by, repository, number),
            )[0]
            > 0
        )

    def attribute_merge(self, repository, number, by):
        changed, _ = self._write(
            "UPDATE pulls SET closed_by = %s WHERE repository = %s AND number = %s AND outcome = 'merged'",
            (by, repository, number),
        )
        return changed > 0

    def record_claim(self, repository, number, *, kernel, variant, proposer, device, merged_at, body):
        return (
            self._write(
                "INSERT INTO claims (repository, number, kernel, variant, proposer, device, merged_at,"
                f" body, status, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'verifying', {_NOW})"
                " ON CONFLICT (repository, number) DO NOTHING",
                (repository, number, kernel, variant, proposer, device, merged_at, dumps(body)),
            )[0]
            > 0
        )

    def settle_claim(self, repository, number, status, verification):
        if status not in self.CLAIM_STATES:
            raise ValueError(f"unknown claim state {status!r}; known: {self.CLAIM_STATES}")
        return (
            self._write(
                f"UPDATE claims SET status = %s, verification = %s, updated_at = {_NOW}"
                " WHERE repository = %s AND number = %s AND status = 'verifying'",
                (status, dumps(verification), repository, number),
            )[0]
            > 0
        )

    def link_revert(self, repository, number, revert_number, *, merged=False):
        return (
            self._write(
                f"UPDATE claims SET revert_number = %s, status = %s, updated_at = {_NOW}"
                " WHERE repository = %s AND number = %s AND status IN ('contradicted', 'reverted')",
                (revert_number, "reverted" if merged else "contradicted", repository, number),
            )[0]
            > 0
        )

    def start_run(self, repository, hypothesis_id, job_id):
        return self._write(
            f"INSERT INTO runs (repository, hypothesis_id, job_id, started_at)"
            f" VALUES (%s, %s, %s, {_NOW}) RETURNING id",
            (repository, hypothesis_id, job_id),
        )[1]["id"]

    def finish_run(self, run_id, outcome, detail=""):
        self._write(
            f"UPDATE runs SET outcome = %s, detail = %s, finished_at = {_NOW} WHERE id = %s", (outcome, detail, run_id)
        )

    # -- the job queue --------------------------------------------------------------------------
    def _enqueue(self, con, jobs):
        ids = []
        for spec in jobs:
            row = con.execute(
                "INSERT INTO jobs (kind, queue, key, repository, payload, state, max_attempts,"
                f" run_at, created_at) VALUES (%s, %s, %s, %s, %s, '{QUEUED}', %s,"
                f" {_NOW} + %s, {_NOW})"
                f" ON CONFLICT (key) WHERE state IN ('{QUEUED}', '{DEFERRED}') DO NOTHING"
                " RETURNING id",
                (
                    spec.kind,
                    spec.queue,
                    spec.key,
                    spec.repository,
                    dumps(spec.payload),
                    self.max_attempts,
                    float(spec.delay),
                ),
            ).fetchone()
            ids.append(row["id"] if row else None)
        return ids

    def _with_jobs(self, sql: str, args: list, jobs: Sequence[JobSpec], when: str) -> tuple[str, list]:
        """``sql`` (a WITH clause) with one more part that enqueues ``jobs`` if ``when``
        holds, as :meth:`enqueue` would: so a write and the jobs it causes are one
        statement, one round trip."""
        if not jobs:
            return sql, args
        t = storable_text
        rows = json.dumps(
            [[t(j.kind), t(j.queue), t(j.key), t(j.repository), dumps(j.payload), float(j.delay)] for j in jobs]
        )
        part = (
            ", enqueued AS (INSERT INTO jobs (kind, queue, key, repository,"
            " payload, state, max_attempts, run_at, created_at)"
            f" SELECT e.v->>0, e.v->>1, e.v->>2, e.v->>3, e.v->>4, '{QUEUED}', %s,"
            f" {_NOW} + (e.v->>5)::float8, {_NOW}"
            " FROM json_array_elements(%s::json) WITH ORDINALITY AS e(v, n)"
            f" WHERE {when} ORDER BY e.n"
            f" ON CONFLICT (key) WHERE state IN ('{QUEUED}', '{DEFERRED}') DO NOTHING)"
        )
        return sql + part, [*args, self.max_attempts, rows]

    def enqueue(self, jobs):
        jobs = list(jobs)
        with self._tx() as con:
            return self._enqueue(con, jobs)

    @staticmethod
    def _claim_sql(queues, worker, lease, *, finishing: int | None = None) -> tuple[str, list]:
        """The claim: one statement; the row lock a sub-select takes is held by the UPDATE.
        A run whose worker died comes first (its run_at is older than any waiting job's),
        then the oldest due job; each walks its own partial index in order and stops at the
        first row it can lock, where one query over both would sort every due job.

        ``finishing``: a job the same statement ends (:meth:`complete_and_claim`), which the
        statement's snapshot still shows running: it is neither claimed again (one statement
        must not update a row twice) nor a reason to hold back a job waiting on its key."""
        skip, busy_skip = ("", "") if finishing is None else (" AND j.id <> %s", " AND r.id <> %s")

        def pick(cond: str) -> tuple[str, list]:
            sql = (
                f"(SELECT id FROM jobs AS j WHERE {cond}{skip} AND queue = ANY(%s)"
                f" AND (key IS NULL OR NOT EXISTS ({_KEY_BUSY}{busy_skip}))"
                " ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            )
            ids = [] if finishing is None else [finishing]
            return sql, [*ids, list(queues), *ids]

        lapsed, lapsed_args = pick(f"state = '{RUNNING}' AND lease_until < {_NOW}")
        due, due_args = pick(f"state = '{QUEUED}' AND run_at <= {_NOW}")
        sql = (
            f"UPDATE jobs SET state = '{RUNNING}', worker = %s, lease_until = {_NOW} + %s,"
            f" attempts = attempts + 1 WHERE id = COALESCE({lapsed}, {due}) AND {_NO_FLUSH} RETURNING *"
        )
        return sql, [worker, float(lease), *lapsed_args, *due_args]

    def claim(self, queues, worker, lease):
        _, row = self._write(*self._claim_sql(queues, worker, lease))
        return Job.from_row(row) if row is not None else None

    @staticmethod
    def _owned(con, job_id, worker, sql, args):
        return (
            con.execute(
                sql + f" WHERE id = %s AND worker = %s AND state = '{RUNNING}'", (*args, job_id, worker)
            ).rowcount
            > 0
        )

    def heartbeat(self, job_id, worker, lease):
        return (
            self._write(
                f"UPDATE jobs SET lease_until = {_NOW} + %s"
                f" WHERE id = %s AND worker = %s AND state = '{RUNNING}' AND {_NO_FLUSH}",
                (float(lease), job_id, worker),
            )[0]
            > 0
        )

    def checkpoint(self, job_id, worker, data):
        with self._tx() as con:
            row = con.execute(
                f"SELECT checkpoint FROM jobs WHERE id = %s AND worker = %s AND state = '{RUNNING}' FOR UPDATE",
                (job_id, worker),
            ).fetchone()
            if row is None:
                return False
            merged = {**json.loads(row["checkpoint"]), **data}
            return self._owned(con, job_id, worker, "UPDATE jobs SET checkpoint = %s", (dumps(merged),))

    def _finish_sql(self, job_id, worker, sets: str, args: list, follow_up) -> tuple[str, list]:
        """The WITH clause that ends the job (if ``worker`` holds it; its part ``done``
        returns a row then) and enqueues ``follow_up`` if it did."""
        sql = (
            f"WITH done AS (UPDATE jobs SET {sets}, finished_at = {_NOW}, lease_until = NULL"
            f" WHERE id = %s AND worker = %s AND state = '{RUNNING}' AND {_NO_FLUSH} RETURNING 1)"
        )
        return self._with_jobs(sql, [*args, job_id, worker], list(follow_up), "EXISTS (SELECT 1 FROM done)")

    def _finish(self, job_id, worker, sets: str, args: list, follow_up) -> bool:
        """End the job (if ``worker`` holds it) and enqueue ``follow_up``, in one statement."""
        sql, args = self._finish_sql(job_id, worker, sets, args, follow_up)
        return self._write(sql + " SELECT count(*) AS n FROM done", args)[1]["n"] > 0

    def complete(self, job_id, worker, result, follow_up=()):
        return self._finish(job_id, worker, f"state = '{DONE}', result = %s", [dumps(result or {})], follow_up)

    def complete_and_claim(self, job_id, worker, result, follow_up, queues, lease):
        # One statement, one round trip instead of two (of five or so per webhook job:
        # each costs the server a wake-up, on a small machine the CPU the acknowledgements
        # wait for). Every part sees the snapshot the statement began with, so the claim
        # does not see the follow-ups queued here (the next claim takes them), and is told
        # which running job is the one being finished.
        sql, args = self._finish_sql(job_id, worker, f"state = '{DONE}', result = %s", [dumps(result or {})], follow_up)
        claim, claim_args = self._claim_sql(queues, worker, lease, finishing=job_id)
        _, row = self._write(
            f"{sql}, claimed AS ({claim})"
            " SELECT (SELECT count(*) FROM done) AS done_n, claimed.* FROM (SELECT 1) AS one"
            " LEFT JOIN claimed ON true",
            [*args, *claim_args],
        )
        return row["done_n"] > 0, (Job.from_row(row) if row["id"] is not None else None)

    def _requeue(self, con, job_id, worker, sql, args, error):
        # Back to queued/deferred, unless a newer job with the same key waits there already:
        # that one is the newer request for the same work and replaces this one.
        try:
            with con.transaction():  # a savepoint: the violation must not end the whole
                return self._owned(con, job_id, worker, sql, args)
        except psycopg.errors.UniqueViolation:
            return self._owned(
                con,
                job_id,
                worker,
                f"UPDATE jobs SET state = '{DONE}', finished_at = {_NOW}, lease_until = NULL, last_error = %s",
                (f"superseded by a newer job with this key ({error})",),
            )

    def retry(self, job_id, worker, run_at, error, count_attempt=True):
        with self._tx(durable=False) as con:
            return self._requeue(
                con,
                job_id,
                worker,
                f"UPDATE jobs SET state = '{QUEUED}', run_at = %s,"
                " last_error = %s, lease_until = NULL, attempts = attempts - %s",
                (run_at, error, 0 if count_attempt else 1),
                error,
            )

    def fail(self, job_id, worker, error, follow_up=()):
        return self._finish(job_id, worker, f"state = '{FAILED}', last_error = %s", [error], follow_up)

    def defer(self, job_id, worker, reason):
        with self._tx(durable=False) as con:
            return self._requeue(
                con,
                job_id,
                worker,
                f"UPDATE jobs SET state = '{DEFERRED}', last_error = %s, lease_until = NULL, attempts = attempts - 1",
                (reason,),
                reason,
            )

    def release_deferred(self, repository):
        return self._write(
            f"UPDATE jobs SET state = '{QUEUED}', run_at = {_NOW} WHERE state = '{DEFERRED}' AND repository = %s",
            (repository,),
        )[0]

    def cancel_jobs(self, repository):
        return self._write(
            f"UPDATE jobs SET state = '{FAILED}', last_error = 'cancelled: the App lost"
            f" access to the repository', finished_at = {_NOW}"
            f" WHERE state IN ('{QUEUED}', '{DEFERRED}') AND repository = %s",
            (repository,),
        )[0]

    def due(self, name, interval):
        return (
            self._write(
                f"INSERT INTO schedules (name, next_run) VALUES (%s, {_NOW} + %s)"
                " ON CONFLICT (name) DO UPDATE SET next_run = excluded.next_run"
                f" WHERE schedules.next_run <= {_NOW} AND {_NO_FLUSH} RETURNING 1",
                (name, float(interval)),
            )[1]
            is not None
        )

    def set_meta(self, key, value):
        self._write(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


__all__ = ["PostgresStore"]
