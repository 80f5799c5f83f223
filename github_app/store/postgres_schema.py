"""The PostgreSQL store's schema: a numbered list of migrations and the one function that
applies them (see :mod:`github_app.store.postgres`).

Each migration runs once per database, in order, in one transaction that also records it in
``schema_version``; an advisory lock makes App processes that start together migrate once.
A migration that shipped is never edited: the next change is the next entry, and it adds
rather than renames or drops, so processes of the previous version keep working while a
deployment rolls over.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from github_app.store.base import DEFERRED, QUEUED, RUNNING

#: The advisory lock that migrations take (the two-int form: "AINA", 0).
LOCK = 0x41494E41
#: Seconds since the epoch by the server's clock, fixed for the transaction: the one clock
#: of every process's leases and timestamps.
NOW = "extract(epoch from now())::float8"

SCHEMA_1 = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE deliveries (
    guid TEXT PRIMARY KEY, event TEXT NOT NULL, action TEXT, outcome TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL);
CREATE TABLE installations (
    id BIGINT PRIMARY KEY, account TEXT NOT NULL, active BOOLEAN NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE repositories (
    full_name TEXT PRIMARY KEY, installation_id BIGINT NOT NULL, repo_id BIGINT,
    default_branch TEXT, baseline_sha TEXT, dashboard_issue BIGINT, policy_error TEXT,
    active BOOLEAN NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE telemetry_batches (
    digest TEXT PRIMARY KEY, repository TEXT NOT NULL, installation_id BIGINT NOT NULL,
    windows INTEGER NOT NULL, received_at DOUBLE PRECISION NOT NULL);
CREATE INDEX telemetry_batches_by_time ON telemetry_batches (received_at);
CREATE TABLE telemetry_windows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, repository TEXT NOT NULL,
    digest TEXT NOT NULL, kernel TEXT, service TEXT, received_at DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL, UNIQUE (repository, digest));
CREATE INDEX telemetry_by_repo ON telemetry_windows (repository, received_at);
CREATE INDEX telemetry_by_time ON telemetry_windows (received_at);
CREATE TABLE hypotheses (
    repository TEXT NOT NULL, id TEXT NOT NULL, rank INTEGER NOT NULL, kind TEXT,
    kernel TEXT, expected_gain DOUBLE PRECISION, body TEXT NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (repository, id));
CREATE TABLE pulls (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, repository TEXT NOT NULL,
    hypothesis_id TEXT NOT NULL, number BIGINT NOT NULL, branch TEXT NOT NULL, head_sha TEXT,
    title TEXT, kernel TEXT, change TEXT, state TEXT NOT NULL, outcome TEXT, closed_by TEXT,
    opened_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    closed_at DOUBLE PRECISION, UNIQUE (repository, number));
CREATE UNIQUE INDEX one_open_pull_per_hypothesis
    ON pulls (repository, hypothesis_id) WHERE state = 'open';
CREATE INDEX pulls_by_head ON pulls (repository, head_sha);
CREATE TABLE runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, repository TEXT NOT NULL,
    hypothesis_id TEXT NOT NULL, job_id BIGINT, outcome TEXT, detail TEXT,
    started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION);
CREATE INDEX runs_by_repo ON runs (repository, id);
CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind TEXT NOT NULL,
    queue TEXT NOT NULL, key TEXT, repository TEXT, payload TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,
    checkpoint TEXT NOT NULL DEFAULT '{{}}', result TEXT, last_error TEXT, worker TEXT,
    lease_until DOUBLE PRECISION, run_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION);
CREATE UNIQUE INDEX one_waiting_job_per_key ON jobs (key) WHERE state IN ('{QUEUED}', '{DEFERRED}');
CREATE INDEX jobs_by_key ON jobs (key, state);
-- A claim walks these in order and stops at the first job it can take, instead of sorting
-- every due job (12 ms a claim with 2,000 waiting).
CREATE INDEX jobs_waiting ON jobs (run_at, id) WHERE state = '{QUEUED}';
CREATE INDEX jobs_running ON jobs (lease_until) WHERE state = '{RUNNING}';
CREATE INDEX jobs_by_repo ON jobs (repository, state);
CREATE TABLE schedules (name TEXT PRIMARY KEY, next_run DOUBLE PRECISION NOT NULL);
"""

SCHEMA_2 = """
CREATE TABLE claims (
    repository TEXT NOT NULL, number BIGINT NOT NULL, kernel TEXT, variant TEXT,
    proposer TEXT, device TEXT, merged_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL, verification TEXT, revert_number BIGINT,
    updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (repository, number));
"""

#: (version, what it does, SQL). Append only: a migration that shipped is never edited; the
#: next change to the schema is the next entry. Each runs once per database, in order.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "the App's tables and the job queue", SCHEMA_1),
    (2, "merged PRs' claims and their verification in production", SCHEMA_2),
]


def migrate(con: psycopg.Connection, migrations: Sequence[tuple[int, str, str]] = ()) -> int:
    """Bring the database's schema up to the last of ``migrations`` (default
    :data:`MIGRATIONS`); the version it is at. Several processes may call this at once:
    the first takes the lock and migrates, the others wait and find nothing to do."""
    migrations = list(migrations or MIGRATIONS)
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK,))
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
            " description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = con.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        latest = migrations[-1][0]
        if current > latest:
            raise ValueError(
                f"the database's schema is at version {current}, newer than this "
                f"App knows ({latest}): upgrade the App before it uses this database"
            )
        for version, description, sql in migrations:
            if version > current:
                con.execute(sql)
                con.execute(f"INSERT INTO schema_version VALUES (%s, %s, {NOW})", (version, description))
                current = version
    return current


__all__ = ["MIGRATIONS", "NOW", "migrate"]
