"""The pytest-aina GitHub App: telemetry and webhooks in, evolution PRs out.

``create_app(config=None)`` builds the Flask app; ``aina serve`` runs it with its job
workers on one machine; ``gunicorn 'github_app:create_app()'`` serves it in production
with the workers run by ``aina serve --worker-only``.
"""

from github_app.app import Services, create_app
from github_app.change import Change, ChangeError
from github_app.config import ConfigError

__all__ = ["Change", "ChangeError", "ConfigError", "Services", "create_app"]
