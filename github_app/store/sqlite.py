"""The embedded :class:`~github_app.store.base.Store`: one SQLite file.

WAL mode lets the web threads write while workers read. Each thread has its own
connection; writes take the database lock up front (``BEGIN IMMEDIATE``) so two workers
never both claim one job.

**Durability, by what a commit promises.** What the App acknowledges (a webhook delivery
and its jobs, a telemetry batch: :meth:`SQLiteStore.record_delivery`,
:meth:`SQLiteStore.store_telemetry`) and everything outside the job queue commits with
``synchronous=FULL``: the WAL is fsynced before the commit returns, so neither ``kill -9``
nor a power loss takes back what a client was told was stored. The job queue's own
transitions (claim, lease renewal, retry, completion, failure, deferral, schedules, the
worker's heartbeat) commit with ``synchronous=NORMAL``: in WAL mode that is still atomic
and safe against a killed process (the WAL is written before the commit returns, only
not fsynced), and a power loss can take back the last of them, never a commit made before
a later FULL one (the WAL is one sequence, and its fsync covers every frame before it).
What a lost transition costs is a job run again, which handlers are written for
(:mod:`github_app.jobs`: a worker killed half-way is the same case). An fsync costs ms on
a busy disk, and the job worker's transitions took the write lock the acknowledgements
wait for.

**Group commit.** Acknowledged writes that arrive while another is committing share the
next transaction (one fsync for all of them; each its own savepoint, so one that fails
does not fail the others): at 200 webhooks/s one fsync per delivery, serialized behind the
write lock, was more than the disk gives on a busy machine.

Every call has a deadline (:data:`~github_app.store.base.DEADLINE_SECONDS` unless given):
the wait for this process's write lock and SQLite's busy wait share it, and a call that
runs out, or finds the disk full, raises :class:`~github_app.store.base.StoreUnavailable`
instead of holding a web thread past GitHub's 10 s.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from github_app.store.base import (
    DEADLINE_SECONDS,
    DEFERRED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Job,
    Store,
    StoreConflict,
    StoreUnavailable,
    dumps,
    number_field,
    storable_text,
    stored_window,
    text_field,
    window_digest,
)
from github_app.store.sql import SqlReads

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    guid TEXT PRIMARY KEY, event TEXT NOT NULL, action TEXT, outcome TEXT NOT NULL,
    received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS installations (
    id INTEGER PRIMARY KEY, account TEXT NOT NULL, active INTEGER NOT NULL,
    updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS repositories (
    full_name TEXT PRIMARY KEY, installation_id INTEGER NOT NULL, repo_id INTEGER,
    default_branch TEXT, baseline_sha TEXT, dashboard_issue INTEGER, policy_error TEXT,
    active INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry_batches (
    digest TEXT PRIMARY KEY, repository TEXT NOT NULL, installation_id INTEGER NOT NULL,
    windows INTEGER NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry_windows (
    id INTEGER PRIMARY KEY, repository TEXT NOT NULL, digest TEXT NOT NULL,
    kernel TEXT, service TEXT, received_at REAL NOT NULL, body TEXT NOT NULL,
    UNIQUE (repository, digest));
CREATE INDEX IF NOT EXISTS telemetry_by_repo ON telemetry_windows (repository, received_at);
CREATE TABLE IF NOT EXISTS hypotheses (
    repository TEXT NOT NULL, id TEXT NOT NULL, rank INTEGER NOT NULL, kind TEXT,
    kernel TEXT, expected_gain REAL, body TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (repository, id));
CREATE TABLE IF NOT EXISTS pulls (
    id INTEGER PRIMARY KEY, repository TEXT NOT NULL, hypothesis_id TEXT NOT NULL,
    number INTEGER NOT NULL, branch TEXT NOT NULL, head_sha TEXT, title TEXT,
    kernel TEXT, change TEXT, state TEXT NOT NULL, outcome TEXT, closed_by TEXT,
    opened_at REAL NOT NULL, updated_at REAL NOT NULL, closed_at REAL,
    UNIQUE (repository, number));
CREATE UNIQUE INDEX IF NOT EXISTS one_open_pull_per_hypothesis
    ON pulls (repository, hypothesis_id) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, repository TEXT NOT NULL, hypothesis_id TEXT NOT NULL,
    job_id INTEGER, outcome TEXT, detail TEXT, started_at REAL NOT NULL, finished_at REAL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, queue TEXT NOT NULL, key TEXT,
    repository TEXT, payload TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,
    checkpoint TEXT NOT NULL DEFAULT '{}', result TEXT, last_error TEXT, worker TEXT,
    lease_until REAL, run_at REAL NOT NULL, created_at REAL NOT NULL, finished_at REAL);
CREATE UNIQUE INDEX IF NOT EXISTS one_waiting_job_per_key
    ON jobs (key) WHERE state IN ('queued', 'deferred');
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs (key, state);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, queue, run_at);
CREATE TABLE IF NOT EXISTS schedules (name TEXT PRIMARY KEY, next_run REAL NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    repository TEXT NOT NULL, number INTEGER NOT NULL, kernel TEXT, variant TEXT,
    proposer TEXT, device TEXT, merged_at REAL NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL, verification TEXT, revert_number INTEGER,
    updated_at REAL NOT NULL, PRIMARY KEY (repository, number));
"""


