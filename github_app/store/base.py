"""The seam between the App and its database.

Everything the App keeps (deliveries seen, installations and repositories, telemetry
windows, hypotheses, PR links, evolution runs, and the job queue) goes through a
:class:`Store`. :class:`~github_app.store.sqlite.SQLiteStore` is the embedded default (one
machine); :class:`~github_app.store.postgres.PostgresStore` serves App processes on several
machines. ``tests/github_app/store`` is the contract both pass, and any new backend must.

The job queue lives in the store on purpose: a webhook's delivery id and the jobs it
causes are written in one transaction, so an event is either handled (and its jobs will
run) or not seen at all, and GitHub's redelivery covers the second case.
"""

from __future__ import annotations

import abc
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Job states. ``deferred`` waits for an event (a bot PR closing frees a slot), not a time.
QUEUED, RUNNING, DONE, FAILED, DEFERRED = "queued", "running", "done", "failed", "deferred"
PENDING_STATES = (QUEUED, RUNNING, DEFERRED)

#: How long one store call may wait for the database (a lock, a busy file, a free
#: connection) before it gives up with :class:`StoreUnavailable`: well inside the 10 s
#: GitHub waits for a webhook's answer, so a locked database is a 503, not a timeout.
DEADLINE_SECONDS = 5.0


class StoreUnavailable(Exception):
    """The database could not do its part in time: locked or busy past the deadline, its
    disk full, the server unreachable. Nothing was written; the same call may succeed
    later, so the web layer answers 503 with ``Retry-After: retry_after`` and a worker
    tries again."""

    def __init__(self, message: str, *, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class StoreConflict(Exception):
    """A write would break one of the store's uniqueness rules (a second open PR for one
    hypothesis). Nothing was written."""


def dumps(value: Any) -> str:
    """The one JSON text of a value that the store keeps (ASCII, so any backend holds it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def window_digest(window: dict[str, Any]) -> str:
    """Identity of a telemetry window: a re-sent window is stored once."""
    return stored_window(window)[0]


def stored_window(window: dict[str, Any]) -> tuple[str, str]:
    """A window's digest and the text kept of it (one serialisation for both)."""
    body = dumps(window)
    return hashlib.sha256(body.encode()).hexdigest(), body


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str | None) -> str | None:
    """``value`` as a text column can hold it in every backend: a lone surrogate (JSON's
    ``"\\ud800"``, an environment variable that was not UTF-8) cannot be encoded for any
    database, and PostgreSQL refuses NUL; both become U+FFFD. JSON bodies are kept
    verbatim (they are ASCII); only the columns extracted from them for queries pass here."""
    if value is None:
        return None
    if value.isascii():  # the common case, and the cheap test
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    return _UNSTORABLE.sub("\ufffd", value)


def text_field(value: Any) -> str | None:
    """A field of a client's JSON (a window's ``kernel``) as a queryable column: text only."""
    return storable_text(value) if isinstance(value, str) else None


