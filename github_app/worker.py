"""The job worker: claims jobs from the store, runs them, retries with backoff.

A claimed job carries a lease that a heartbeat thread renews while it runs; a worker that
dies (``kill -9``, a lost machine) stops renewing, and when the lease runs out another
worker claims the job and runs it again from the start, with its checkpoint. Handlers are
written to be re-run (see :mod:`github_app.jobs`), and completion is recorded only by the
worker that holds the lease, so a job finishes exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Sequence

from github_app.github.client import RateLimited
from github_app.jobs import (
    EVOLUTION_QUEUE,
    HANDLERS,
    Deferred,
    JobContext,
    LostLease,
    Permanent,
    dashboard_updates,
    evolution,
    installation,
    maintenance,
    merging,
    reasoning,
    removals,
    repository,
    verification,
)
from github_app.store import Job, JobSpec, StoreUnavailable
from github_app.web.health import HEARTBEAT_KEY

log = logging.getLogger(__name__)

#: The modules whose ``@handler`` functions the worker runs (importing one registers them).
#: A new module of job handlers is added here.
JOB_MODULES = (
    installation,
    repository,
    reasoning,
    evolution,
    dashboard_updates,
    maintenance,
    merging,
    verification,
    removals,
)

SCHEDULES = (
    # (schedule name, config key of its interval, job kind)
    ("reason_all", "REASON_INTERVAL_SECONDS", "reason_all"),
    ("redeliver", "REDELIVERY_INTERVAL_SECONDS", "redeliver"),
    ("prune", "REASON_INTERVAL_SECONDS", "prune"),
    # merged claims against production, and unused variants (hourly: verification's unit)
    ("verify_all", "REASON_INTERVAL_SECONDS", "verify_all"),
)


def _is_permanent_http(exc: BaseException) -> bool:
    """GitHub said no for a reason retrying will not change (4xx but 401/409)."""
    from github3.exceptions import ResponseError

    code = getattr(exc, "code", None)
    return isinstance(exc, ResponseError) and isinstance(code, int) and 400 <= code < 500 and code not in (401, 409)


class Worker:
    def __init__(self, services, queues: Sequence[str] = ("default",), name: str | None = None):
        self.services = services
        self.queues = tuple(queues)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.handlers = HANDLERS
        self.config = services.config
        self.stopping = threading.Event()
        self._heart = _Heartbeat(self)
        self._next: Job | None = None  # claimed with the last completion (claim_next)

    # -- one job ------------------------------------------------------------------------------
    def run_once(self, *, claim_next: bool = False) -> Job | None:
        """Claim and run one due job; the job, or None when none was due. ``claim_next``:
        a job that completes claims the next one in the same turn of the store's write lock
        (SQLite) or statement (PostgreSQL; :meth:`~github_app.store.Store.complete_and_claim`),
        and the next call runs it."""
        lease = self.config["JOB_LEASE_SECONDS"]
        job, self._next = self._next, None
        if job is None:
            job = self.services.store.claim(self.queues, self.name, lease)
        if job is None:
            return None
        self._heart.beat_for(job)
        try:
            self._run(job, claim_next)
        finally:
            self._heart.beat_for(None)
        return job

    def release_next(self) -> None:
        """Give back a job claimed ahead (claim_next) that this worker will not run: it is
        queued again at once, its attempt not counted, rather than left until its lease
        runs out."""
        job, self._next = self._next, None
        if job is not None:
            self.services.store.retry(
                job.id, self.name, time.time(), "released: its worker stopped", count_attempt=False
            )

    def _run(self, job: Job, claim_next: bool = False) -> None:
        store, metrics = self.services.store, self.services.metrics
        handler = self.handlers.get(job.kind)
        if handler is None:
            store.fail(job.id, self.name, f"no handler for job kind {job.kind!r}")
            return
        ctx = JobContext(self.services, job, self.name)
        started = time.monotonic()
        try:
            result = handler(ctx)
        except LostLease:
            metrics.inc("aina_job_runs_total", kind=job.kind, result="lost_lease")
            return
        except Deferred as exc:
            store.defer(job.id, self.name, str(exc))
            metrics.inc("aina_job_runs_total", kind=job.kind, result="deferred")
            log.info("job %s %s deferred: %s", job.id, job.kind, exc)
            return
        except RateLimited as exc:
            store.retry(job.id, self.name, exc.retry_at, str(exc), count_attempt=False)
            metrics.inc("aina_job_runs_total", kind=job.kind, result="rate_limited")
            log.warning("job %s %s: %s", job.id, job.kind, exc)
            return
        except Exception as exc:
            self._failed(job, exc, ctx.always)
            return
        follow_up = ctx.follow_up + ctx.always
        if claim_next:
            done, self._next = store.complete_and_claim(
                job.id, self.name, result, follow_up, self.queues, self.config["JOB_LEASE_SECONDS"]
            )
        else:
            done = store.complete(job.id, self.name, result, follow_up)
        if done:
            metrics.inc("aina_job_runs_total", kind=job.kind, result="done")
            log.info("job %s %s done in %.2fs: %s", job.id, job.kind, time.monotonic() - started, result)
        else:
            metrics.inc("aina_job_runs_total", kind=job.kind, result="lost_lease")

    def _failed(self, job: Job, exc: Exception, always: list[JobSpec]) -> None:
        store, metrics = self.services.store, self.services.metrics
        error = f"{type(exc).__name__}: {exc}"
        if getattr(exc, "code", None) == 401 and "installation_id" in job.payload:
            self.services.auth.forget(job.payload["installation_id"])
        if isinstance(exc, Permanent) or _is_permanent_http(exc):
            store.fail(job.id, self.name, error, always)
            metrics.inc("aina_job_runs_total", kind=job.kind, result="failed")
            log.error("job %s %s failed for good: %s", job.id, job.kind, error)
            return
        if job.attempts >= job.max_attempts:
            store.fail(job.id, self.name, f"{error} (after {job.attempts} attempts)", always)
            metrics.inc("aina_job_runs_total", kind=job.kind, result="failed")
            log.error(
                "job %s %s gave up after %d attempts: %s\n%s",
                job.id,
                job.kind,
                job.attempts,
                error,
                traceback.format_exc(),
            )
            return
        base, cap = self.config["RETRY_BASE_SECONDS"], self.config["RETRY_MAX_SECONDS"]
        delay = min(cap, base * 2 ** (job.attempts - 1)) * random.uniform(0.5, 1.0)
        store.retry(job.id, self.name, time.time() + delay, error)
        metrics.inc("aina_job_runs_total", kind=job.kind, result="retry")
        log.warning("job %s %s attempt %d failed (%s); retry in %.1fs", job.id, job.kind, job.attempts, error, delay)

    # -- the loop -----------------------------------------------------------------------------
    def schedule(self) -> None:
        """Enqueue the periodic jobs that are due (at most once per interval, fleet-wide)."""
        store = self.services.store
        for name, key, kind in SCHEDULES:
            if store.due(name, self.config[key]):
                store.enqueue([JobSpec(kind, {}, key=kind)])

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self.stopping
        poll = self.config["WORKER_POLL_SECONDS"]
        # Asking the store whether a schedule is due takes its write lock (three times, one
        # per schedule), which every webhook's commit then waits for: asking on every poll
        # (twice a second) for schedules of ten minutes and more was most of the worker's
        # lock traffic while idle. A tenth of the shortest interval (10 s at most) is
        # plenty.
        every = min(10.0, min(self.config[key] for _, key, _ in SCHEDULES) / 10)
        next_schedule = 0.0
        while not stop.is_set():
            try:
                if "default" in self.queues and time.monotonic() >= next_schedule:
                    next_schedule = time.monotonic() + every
                    self.schedule()
                job = self.run_once(claim_next=True)
            except Exception:  # the store hiccupped (locked, disk full): wait and go on
                log.exception("worker %s: error outside a job", self.name)
                job = None
            if job is None:
                stop.wait(poll)
        try:
            self.release_next()
        except Exception:  # its lease runs out instead, and another worker takes it then
            log.exception("worker %s: could not give back the job it had claimed next", self.name)
        self._heart.close()


class _Heartbeat:
    """Renews the lease of the job its worker runs, every third of the lease, so that the
    job is not taken over while it runs. One thread per worker for the worker's life: a
    thread started and joined per job was a fifth of a short job's cost (0.3 of 1.4 ms
    per ``pull_closed`` job, profiled), and the worker must keep up with the webhooks."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self._cond = threading.Condition()
        self._job: Job | None = None
        self._due = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None

    def beat_for(self, job: Job | None) -> None:
        """Beat for ``job`` from a third of a lease from now on; None: for no job."""
        with self._cond:
            self._job = job
            self._due = time.monotonic() + self.worker.config["JOB_LEASE_SECONDS"] / 3
            if job is not None and (self._thread is None or not self._thread.is_alive()):
                self._closed = False
                self._thread = threading.Thread(target=self._loop, daemon=True, name=f"heartbeat-{self.worker.name}")
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed, self._job = True, None
            self._cond.notify()

    def _loop(self) -> None:
        worker, lease = self.worker, self.worker.config["JOB_LEASE_SECONDS"]
        while True:
            with self._cond:
                while not self._closed and (self._job is None or time.monotonic() < self._due):
                    self._cond.wait(None if self._job is None else self._due - time.monotonic())
                if self._closed:
                    return
                job, self._due = self._job, time.monotonic() + lease / 3
            try:
                kept = worker.services.store.heartbeat(job.id, worker.name, lease)
            except StoreUnavailable as exc:  # one locked moment must not end the beating:
                log.warning("job %s: heartbeat deferred (%s)", job.id, exc)  # the lease would lapse
                continue
            with self._cond:
                if not kept and self._job is job:  # (a beat that crossed the job's end is no news)
                    log.warning("job %s: lease lost to another worker", job.id)
                    self._job = None


