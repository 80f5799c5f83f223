"""The seam between the App and its database.

Everything the App keeps (deliveries seen, installations and repositories, telemetry
windows, hypotheses, PR links, evolution runs, and the job queue) goes through a
:class:`Store`. :class:`~github_app.store.sqlite.SQLiteStore` is the embedded default; several
App workers on several machines need one shared implementation of this class (PostgreSQL
with ``SELECT ... FOR UPDATE SKIP LOCKED`` for :meth:`Store.claim` is the natural one).

The job queue lives in the store on purpose: a webhook's delivery id and the jobs it
causes are written in one transaction, so an event is either handled (and its jobs will
run) or not seen at all, and GitHub's redelivery covers the second case.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Job states. ``deferred`` waits for an event (a bot PR closing frees a slot), not a time.
QUEUED, RUNNING, DONE, FAILED, DEFERRED = "queued", "running", "done", "failed", "deferred"
PENDING_STATES = (QUEUED, RUNNING, DEFERRED)


class StoreUnavailable(RuntimeError):
    """The store cannot answer now (locked or busy past its deadline, disk full, connection
    lost), and may later: the App answers 503 with ``Retry-After``, a worker retries."""


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


class Store(abc.ABC):
    """What the App needs from its database. Methods are safe to call from any thread."""

    # -- webhooks ----------------------------------------------------------------------
    @abc.abstractmethod
    def record_delivery(self, guid: str, event: str, action: str | None,
                        jobs: Sequence[JobSpec], outcome: str) -> bool:
        """Record a handled delivery and enqueue its jobs atomically; False if ``guid``
        was handled before (then nothing is enqueued)."""

    @abc.abstractmethod
    def delivery_seen(self, guid: str) -> bool: ...

    # -- installations and repositories -----------------------------------------------
    @abc.abstractmethod
    def upsert_installation(self, installation_id: int, account: str, active: bool) -> None: ...

    @abc.abstractmethod
    def installation(self, installation_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def upsert_repository(self, full_name: str, installation_id: int, *,
                          repo_id: int | None = None, default_branch: str | None = None,
                          active: bool = True) -> None: ...

    @abc.abstractmethod
    def repository(self, full_name: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def repositories(self, installation_id: int | None = None) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def update_repository(self, full_name: str, **fields: Any) -> None:
        """Set ``baseline_sha``, ``default_branch``, ``dashboard_issue``, ``policy_error``."""

    # -- telemetry ---------------------------------------------------------------------
    @abc.abstractmethod
    def store_telemetry(self, digest: str, repository: str, installation_id: int,
                        windows: Sequence[dict[str, Any]], job: JobSpec | None) -> int | None:
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
    def save_pull(self, repository: str, hypothesis_id: str, number: int, branch: str, *,
                  head_sha: str, title: str, kernel: str | None, change: dict[str, Any]) -> None:
        """Create or update the link between a hypothesis and its open bot PR."""

    @abc.abstractmethod
    def open_pull(self, repository: str, hypothesis_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def pull(self, repository: str, number: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def pull_by_head(self, repository: str, head_sha: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def pulls(self, repository: str, state: str | None = None,
              limit: int = 50) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def close_pull(self, repository: str, number: int, outcome: str,
                   by: str | None = None) -> bool:
        """Record a bot PR's outcome (merged, closed, superseded, ...); False if unknown."""

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
    def complete(self, job_id: int, worker: str, result: dict[str, Any] | None,
                 follow_up: Sequence[JobSpec] = ()) -> bool:
        """Mark the job done and enqueue ``follow_up`` in the same transaction."""

    @abc.abstractmethod
    def retry(self, job_id: int, worker: str, run_at: float, error: str,
              count_attempt: bool = True) -> bool: ...

    @abc.abstractmethod
    def fail(self, job_id: int, worker: str, error: str,
             follow_up: Sequence[JobSpec] = ()) -> bool:
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
    def jobs(self, *, state: str | None = None, kind: str | None = None,
             repository: str | None = None, limit: int = 100) -> list[Job]: ...

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

    def close(self) -> None:
        """Release connections; the default does nothing."""