def number_field(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass(frozen=True)
class JobSpec:
    """A job to enqueue. ``key`` coalesces and serialises: while a job with the same key
    waits (queued or deferred), enqueueing another does nothing; while one runs, another
    may wait behind it (so a change that arrives mid-run is not lost), and jobs with one
    key never run at the same time."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    queue: str = "default"
    repository: str | None = None
    delay: float = 0.0


@dataclass
class Job:
    id: int
    kind: str
    queue: str
    key: str | None
    repository: str | None
    payload: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    checkpoint: dict[str, Any]
    last_error: str | None
    created_at: float
    run_at: float
    worker: str | None = None
    result: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """A job from a row of the ``jobs`` table, as every backend keeps it."""
        return cls(
            id=row["id"],
            kind=row["kind"],
            queue=row["queue"],
            key=row["key"],
            repository=row["repository"],
            payload=json.loads(row["payload"]),
            state=row["state"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            checkpoint=json.loads(row["checkpoint"]),
            last_error=row["last_error"],
            created_at=row["created_at"],
            run_at=row["run_at"],
            worker=row["worker"],
            result=json.loads(row["result"]) if row["result"] else None,
        )


class Store(abc.ABC):
    """What the App needs from its database. Methods are safe to call from any thread and
    from several processes (and, for a shared database, machines) at once. A call that
    cannot get its turn within the deadline raises :class:`StoreUnavailable` having
    written nothing; a write that would break a uniqueness rule raises
    :class:`StoreConflict`."""

    # -- webhooks ----------------------------------------------------------------------
    @abc.abstractmethod
    def record_delivery(self, guid: str, event: str, action: str | None, jobs: Sequence[JobSpec], outcome: str) -> bool:
        """Record a handled delivery and enqueue its jobs atomically; False if ``guid``
        was handled before (then nothing is enqueued)."""

    @abc.abstractmethod
    def delivery_seen(self, guid: str) -> bool: ...

    #: Whether the webhook view asks :meth:`delivery_seen` before it routes a delivery and
    #: records it. Not to keep a redelivery off the disk: on either store, recording a
    #: delivery already recorded writes nothing (SQLite's INSERT OR IGNORE leaves the WAL
    #: as it was; PostgreSQL's ON CONFLICT DO NOTHING writes no WAL). SQLite reads first
    #: because the read, outside the write lock, brings the connection's cached pages up to
    #: date, so the write after it holds the lock every other process waits on for less
    #: time (measured with benchmarks/app_ack_waits.py, three runs each, 2 cores:
    #: record_delivery p50 0.56 to 0.82 ms after the read, 1.16 to 1.24 ms without it, the
    #: whole view the same). On PostgreSQL, with no such lock, the read would be one more
    #: round trip on every acknowledgement.
    CHECK_SEEN_FIRST: bool = True

    #: How far ``aina serve --worker-only`` lowers its CPU priority unless
    #: ``AINA_WORKER_NICE`` says (docs/github-app.md, *Worker priority*). 0 where the
    #: worker's transactions take a lock every acknowledgement waits for (SQLite's one
    #: write lock): a worker starved of CPU while holding it holds up every webhook
    #: (priority inversion; measured: the App's p99 worse at +10 than at +0 in each
    #: round on a saturated machine).
    WORKER_NICE: int = 0

    # -- installations and repositories -----------------------------------------------
    @abc.abstractmethod
    def upsert_installation(self, installation_id: int, account: str, active: bool) -> None: ...

    @abc.abstractmethod
    def installation(self, installation_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def upsert_repository(
        self,
        full_name: str,
        installation_id: int,
        *,
        repo_id: int | None = None,
        default_branch: str | None = None,
        active: bool = True,
    ) -> None: ...

    @abc.abstractmethod
    def repository(self, full_name: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def repositories(self, installation_id: int | None = None) -> list[dict[str, Any]]: ...

    #: What :meth:`update_repository` may set.
    REPOSITORY_FIELDS = ("baseline_sha", "default_branch", "dashboard_issue", "policy_error")

    @abc.abstractmethod
    def update_repository(self, full_name: str, **fields: Any) -> None:
        """Set some of :attr:`REPOSITORY_FIELDS`; another name is a ValueError."""

    # -- telemetry ---------------------------------------------------------------------
    @abc.abstractmethod
    def store_telemetry(
        self, digest: str, repository: str, installation_id: int, windows: Sequence[dict[str, Any]], job: JobSpec | None
    ) -> int | None:
        """Store a batch durably (and enqueue ``job``) in one transaction; the number of
        windows stored, or None when a batch with this digest was stored before."""

    @abc.abstractmethod
    def telemetry_windows(self, repository: str, since: float = 0.0) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def telemetry_summary(self, repository: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def prune_telemetry(self, before: float) -> int: ...

    # -- hypotheses, PRs and runs --------------------------------------------------------
    @abc.abstractmethod
    def replace_hypotheses(self, repository: str, ranked: Sequence[dict[str, Any]]) -> None: ...

    @abc.abstractmethod
    def hypotheses(self, repository: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def save_pull(
        self,
        repository: str,
        hypothesis_id: str,
        number: int,
        branch: str,
        *,
        head_sha: str,
        title: str,
        kernel: str | None,
        change: dict[str, Any],
    ) -> None:
        """Create or update the link between a hypothesis and its open bot PR."""

    @abc.abstractmethod
    def open_pull(self, repository: str, hypothesis_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def pull(self, repository: str, number: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def pull_by_head(self, repository: str, head_sha: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def pulls(self, repository: str, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def close_pull(self, repository: str, number: int, outcome: str, by: str | None = None) -> bool:
        """Record a bot PR's outcome (merged, closed, superseded, ...); False if unknown."""

    @abc.abstractmethod
    def attribute_merge(self, repository: str, number: int, by: str) -> bool:
        """Record ``by`` as who merged a merged PR, whoever recorded the merge first: the
        App's merge job knows the person whose ``/aina merge`` it carried out, GitHub's
        closed event only the App that pressed the button. False if not merged."""

    # -- merged claims, verified in production --------------------------------------------
    #: A claim's states: production has not decided yet, it agreed, it disagreed, the
    #: revert PR that undid it merged, and still undecided when the policy's
    #: ``verify.max_days`` were over (final: neither held nor broken in the track record).
    CLAIM_STATES = ("verifying", "confirmed", "contradicted", "reverted", "inconclusive")

    @abc.abstractmethod
    def record_claim(
        self,
        repository: str,
        number: int,
        *,
        kernel: str | None,
        variant: str | None,
        proposer: str | None,
        device: str | None,
        merged_at: float,
        body: dict[str, Any],
    ) -> bool:
        """Record what merged PR ``number`` claimed (``body``: its claims, hot shapes and
        where they came from), state ``verifying``; False if it was recorded before (a
        merge job run again records nothing new)."""

    @abc.abstractmethod
    def settle_claim(self, repository: str, number: int, status: str, verification: dict[str, Any]) -> bool:
        """Keep the latest verification of a ``verifying`` claim and move it to ``status``
        (one of :attr:`CLAIM_STATES`; ``verifying`` keeps it open). False if the claim is
        not verifying: a decision is taken once, whoever looks again."""

    @abc.abstractmethod
    def link_revert(self, repository: str, number: int, revert_number: int, *, merged: bool = False) -> bool:
        """Record the revert PR of a contradicted claim; ``merged``: it merged, the claim is
        ``reverted``. False if the claim is unknown or not contradicted."""

    @abc.abstractmethod
    def claim_of(self, repository: str, number: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def claims(self, repository: str, status: str | None = None) -> list[dict[str, Any]]:
        """The claims of ``repository`` (optionally in one state), oldest merge first."""

    @abc.abstractmethod
    def telemetry_rows(
        self, repository: str, kernel: str | None, since: float = 0.0
    ) -> list[tuple[int, dict[str, Any]]]:
        """(stored id, window) of ``kernel``'s windows (every kernel's: None) received since
        ``since``: a verification, a revert or a retirement cites the windows it used by these ids."""

    @abc.abstractmethod
    def start_run(self, repository: str, hypothesis_id: str, job_id: int) -> int: ...

    @abc.abstractmethod
    def finish_run(self, run_id: int, outcome: str, detail: str = "") -> None: ...

    @abc.abstractmethod
    def runs(self, repository: str, limit: int = 20) -> list[dict[str, Any]]: ...

    # -- the job queue -------------------------------------------------------------------
    @abc.abstractmethod
    def enqueue(self, jobs: Iterable[JobSpec]) -> list[int | None]:
        """Enqueue jobs; the id of each, or None where a pending job had its key."""

    @abc.abstractmethod
    def claim(self, queues: Sequence[str], worker: str, lease: float) -> Job | None:
        """Take the next due job (or one whose worker's lease ran out) for ``worker``."""

    @abc.abstractmethod
    def heartbeat(self, job_id: int, worker: str, lease: float) -> bool: ...

    @abc.abstractmethod
    def checkpoint(self, job_id: int, worker: str, data: dict[str, Any]) -> bool:
        """Merge ``data`` into the job's checkpoint; False if the job is no longer ours."""

    @abc.abstractmethod
    def complete(
        self, job_id: int, worker: str, result: dict[str, Any] | None, follow_up: Sequence[JobSpec] = ()
    ) -> bool:
        """Mark the job done and enqueue ``follow_up`` in the same transaction."""

    def complete_and_claim(
        self,
        job_id: int,
        worker: str,
        result: dict[str, Any] | None,
        follow_up: Sequence[JobSpec],
        queues: Sequence[str],
        lease: float,
    ) -> tuple[bool, Job | None]:
        """:meth:`complete`, then :meth:`claim` the worker's next job: what each returns.
        A backend whose writers take turns on one lock (SQLite) does both in one turn: a
        worker that keeps up with the webhooks would otherwise take that lock twice per
        job, and each time is a moment the acknowledgements wait for. PostgreSQL does both
        in one statement (one round trip), whose claim may leave the follow-ups queued by
        this call to the next claim."""
        return self.complete(job_id, worker, result, follow_up), self.claim(queues, worker, lease)

    @abc.abstractmethod
    def retry(self, job_id: int, worker: str, run_at: float, error: str, count_attempt: bool = True) -> bool: ...

    @abc.abstractmethod
    def fail(self, job_id: int, worker: str, error: str, follow_up: Sequence[JobSpec] = ()) -> bool:
        """Mark the job failed for good, enqueueing ``follow_up`` in the same transaction."""

    @abc.abstractmethod
    def defer(self, job_id: int, worker: str, reason: str) -> bool: ...

    @abc.abstractmethod
    def release_deferred(self, repository: str) -> int:
        """Queue again the deferred jobs of ``repository``; how many."""

    @abc.abstractmethod
    def cancel_jobs(self, repository: str) -> int: ...

    @abc.abstractmethod
    def job(self, job_id: int) -> Job | None: ...

    @abc.abstractmethod
    def jobs(
        self, *, state: str | None = None, kind: str | None = None, repository: str | None = None, limit: int = 100
    ) -> list[Job]: ...

    @abc.abstractmethod
    def job_counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (kind, state), for /metrics."""

    @abc.abstractmethod
    def due(self, name: str, interval: float) -> bool:
        """True at most once per ``interval`` seconds across all workers (a schedule)."""

    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional: a backend without resources keeps this
        """Release connections; the default does nothing."""