# SQLite's primary result codes that mean "not now" rather than "never": another process
# holds the lock past the deadline, or the disk (or its I/O) failed under us.
_BUSY = {5: 1.0, 6: 1.0}  # SQLITE_BUSY, SQLITE_LOCKED
_FAULT = {10: 30.0, 13: 30.0}  # SQLITE_IOERR, SQLITE_FULL

# Waiting for another process's write lock: SQLite's own busy handler sleeps 1, 2, 5, 10,
# 15, 20, 25 ms..., so a lock held 4 ms (one fsync) costs a waiter 8 and one held 10 ms
# costs 18. Polling BEGIN IMMEDIATE ourselves, from 0.2 ms doubling to 2 ms, finds it free
# within 2 ms of its release; a poll is one failed lock attempt, and only one thread per
# process polls (the others wait on the in-process lock).
_POLL_FIRST, _POLL_MAX = 0.0002, 0.002


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _storable(params):
    if isinstance(params, dict):
        return {k: storable_text(v) if isinstance(v, str) else v for k, v in params.items()}
    return [storable_text(p) if isinstance(p, str) else p for p in params]


class _Connection(sqlite3.Connection):
    """Every text parameter made storable (see storable_text): a lone surrogate from a
    client cannot be encoded for SQLite, and the backends keep text alike."""

    def execute(self, sql, params=()):
        return super().execute(sql, _storable(params))

    def executemany(self, sql, seq):
        return super().executemany(sql, (_storable(p) for p in seq))


