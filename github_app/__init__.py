"""The pytest-aina GitHub App: telemetry and webhooks in, evolution PRs out.

``create_app(config=None)`` builds the Flask app; ``aina serve`` runs it with its job
workers on one machine; ``gunicorn 'github_app:create_app()'`` serves it in production
with the workers run by ``aina serve --worker-only``.

The names below load on first use, so that ``aina --help`` (which registers ``aina
serve`` through ``github_app.cli``) does not pay for Flask, pyjwt and github3.py.
"""

from __future__ import annotations

import importlib

__all__ = ["Change", "ChangeError", "ConfigError", "Services", "create_app"]

_WHERE = {
    "Services": "github_app.services",
    "create_app": "github_app.app",
    "Change": "pytest_aina.changer.change",
    "ChangeError": "pytest_aina.changer.change",
    "ConfigError": "github_app.config",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'github_app' has no attribute {name!r}")
