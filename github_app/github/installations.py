"""What GitHub says the App is installed on: its installations, and the repositories each
one grants (the start-up sync reads them to catch events missed while the App was down)."""

from __future__ import annotations

from collections.abc import Iterator


def installations(app_client) -> Iterator:
    """Every installation of the App (``GET /app/installations``, as the App)."""
    return app_client.app_installations()


def installation_repositories(gh) -> Iterator:
    """The repositories an installation's client may see (``GET /installation/repositories``,
    every page); github3.py has no public call for it."""
    from github3.repos.repo import ShortRepository

    url = gh._build_url("installation", "repositories")
    return gh._iter(-1, url, ShortRepository, list_key="repositories")
