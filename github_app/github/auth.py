"""Authenticating as the App (a JWT) and as an installation (a cached token).

GitHub's rules: the JWT is signed RS256 with the App's private key, ``iss`` is the App id,
and it may live at most ten minutes. We date it a minute in the past so a server clock a
little ahead of ours still accepts it, and end it nine minutes from now (ten in all).
Installation tokens live an hour; :class:`AppAuth` keeps one per installation and renews it
``TOKEN_RENEW_MARGIN_SECONDS`` before it expires, so a job never starts with a token about
to die.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

import jwt

from github_app.config import signing_key
from github_app.github.client import github_client

JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 600  # GitHub's maximum, counted from the back-dated iat


def app_jwt(app_id: int, private_key, now: float | None = None) -> str:
    """``private_key``: PEM text, or better the key :func:`signing_key` made of it once."""
    now = int(time.time() if now is None else now)
    iat = now - JWT_BACKDATE_SECONDS
    claims = {"iat": iat, "exp": iat + JWT_LIFETIME_SECONDS, "iss": str(app_id)}
    return jwt.encode(claims, private_key, algorithm="RS256")


@dataclass(frozen=True)
class InstallationToken:
    token: str
    expires_at: float  # epoch seconds
    expires_at_text: str


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class AppAuth:
    """Makes github3 clients for the App and for its installations."""

    def __init__(self, config):
        self.app_id = config["APP_ID"]
        self.private_key = config["PRIVATE_KEY"]
        self._signing_key = None  # parsed on first use (signing_key): only the worker signs
        self.api_url = config["GITHUB_API_URL"]
        self.margin = config["TOKEN_RENEW_MARGIN_SECONDS"]
        self._client_options = dict(
            retries=config["HTTP_RETRIES"],
            backoff=config["HTTP_BACKOFF_SECONDS"],
            max_wait=config["HTTP_MAX_WAIT_SECONDS"],
            timeout=config["HTTP_TIMEOUT_SECONDS"],
        )
        self._tokens: dict[int, InstallationToken] = {}
        self._lock = threading.Lock()
        self.tokens_issued = 0  # for /metrics: how often the cache missed

    def _client(self):
        return github_client(self.api_url, **self._client_options)

    def app_client(self):
        """A client authenticated as the App (JWT): for /app endpoints only."""
        from github3.session import AppBearerTokenAuth

        gh = self._client()
        gh.session.auth = AppBearerTokenAuth(
            app_jwt(self.app_id, self._key()), JWT_LIFETIME_SECONDS - JWT_BACKDATE_SECONDS
        )
        return gh

    def _key(self):
        if self._signing_key is None:
            with self._lock:
                if self._signing_key is None:
                    self._signing_key = signing_key(self.private_key)
        return self._signing_key

    def installation_token(self, installation_id: int) -> InstallationToken:
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached.expires_at - self.margin > time.time():
                return cached
        gh = self.app_client()
        url = gh.session.build_url("app", "installations", str(installation_id), "access_tokens")
        response = gh.session.post(url)
        if response.status_code != 201:
            from github3.exceptions import error_for

            raise error_for(response)
        data = response.json()
        token = InstallationToken(data["token"], _parse_time(data["expires_at"]), data["expires_at"])
        with self._lock:
            self._tokens[installation_id] = token
            self.tokens_issued += 1
        return token

    def forget(self, installation_id: int) -> None:
        """Drop a cached token (after a 401, or when the installation goes away)."""
        with self._lock:
            self._tokens.pop(installation_id, None)

    def installation_client(self, installation_id: int):
        """A client authenticated as ``installation_id``."""
        token = self.installation_token(installation_id)
        gh = self._client()
        gh.session.app_installation_token_auth({"token": token.token, "expires_at": token.expires_at_text})
        return gh
