"""``GET /healthz``, ``GET /readyz`` and ``GET /metrics``: what operators and load balancers poll.

* ``/healthz`` — alive: the process answers HTTP. It touches nothing else, so a locked or
  full database does not get a healthy process restarted (that would not help);
* ``/readyz`` — ready: a write to the store commits within ``READY_TIMEOUT_SECONDS`` and a
  job worker wrote its heartbeat within three ``WORKER_HEARTBEAT_SECONDS``; otherwise 503
  with ``Retry-After`` and the problems, so a load balancer sends traffic elsewhere;
* ``/metrics`` — Prometheus' text format, summed over every process that shares
  ``PROMETHEUS_MULTIPROC_DIR`` (:mod:`.metrics`).
"""

from __future__ import annotations

import json
import threading
import time

from flask import Blueprint, Response, current_app, jsonify

from github_app.web.errors import RETRY_AFTER_SECONDS
from github_app.web.metrics import CONTENT_TYPE

bp = Blueprint("health", __name__)

#: The store key the job worker's heartbeat is written under (see github_app.worker).
HEARTBEAT_KEY = "worker_heartbeat"
_PROBE_KEY = "ready_probe"
_probes_lock = threading.Lock()


class StoreProbe:
    """A write to the store off the request thread, so that /readyz answers within its
    deadline whatever the store does; while one probe hangs, later checks wait on it
    instead of starting another."""

    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._done: threading.Event | None = None
        self._result: tuple[str | None, str | None] = (None, None)
        self._started = 0.0

    def _run(self, done: threading.Event) -> None:
        try:
            self.store.set_meta(_PROBE_KEY, repr(time.time()))
            self._result = (None, self.store.get_meta(HEARTBEAT_KEY))
        except Exception as exc:  # the answer is the problem, not a crash of the probe
            self._result = (f"the store refused a write: {type(exc).__name__}: {exc}", None)
        finally:
            done.set()

    def check(self, timeout: float) -> tuple[str | None, str | None]:
        """(problem or None, the heartbeat's stored value or None)."""
        with self._lock:
            if self._done is None or self._done.is_set():
                self._done = threading.Event()
                self._started = time.monotonic()
                threading.Thread(target=self._run, args=(self._done,), daemon=True, name="aina-readyz-probe").start()
            done, started = self._done, self._started
        if not done.wait(timeout):
            return (f"a write to the store has not committed after {time.monotonic() - started:.1f} s", None)
        return self._result


def _probe() -> StoreProbe:
    with _probes_lock:
        return current_app.extensions.setdefault("aina.readyz", StoreProbe(current_app.extensions["aina"].store))


@bp.get("/healthz")
def healthz():
    """200 while the process answers HTTP: alive, not necessarily able to serve."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """200 when the store takes a write and a job worker is alive; 503 with the problems."""
    config = current_app.extensions["aina"].config
    problem, beat = _probe().check(config["READY_TIMEOUT_SECONDS"])
    problems = [problem] if problem else []
    worker = None
    if problem is None:
        interval = config["WORKER_HEARTBEAT_SECONDS"]
        try:
            worker = json.loads(beat) if beat else None
            age = time.time() - float(worker["at"])
        except (ValueError, TypeError, KeyError):
            worker, age = None, None
        if age is None:
            problems.append(
                "no job worker has written a heartbeat (is `aina serve --worker-only` running on this database?)"
            )
        elif age > 3 * interval:
            problems.append(f"the job worker's last heartbeat is {age:.0f} s old (expected every {interval:g} s)")
        else:
            worker = {"name": worker.get("worker"), "heartbeat_age_s": round(age, 3)}
    if problems:
        response = jsonify(status="unready", problems=problems)
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return jsonify(status="ready", worker=worker)


@bp.get("/metrics")
def metrics():
    services = current_app.extensions["aina"]
    services.metrics.catch_up("aina_installation_tokens_issued_total", services.auth.tokens_issued)
    gauges = {"aina_jobs": {(("kind", k), ("state", s)): float(n) for (k, s), n in services.store.job_counts().items()}}
    return Response(services.metrics.render(gauges), content_type=CONTENT_TYPE)
