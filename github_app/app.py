"""The Flask app factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from github_app import config as app_config
from github_app.github.auth import AppAuth
from github_app.events import Router, default_router
from github_app.web.metrics import CONTENT_TYPE, Metrics, app_metrics
from github_app.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the views and the worker share; ``app.extensions["aina"]``."""

    config: dict[str, Any]
    store: Store
    router: Router
    metrics: Metrics
    auth: AppAuth


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the App.

    Configuration: defaults, then ``AINA_*`` environment variables, then ``config``.
    Raises :class:`~github_app.config.ConfigError` naming the key when a value is missing
    or wrong, so a misconfigured deployment stops at start-up.
    """
    app = Flask("github_app", instance_relative_config=True)

    # 1. Configuration, checked once.
    env = Flask("env-reader")
    env.config.from_prefixed_env(app_config.ENV_PREFIX)
    # from_prefixed_env parses values as JSON; a secret that looks like a number must stay
    # the text it is.
    for key in app_config.TEXT_KEYS:
        raw = os.environ.get(f"{app_config.ENV_PREFIX}_{key}")
        if raw is not None:
            env.config[key] = raw
    settings = app_config.merged(env.config, config)
    app_config.check(settings)
    if not settings["DATABASE"]:
        os.makedirs(app.instance_path, exist_ok=True)
        settings["DATABASE"] = os.path.join(app.instance_path, "aina.sqlite3")
    app.config.update(settings)
    # Flask's own body limit backs up the per-route limits the views set.
    app.config["MAX_CONTENT_LENGTH"] = max(settings["WEBHOOK_MAX_BYTES"],
                                           settings["TELEMETRY_MAX_BYTES"]) + 1

    # 2. State, GitHub access and metrics, shared by views and workers.
    services = Services(
        config=settings,
        store=open_store(settings["DATABASE"], max_attempts=settings["JOB_MAX_ATTEMPTS"]),
        router=default_router(),
        metrics=app_metrics(),
        auth=AppAuth(settings),
    )
    app.extensions["aina"] = services

    # 3. Routes: one blueprint per concern.
    from github_app.web import telemetry
    from github_app.web import webhooks

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(telemetry.bp)
    app.register_blueprint(health)

    # 4. Anything a client sends that reaches an HTTP error is answered in JSON.
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def http_error(exc):
        return jsonify(error=exc.description), exc.code

    return app


health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    """200 when the store answers; 503 when it does not (the only 5xx: our own fault)."""
    services = current_app.extensions["aina"]
    try:
        services.store.get_meta("schema")
    except Exception as exc:  # the database is gone or locked for good
        return jsonify(status="unhealthy", error=str(exc)), 503
    return jsonify(status="ok")


@health.get("/metrics")
def metrics():
    services = current_app.extensions["aina"]
    gauges = {"aina_jobs": {(("kind", k), ("state", s)): float(n)
                            for (k, s), n in services.store.job_counts().items()},
              "aina_installation_tokens_issued_total": {(): float(services.auth.tokens_issued)}}
    return Response(services.metrics.render(gauges), content_type=CONTENT_TYPE)
