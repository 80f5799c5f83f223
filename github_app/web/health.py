"""``GET /healthz`` and ``GET /metrics``: what operators and load balancers poll."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from github_app.web.metrics import CONTENT_TYPE

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 when the store answers; 503 when it does not (the only 5xx: our own fault)."""
    services = current_app.extensions["aina"]
    try:
        services.store.get_meta("schema")
    except Exception as exc:  # the database is gone or locked for good
        return jsonify(status="unhealthy", error=str(exc)), 503
    return jsonify(status="ok")


@bp.get("/metrics")
def metrics():
    services = current_app.extensions["aina"]
    gauges = {"aina_jobs": {(("kind", k), ("state", s)): float(n)
                            for (k, s), n in services.store.job_counts().items()},
              "aina_installation_tokens_issued_total": {(): float(services.auth.tokens_issued)}}
    return Response(services.metrics.render(gauges), content_type=CONTENT_TYPE)