def startup_jobs() -> list[JobSpec]:
    """What a starting App does first: learn its installations and ask GitHub again for
    whatever was delivered while it was down."""
    return [JobSpec("sync", {}, key="sync"), JobSpec("redeliver", {}, key="redeliver")]


def process_heartbeat(services, name: str, stop: threading.Event) -> None:
    """Write that this process's workers are alive, every ``WORKER_HEARTBEAT_SECONDS``,
    until ``stop``; ``/readyz`` reads it. One small write, not one per worker thread: a
    worker busy with a long job is still alive, and its job's lease says so."""
    interval = services.config["WORKER_HEARTBEAT_SECONDS"]
    while True:
        # This process fetches the installation tokens: its count joins /metrics' sum.
        services.metrics.catch_up("aina_installation_tokens_issued_total", services.auth.tokens_issued)
        try:
            services.store.set_meta(HEARTBEAT_KEY, json.dumps({"at": time.time(), "worker": name}))
        except Exception as exc:  # the store is locked or full: /readyz will say so
            log.warning("worker heartbeat not written: %s: %s", type(exc).__name__, exc)
        if stop.wait(interval):
            return


def start_workers(services, *, threads: int, evolution_threads: int, stop: threading.Event) -> list[threading.Thread]:
    out = []
    if threads or evolution_threads:
        out.append(
            threading.Thread(
                target=process_heartbeat,
                args=(services, f"{socket.gethostname()}:{os.getpid()}", stop),
                name="aina-worker-heartbeat",
                daemon=True,
            )
        )
    for i in range(threads):
        w = Worker(services, ("default",), name=f"{socket.gethostname()}:{os.getpid()}:w{i}")
        out.append(threading.Thread(target=w.run, args=(stop,), name=f"aina-worker-{i}", daemon=True))
    for i in range(evolution_threads):
        w = Worker(services, (EVOLUTION_QUEUE,), name=f"{socket.gethostname()}:{os.getpid()}:e{i}")
        out.append(threading.Thread(target=w.run, args=(stop,), name=f"aina-evolver-{i}", daemon=True))
    for t in out:
        t.start()
    return out
