"""The Flask app factory: configuration checked once, the services the views and the
workers share, and the routes (:mod:`github_app.web`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from github_app import config as app_config
from github_app.events import default_router
from github_app.github.auth import AppAuth
from github_app.services import Services
from github_app.store import open_store
from github_app.web import errors, health, telemetry, webhooks
from github_app.web.metrics import app_metrics
from github_app.web.store_gate import StoreGate

log = logging.getLogger(__name__)


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
    app.config["MAX_CONTENT_LENGTH"] = max(settings["WEBHOOK_MAX_BYTES"], settings["TELEMETRY_MAX_BYTES"]) + 1

    # 2. State, GitHub access and metrics, shared by views and workers.
    services = Services(
        config=settings,
        store=open_store(settings["DATABASE"], max_attempts=settings["JOB_MAX_ATTEMPTS"]),
        router=default_router(),
        metrics=app_metrics(),
        auth=AppAuth(settings),
    )
    app.extensions["aina"] = services
    app.extensions["aina.store_gate"] = StoreGate(settings["STORE_STUCK_SECONDS"])

    # 3. Routes: one blueprint per concern.
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(telemetry.bp)
    app.register_blueprint(health.bp)

    # 4. Whatever goes wrong is answered in JSON: 4xx for the client's mistakes, 503 with
    # Retry-After for a store that may come back.
    errors.init_app(app)

    return app
