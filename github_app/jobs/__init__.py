"""Job handlers: the work webhooks, telemetry and schedules cause.

A handler is ``fn(ctx) -> dict | None`` registered for a job kind with :func:`handler`.
It reads its payload from ``ctx.job.payload``, talks to GitHub through ``ctx.repo(...)``,
and queues what follows with ``ctx.then(JobSpec(...))``: those jobs are enqueued in the
same transaction that marks this one done, so a job killed half-way neither loses its
follow-ups nor queues them twice. Handlers must be safe to run again from the start.

How a handler ends decides what the worker does:

* returns — done;
* raises :class:`Permanent` (or a GitHub 4xx other than 401/409) — failed, no retry;
* raises :class:`Deferred` — parked until an event for its repository releases it;
* raises :class:`~github_app.github.client.RateLimited` — run again when GitHub allows;
* raises anything else — retried with exponential backoff, up to ``JOB_MAX_ATTEMPTS``.

This package is the contract between handlers and the worker; the handlers live in its
modules, one per subject (installations, repository events, reasoning, evolution, the
dashboard issue, housekeeping), and :mod:`github_app.worker` imports them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from github_app.services import Services
from github_app.store import Job, JobSpec

log = logging.getLogger(__name__)

HANDLERS: dict[str, Callable[[JobContext], dict[str, Any] | None]] = {}
EVOLUTION_QUEUE = "evolution"


class Permanent(Exception):
    """The job cannot succeed by being retried (bad input, refused by policy, ...)."""


class Deferred(Exception):
    """The job must wait for an event (a bot PR slot to free up), not for time."""


def handler(kind: str):
    """Decorator: ``fn`` runs the jobs of ``kind``. The worker imports the modules that
    hold handlers (:data:`github_app.worker.JOB_MODULES`); this package imports none of
    them."""

    def deco(fn):
        if kind in HANDLERS:
            raise RuntimeError(f"two handlers for job kind {kind!r}")
        HANDLERS[kind] = fn
        return fn

    return deco


class JobContext:
    def __init__(self, services: Services, job: Job, worker: str):
        self.services = services
        self.job = job
        self.worker = worker
        self.follow_up: list[JobSpec] = []
        self.always: list[JobSpec] = []
        self.log = logging.LoggerAdapter(log, {"job": job.id})

    @property
    def config(self) -> dict[str, Any]:
        return self.services.config

    @property
    def store(self):
        return self.services.store

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    def then(self, spec: JobSpec) -> None:
        """Queue ``spec`` when (and only when) this job completes."""
        self.follow_up.append(spec)

    def finally_(self, spec: JobSpec) -> None:
        """Queue ``spec`` however this job ends: done, or failed for good (a dashboard
        that must show the failure)."""
        self.always.append(spec)

    def checkpoint(self, **data: Any) -> None:
        """Remember progress across a crash: ``ctx.job.checkpoint`` holds it next time."""
        if not self.store.checkpoint(self.job.id, self.worker, data):
            raise LostLease(f"job {self.job.id} is no longer held by {self.worker}")
        self.job.checkpoint.update(data)

    def github(self, installation_id: int):
        return self.services.auth.installation_client(installation_id)

    def repo(self, full_name: str | None = None, installation_id: int | None = None):
        """The github3 repository of this job (``repository``/``installation_id`` in the
        payload unless given)."""
        full_name = full_name or self.payload["repository"]
        installation_id = installation_id or self.payload["installation_id"]
        owner, _, name = full_name.partition("/")
        return self.github(installation_id).repository(owner, name)


class LostLease(Exception):
    """Another worker took the job over (ours was presumed dead); stop quietly."""


def dashboard_job(repository: str, installation_id: int) -> JobSpec:
    return JobSpec(
        "dashboard",
        {"repository": repository, "installation_id": installation_id},
        key=f"dashboard:{repository}",
        repository=repository,
    )
