"""The reads both SQL stores run as written.

Their schemas agree, and so do these queries but for the placeholder: they are written
with SQLite's ``?``, and :class:`~github_app.store.postgres.PostgresStore` turns each into
psycopg's ``%s`` (its own queries use no ``?``: PostgreSQL's jsonb operators are not used).
Writes stay with each store: their transactions, locks and clocks differ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from github_app.store.base import Job


class SqlReads:
    """Mixed into each SQL store, ahead of :class:`~github_app.store.base.Store`."""

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _row(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        raise NotImplementedError

    def delivery_seen(self, guid):
        return self._row("SELECT 1 FROM deliveries WHERE guid = ?", (guid,)) is not None

    def telemetry_windows(self, repository, since=0.0):
        return [
            json.loads(r["body"])
            for r in self._rows(
                "SELECT body FROM telemetry_windows WHERE repository = ? AND received_at >= ? ORDER BY id",
                (repository, since),
            )
        ]

    def telemetry_rows(self, repository, kernel, since=0.0):
        which, args = ("", (repository, since)) if kernel is None else (" AND kernel = ?", (repository, since, kernel))
        return [
            (r["id"], json.loads(r["body"]))
            for r in self._rows(
                f"SELECT id, body FROM telemetry_windows WHERE repository = ? AND received_at >= ?{which} ORDER BY id",
                args,
            )
        ]

    @staticmethod
    def _claim_row(row):
        if row is not None:
            row["body"] = json.loads(row["body"])
            row["verification"] = json.loads(row["verification"]) if row.get("verification") else None
        return row

    def claim_of(self, repository, number):
        return self._claim_row(
            self._row("SELECT * FROM claims WHERE repository = ? AND number = ?", (repository, number))
        )

    def claims(self, repository, status=None):
        if status is None:
            rows = self._rows("SELECT * FROM claims WHERE repository = ? ORDER BY merged_at, number", (repository,))
        else:
            rows = self._rows(
                "SELECT * FROM claims WHERE repository = ? AND status = ? ORDER BY merged_at, number",
                (repository, status),
            )
        return [self._claim_row(r) for r in rows]

    def hypotheses(self, repository):
        return [
            json.loads(r["body"])
            for r in self._rows("SELECT body FROM hypotheses WHERE repository = ? ORDER BY rank", (repository,))
        ]

    @staticmethod
    def _pull_row(row):
        if row is not None and row.get("change"):
            row["change"] = json.loads(row["change"])
        return row

    def open_pull(self, repository, hypothesis_id):
        return self._pull_row(
            self._row(
                "SELECT * FROM pulls WHERE repository = ? AND hypothesis_id = ? AND state = 'open'",
                (repository, hypothesis_id),
            )
        )

    def pull(self, repository, number):
        return self._pull_row(
            self._row("SELECT * FROM pulls WHERE repository = ? AND number = ?", (repository, number))
        )

    def pull_by_head(self, repository, head_sha):
        return self._pull_row(
            self._row(
                "SELECT * FROM pulls WHERE repository = ? AND head_sha = ? ORDER BY id DESC LIMIT 1",
                (repository, head_sha),
            )
        )

    def pulls(self, repository, state=None, limit=50):
        if state is None:
            rows = self._rows(
                "SELECT * FROM pulls WHERE repository = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
                (repository, limit),
            )
        else:
            rows = self._rows(
                "SELECT * FROM pulls WHERE repository = ? AND state = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
                (repository, state, limit),
            )
        return [self._pull_row(r) for r in rows]

    def runs(self, repository, limit=20):
        return self._rows("SELECT * FROM runs WHERE repository = ? ORDER BY id DESC LIMIT ?", (repository, limit))

    def job(self, job_id):
        row = self._row("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return Job.from_row(row) if row is not None else None

    def jobs(self, *, state=None, kind=None, repository=None, limit=100):
        where, args = [], []
        for col, val in (("state", state), ("kind", kind), ("repository", repository)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._rows(sql + " ORDER BY id LIMIT ?", (*args, limit))
        return [Job.from_row(r) for r in rows]

    def job_counts(self):
        return {
            (r["kind"], r["state"]): r["n"]
            for r in self._rows("SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state")
        }

    def get_meta(self, key):
        row = self._row("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None
