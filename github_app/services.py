"""What the HTTP views and the job workers share, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from github_app.events.router import Router
from github_app.github.auth import AppAuth
from github_app.store import Store
from github_app.web.metrics import Metrics


@dataclass
class Services:
    """``app.extensions["aina"]`` for the views; ``ctx.services`` for job handlers."""

    config: dict[str, Any]
    store: Store
    router: Router
    metrics: Metrics
    auth: AppAuth