@contextmanager
def _errors(what: str):
    """Turn SQLite's retryable failures into StoreUnavailable, a broken rule into
    StoreConflict; anything else is a bug and stays what it is."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise StoreConflict(f"{what}: {exc}") from exc
    except sqlite3.OperationalError as exc:
        code = _code(exc)
        if code not in _BUSY and code not in _FAULT:
            raise
        raise StoreUnavailable(f"{what}: {exc}", retry_after=_BUSY.get(code) or _FAULT[code]) from exc


class _Pending:
    """One acknowledged write waiting for a group commit."""

    __slots__ = ("work", "started", "done", "result", "error")

    def __init__(self, work):
        self.work = work
        self.started = time.monotonic()  # its deadline runs from here
        self.done = False
        self.result = None
        self.error: BaseException | None = None


class SQLiteStore(SqlReads, Store):
    def __init__(self, path: str | Path, *, max_attempts: int = 8, timeout: float = DEADLINE_SECONDS):
        self.path = str(path)
        self.max_attempts = max_attempts
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending: list[_Pending] = []  # acknowledged writes for the next group commit
        self._pending_lock = threading.Lock()
        with _errors("creating the schema"):
            self._con().executescript(SCHEMA)

    # -- plumbing --------------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            with _errors("opening the database"):
                con = sqlite3.connect(
                    self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False, factory=_Connection
                )
                con.row_factory = sqlite3.Row
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=FULL")
                con.execute("PRAGMA foreign_keys=ON")
            self._local.con = con
            self._local.durable = True
            with self._all_lock:
                self._all.append(con)
        return con

    def _lock(self, what: str) -> float:
        """Take this process's write lock within the deadline; when the wait began."""
        # Threads of one process take turns on a Python lock: a waiter wakes the moment the
        # writer commits. Other processes meet at SQLite's own lock (:meth:`_begin`). Both
        # waits come out of one deadline.
        started = time.monotonic()
        if not self._write_lock.acquire(timeout=self._timeout):
            raise StoreUnavailable(
                f"{self.path}: {what}: another thread of this process held the write lock for over {self._timeout:g}s"
            )
        return started

    def _begin(self, con: sqlite3.Connection, started: float, durable: bool) -> None:
        """BEGIN IMMEDIATE by the deadline that began at ``started`` (see _POLL_FIRST)."""
        if self._local.durable != durable:
            con.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._local.durable = durable
        delay = _POLL_FIRST
        con.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    con.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if _code(exc) not in _BUSY or time.monotonic() + delay - started > self._timeout:
                        raise
                time.sleep(delay)
                delay = min(2 * delay, _POLL_MAX)
        finally:
            con.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")

    @contextmanager
    def _tx(self, *, durable: bool = True):
        """One write transaction; ``durable=False`` for the job queue's transitions only
        (see the module's docstring)."""
        con = self._con()
        started = self._lock("writing")
        try:
            with _errors("writing"):
                self._begin(con, started, durable)
                try:
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:  # SQLite ends some failed transactions itself
                        con.execute("ROLLBACK")
                    raise
        finally:
            self._write_lock.release()

    def _acknowledged(self, work):
        """``work(con)`` committed durably, in a group commit with whatever other
        acknowledged writes of this process are waiting (see the module's docstring); its
        result, or what it raised."""
        item = _Pending(work)
        with self._pending_lock:
            self._pending.append(item)
        if not self._write_lock.acquire(timeout=self._timeout):
            with self._pending_lock:
                if item in self._pending:  # not begun: nothing was written
                    self._pending.remove(item)
                    item = None
            # Taken into a commit in progress, which ends by the deadline of the oldest
            # write in it: by ours at the latest.
            if item is None or not self._write_lock.acquire(timeout=self._timeout):
                raise StoreUnavailable(
                    f"{self.path}: another thread of this process held the write lock for over {self._timeout:g}s"
                )
        try:
            # Only a holder of the write lock takes pending writes, and it marks them done
            # before it lets go: ours is either done or still pending.
            if not item.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                # The group waits for the database no longer than its oldest write may.
                self._commit_group(batch, min(it.started for it in batch))
        finally:
            self._write_lock.release()
        if item.error is not None:
            raise item.error
        return item.result

    def _commit_group(self, batch: list[_Pending], started: float) -> None:
        con = self._con()
        alone = len(batch) == 1
        try:
            with _errors("writing"):
                self._begin(con, started, durable=True)
                try:
                    for item in batch:
                        if not alone:
                            con.execute("SAVEPOINT acknowledged")
                        try:
                            with _errors("writing"):
                                item.result = item.work(con)
                        except StoreUnavailable:
                            raise  # the database failed, not this write: so do they all
                        except Exception as exc:  # this write's own failure, its alone
                            if alone:
                                raise
                            con.execute("ROLLBACK TO acknowledged")
                            item.error = exc
                        if not alone:
                            con.execute("RELEASE acknowledged")
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise
        except BaseException as exc:
            # Each waiting thread raises what failed the commit (a KeyboardInterrupt stays
            # the committing thread's own).
            failed = exc if isinstance(exc, Exception) else StoreUnavailable(f"{self.path}: commit interrupted")
            for item in batch:
                item.result, item.error = None, item.error or failed
            if failed is not exc:
                raise
        finally:
            for item in batch:
                item.done = True

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with _errors("reading"):
            return [dict(r) for r in self._con().execute(sql, args).fetchall()]

    def _nothing_to_change(self, sql: str, args: Sequence[Any]) -> bool:
        """True when ``sql``, a read of a row a write would change, finds none: the look
        before a write that is mostly a no-op (a pull already closed, nothing deferred). A
        read (WAL) takes no lock, and a write transaction takes the one write lock even when
        it changes nothing, which every acknowledgement then waits for. A read that finds
        nothing to change is the write done at that moment."""
        return self._row(sql, args) is None

    def _row(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        with _errors("reading"):
            r = self._con().execute(sql, args).fetchone()
        return dict(r) if r is not None else None

    def close(self) -> None:
        with self._all_lock:
            for con in self._all:
                try:
                    con.close()
                except sqlite3.ProgrammingError:  # closed already, or another thread's
                    pass
            self._all.clear()
        self._local = threading.local()

    # -- webhooks ----------------------------------------------------------------------------
    def record_delivery(self, guid, event, action, jobs, outcome):
        received = time.time()

        def write(con):
            cur = con.execute(
                "INSERT OR IGNORE INTO deliveries (guid, event, action, outcome, received_at) VALUES (?, ?, ?, ?, ?)",
                (guid, event, action, outcome, received),
            )
            if cur.rowcount == 0:
                return False
            self._enqueue(con, jobs)
            return True

        return self._acknowledged(write)

    # -- installations and repositories ---------------------------------------------------
    def upsert_installation(self, installation_id, account, active):
        with self._tx() as con:
            con.execute(
                "INSERT INTO installations (id, account, active, updated_at) VALUES (?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET account=excluded.account,"
                " active=excluded.active, updated_at=excluded.updated_at",
                (installation_id, account, int(active), time.time()),
            )
            if not active:
                con.execute("UPDATE repositories SET active = 0 WHERE installation_id = ?", (installation_id,))

    def installation(self, installation_id):
        row = self._row("SELECT * FROM installations WHERE id = ?", (installation_id,))
        if row:
            row["active"] = bool(row["active"])
        return row

    def upsert_repository(self, full_name, installation_id, *, repo_id=None, default_branch=None, active=True):
        with self._tx() as con:
            con.execute(
                "INSERT INTO repositories (full_name, installation_id, repo_id, default_branch,"
                " active, updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT (full_name) DO UPDATE SET"
                " installation_id=excluded.installation_id,"
                " repo_id=COALESCE(excluded.repo_id, repo_id),"
                " default_branch=COALESCE(excluded.default_branch, default_branch),"
                " active=excluded.active, updated_at=excluded.updated_at",
                (full_name, installation_id, repo_id, default_branch, int(active), time.time()),
            )

    def repository(self, full_name):
        row = self._row("SELECT * FROM repositories WHERE full_name = ?", (full_name,))
        if row:
            row["active"] = bool(row["active"])
        return row

    def repositories(self, installation_id=None):
        if installation_id is None:
            rows = self._rows("SELECT * FROM repositories WHERE active = 1 ORDER BY full_name")
        else:
            rows = self._rows(
                "SELECT * FROM repositories WHERE active = 1 AND installation_id = ? ORDER BY full_name",
                (installation_id,),
            )
        for r in rows:
            r["active"] = True
        return rows

    def update_repository(self, full_name, **fields):
        bad = set(fields) - set(self.REPOSITORY_FIELDS)
        if bad:
            raise ValueError(f"update_repository: unknown fields {sorted(bad)}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as con:
            con.execute(
                f"UPDATE repositories SET {sets}, updated_at = ? WHERE full_name = ?",
                (*fields.values(), time.time(), full_name),
            )

    # -- telemetry -----------------------------------------------------------------------------
    def store_telemetry(self, digest, repository, installation_id, windows, job):
        now = time.time()
        rows = []
        for w in windows:
            digest_w, body = stored_window(w)
            rows.append((repository, digest_w, text_field(w.get("kernel")), text_field(w.get("service")), now, body))

        def write(con):
            cur = con.execute(
                "INSERT OR IGNORE INTO telemetry_batches (digest, repository, installation_id,"
                " windows, received_at) VALUES (?,?,?,?,?)",
                (digest, repository, installation_id, len(windows), now),
            )
            if cur.rowcount == 0:
                return None
            before = con.total_changes
            con.executemany(
                "INSERT OR IGNORE INTO telemetry_windows (repository, digest, kernel, service,"
                " received_at, body) VALUES (?,?,?,?,?,?)",
                rows,
            )
            stored = con.total_changes - before
            if job is not None:
                self._enqueue(con, [job])
            return stored

        return self._acknowledged(write)

    def telemetry_summary(self, repository):
        row = self._row(
            "SELECT COUNT(*) AS windows, COUNT(DISTINCT service) AS services,"
            " COUNT(DISTINCT kernel) AS kernels, MAX(received_at) AS last_received"
            " FROM telemetry_windows WHERE repository = ?",
            (repository,),
        )
        return row or {"windows": 0, "services": 0, "kernels": 0, "last_received": None}

    def prune_telemetry(self, before):
        with self._tx() as con:
            n = con.execute("DELETE FROM telemetry_windows WHERE received_at < ?", (before,)).rowcount
            con.execute("DELETE FROM telemetry_batches WHERE received_at < ?", (before,))
        return n

    # -- hypotheses, PRs and runs ---------------------------------------------------------------
    def replace_hypotheses(self, repository, ranked):
        now = time.time()
        with self._tx() as con:
            con.execute("DELETE FROM hypotheses WHERE repository = ?", (repository,))
            con.executemany(
                "INSERT OR REPLACE INTO hypotheses (repository, id, rank, kind, kernel,"
                " expected_gain, body, seen_at) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        repository,
                        str(h["id"]),
                        i,
                        text_field(h.get("kind")),
                        text_field(h.get("kernel")),
                        number_field(h.get("expected_gain")),
                        dumps(h),
                        now,
                    )
                    for i, h in enumerate(ranked)
                ],
            )

    def save_pull(self, repository, hypothesis_id, number, branch, *, head_sha, title, kernel, change):
        now = time.time()
        with self._tx() as con:
            con.execute(
                "INSERT INTO pulls (repository, hypothesis_id, number, branch, head_sha, title,"
                " kernel, change, state, opened_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?, 'open', ?, ?)"
                " ON CONFLICT (repository, number) DO UPDATE SET head_sha=excluded.head_sha,"
                " title=excluded.title, change=excluded.change, updated_at=excluded.updated_at",
                (repository, hypothesis_id, number, branch, head_sha, title, kernel, dumps(change), now, now),
            )

    def close_pull(self, repository, number, outcome, by=None):
        if self._nothing_to_change(
            "SELECT 1 FROM pulls WHERE repository = ? AND number = ? AND state = 'open'", (repository, number)
        ):
            return False
        now = time.time()
        with self._tx() as con:
            cur = con.execute(
                "UPDATE pulls SET state = 'closed', outcome = ?, closed_by = ?, closed_at = ?,"
                " updated_at = ? WHERE repository = ? AND number = ? AND state = 'open'",
                (outcome, by, now, now, repository, number),
            )
        return cur.rowcount > 0

    def attribute_merge(self, repository, number, by):
        with self._tx() as con:
            cur = con.execute(
                "UPDATE pulls SET closed_by = ? WHERE repository = ? AND number = ? AND outcome = 'merged'",
                (by, repository, number),
            )
        return cur.rowcount > 0

    def record_claim(self, repository, number, *, kernel, variant, proposer, device, merged_at, body):
        with self._tx() as con:
            cur = con.execute(
                "INSERT OR IGNORE INTO claims (repository, number, kernel, variant, proposer, device,"
                " merged_at, body, status, updated_at) VALUES (?,?,?,?,?,?,?,?, 'verifying', ?)",
                (repository, number, kernel, variant, proposer, device, merged_at, dumps(body), time.time()),
            )
        return cur.rowcount > 0

    def settle_claim(self, repository, number, status, verification):
        if status not in self.CLAIM_STATES:
            raise ValueError(f"unknown claim state {status!r}; known: {self.CLAIM_STATES}")
        with self._tx() as con:
            cur = con.execute(
                "UPDATE claims SET status = ?, verification = ?, updated_at = ?"
                " WHERE repository = ? AND number = ? AND status = 'verifying'",
                (status, dumps(verification), time.time(), repository, number),
            )
        return cur.rowcount > 0

    def link_revert(self, repository, number, revert_number, *, merged=False):
        with self._tx() as con:
            cur = con.execute(
                "UPDATE claims SET revert_number = ?, status = ?, updated_at = ?"
                " WHERE repository = ? AND number = ? AND status IN ('contradicted', 'reverted')",
                (revert_number, "reverted" if merged else "contradicted", time.time(), repository, number),
            )
        return cur.rowcount > 0

    def start_run(self, repository, hypothesis_id, job_id):
        with self._tx() as con:
            return con.execute(
                "INSERT INTO runs (repository, hypothesis_id, job_id, started_at) VALUES (?,?,?,?)",
                (repository, hypothesis_id, job_id, time.time()),
            ).lastrowid

    def finish_run(self, run_id, outcome, detail=""):
        with self._tx() as con:
            con.execute(
                "UPDATE runs SET outcome = ?, detail = ?, finished_at = ? WHERE id = ?",
                (outcome, detail, time.time(), run_id),
            )

    # -- the job queue --------------------------------------------------------------------------
    def _enqueue(self, con, jobs):
        now = time.time()
        ids = []
        for spec in jobs:
            cur = con.execute(
                "INSERT INTO jobs (kind, queue, key, repository, payload, state, max_attempts,"
                " run_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (key) WHERE state IN ('queued', 'deferred') DO NOTHING",
                (
                    spec.kind,
                    spec.queue,
                    spec.key,
                    spec.repository,
                    dumps(spec.payload),
                    QUEUED,
                    self.max_attempts,
                    now + spec.delay,
                    now,
                ),
            )
            ids.append(cur.lastrowid if cur.rowcount else None)
        return ids

    def enqueue(self, jobs):
        with self._tx() as con:
            return self._enqueue(con, list(jobs))

    def claim(self, queues, worker, lease):
        # Look before taking the write lock: an idle worker polls twice a second, and a
        # read (WAL) neither waits for the acknowledgements' commits nor holds them up.
        # What it saw is looked for again under the lock, where another worker may have
        # claimed it first, and by the clock then: leases are granted from when the lock
        # was had, not from before a wait for it.
        with _errors("reading"):
            if self._pick(self._con(), queues, time.time()) is None:
                return None
        with self._tx(durable=False) as con:
            return self._take(con, queues, worker, lease)

    def _take(self, con, queues, worker, lease) -> Job | None:
        """Under the write lock: claim the next job (see _pick) for ``worker``."""
        now = time.time()
        job_id = self._pick(con, queues, now)
        if job_id is None:
            return None
        con.execute(
            f"UPDATE jobs SET state = '{RUNNING}', worker = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
            (worker, now + lease, job_id),
        )
        return Job.from_row(con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    @staticmethod
    def _pick(con, queues, now) -> int | None:
        """The job to run next: a run whose worker died (its lease lapsed), else the oldest
        due job whose key has no live run (jobs with one key run one at a time, in order).
        Two queries, each walking the ``jobs_due`` index in order and stopping at its first
        row: one query over both (an OR) made SQLite collect and sort every due job on
        every claim, so a backlog slowed each claim down in proportion (1.25 ms per claim
        with 1000 waiting), and the worker fell further behind the more it had to do."""
        marks = ", ".join("?" for _ in queues)
        row = con.execute(
            f"SELECT id FROM jobs WHERE state = '{RUNNING}' AND queue IN ({marks}) AND lease_until < ?"
            " ORDER BY run_at, id LIMIT 1",
            (*queues, now),
        ).fetchone()
        if row is None:
            row = con.execute(
                f"SELECT id FROM jobs AS j WHERE state = '{QUEUED}' AND queue IN ({marks}) AND run_at <= ?"
                " AND (key IS NULL OR NOT EXISTS ("
                f"  SELECT 1 FROM jobs AS r WHERE r.key = j.key AND r.state = '{RUNNING}' AND r.lease_until >= ?))"
                " ORDER BY run_at, id LIMIT 1",
                (*queues, now, now),
            ).fetchone()
        return None if row is None else row["id"]

    def _owned(self, con, job_id, worker, sql, args):
        return (
            con.execute(sql + f" WHERE id = ? AND worker = ? AND state = '{RUNNING}'", (*args, job_id, worker)).rowcount
            > 0
        )

    def heartbeat(self, job_id, worker, lease):
        with self._tx(durable=False) as con:
            return self._owned(con, job_id, worker, "UPDATE jobs SET lease_until = ?", (time.time() + lease,))

    def checkpoint(self, job_id, worker, data):
        with self._tx() as con:
            row = con.execute(
                f"SELECT checkpoint FROM jobs WHERE id = ? AND worker = ? AND state = '{RUNNING}'", (job_id, worker)
            ).fetchone()
            if row is None:
                return False
            merged = {**json.loads(row["checkpoint"]), **data}
            return self._owned(con, job_id, worker, "UPDATE jobs SET checkpoint = ?", (dumps(merged),))

    def complete(self, job_id, worker, result, follow_up=()):
        with self._tx(durable=False) as con:
            return self._complete(con, job_id, worker, result, follow_up)

    def complete_and_claim(self, job_id, worker, result, follow_up, queues, lease):
        with self._tx(durable=False) as con:
            return self._complete(con, job_id, worker, result, follow_up), self._take(con, queues, worker, lease)

    def _complete(self, con, job_id, worker, result, follow_up) -> bool:
        ok = self._owned(
            con,
            job_id,
            worker,
            f"UPDATE jobs SET state = '{DONE}', result = ?, finished_at = ?, lease_until = NULL",
            (dumps(result or {}), time.time()),
        )
        if ok and follow_up:
            self._enqueue(con, follow_up)
        return ok

    def retry(self, job_id, worker, run_at, error, count_attempt=True):
        with self._tx(durable=False) as con:
            try:
                return self._owned(
                    con,
                    job_id,
                    worker,
                    f"UPDATE jobs SET state = '{QUEUED}', run_at = ?, last_error = ?,"
                    " lease_until = NULL, attempts = attempts - ?",
                    (run_at, error, 0 if count_attempt else 1),
                )
            except sqlite3.IntegrityError:
                return self._superseded(con, job_id, worker, error)

    def _superseded(self, con, job_id, worker, error):
        # A job with the same key was queued while this one ran: it is the newer request
        # for the same work, so it replaces this one instead of queueing behind it.
        return self._owned(
            con,
            job_id,
            worker,
            f"UPDATE jobs SET state = '{DONE}', finished_at = ?, lease_until = NULL, last_error = ?",
            (time.time(), f"superseded by a newer job with this key ({error})"),
        )

    def fail(self, job_id, worker, error, follow_up=()):
        with self._tx(durable=False) as con:
            ok = self._owned(
                con,
                job_id,
                worker,
                f"UPDATE jobs SET state = '{FAILED}', last_error = ?, finished_at = ?, lease_until = NULL",
                (error, time.time()),
            )
            if ok and follow_up:
                self._enqueue(con, follow_up)
            return ok

    def defer(self, job_id, worker, reason):
        with self._tx(durable=False) as con:
            try:
                return self._owned(
                    con,
                    job_id,
                    worker,
                    f"UPDATE jobs SET state = '{DEFERRED}', last_error = ?,"
                    " lease_until = NULL, attempts = attempts - 1",
                    (reason,),
                )
            except sqlite3.IntegrityError:
                return self._superseded(con, job_id, worker, reason)

    def release_deferred(self, repository):
        if self._nothing_to_change(f"SELECT 1 FROM jobs WHERE state = '{DEFERRED}' AND repository = ?", (repository,)):
            return 0
        with self._tx() as con:
            return con.execute(
                f"UPDATE jobs SET state = '{QUEUED}', run_at = ? WHERE state = '{DEFERRED}' AND repository = ?",
                (time.time(), repository),
            ).rowcount

    def cancel_jobs(self, repository):
        with self._tx() as con:
            return con.execute(
                f"UPDATE jobs SET state = '{FAILED}', last_error = 'cancelled: the App lost"
                f" access to the repository', finished_at = ? WHERE state IN ('{QUEUED}',"
                f" '{DEFERRED}') AND repository = ?",
                (time.time(), repository),
            ).rowcount

    def due(self, name, interval):
        now = time.time()
        # Mostly not due: a read says so without the write lock (see claim).
        row = self._row("SELECT next_run FROM schedules WHERE name = ?", (name,))
        if row is not None and row["next_run"] > now:
            return False
        with self._tx(durable=False) as con:
            row = con.execute("SELECT next_run FROM schedules WHERE name = ?", (name,)).fetchone()
            if row is not None and row["next_run"] > now:
                return False
            con.execute("INSERT OR REPLACE INTO schedules (name, next_run) VALUES (?, ?)", (name, now + interval))
            return True

    def set_meta(self, key, value):
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


__all__ = ["SQLiteStore", "window_digest"]
