"""github3.py clients that survive GitHub's bad moments.

A :class:`RetryingAdapter` is mounted on every github3 session: it retries 5xx answers and
dropped connections with exponential backoff, and honours rate limits — primary
(``X-RateLimit-Remaining: 0`` until ``X-RateLimit-Reset``) and secondary (403/429 with
``Retry-After``). A wait longer than the App will sleep inside one call raises
:class:`RateLimited`, and the worker reschedules the job for then instead of holding a
thread. Retrying a POST is safe here because every side effect the App makes is
looked up before it is made (see :mod:`github_app.github.pulls`).
"""

from __future__ import annotations

import logging
import random
import time
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

GITHUB_COM_API = "https://api.github.com"
API_VERSION = "2022-11-28"


class RateLimited(Exception):
    """GitHub asked us to wait until ``retry_at`` (epoch seconds)."""

    def __init__(self, retry_at: float, reason: str):
        super().__init__(f"rate limited ({reason}) until {time.ctime(retry_at)}")
        self.retry_at = retry_at
        self.reason = reason


class GitHubUnavailable(Exception):
    """GitHub kept failing (5xx or no connection) through every retry of one call."""


def wait_for(response: requests.Response, now: float | None = None) -> tuple[float, str] | None:
    """Seconds to wait before retrying ``response`` and why, or None if it is no limit."""
    now = time.time() if now is None else now
    status = response.status_code
    if status not in (403, 429):
        return None
    headers = response.headers
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after)), "secondary rate limit (Retry-After)"
        except ValueError:
            try:
                return max(
                    0.0, parsedate_to_datetime(retry_after).timestamp() - now
                ), "secondary rate limit (Retry-After date)"
            except (TypeError, ValueError):
                pass
    if headers.get("X-RateLimit-Remaining") == "0" and headers.get("X-RateLimit-Reset"):
        try:
            return max(0.0, float(headers["X-RateLimit-Reset"]) - now) + 1.0, "primary rate limit"
        except ValueError:
            pass
    if status == 429 or b"secondary rate limit" in (response.content or b"").lower():
        # GitHub's guidance when a secondary limit names no time: wait at least a minute.
        return 60.0, "secondary rate limit"
    return None


class RetryingAdapter(HTTPAdapter):
    def __init__(self, *, retries: int = 5, backoff: float = 0.5, max_wait: float = 60.0, sleep=time.sleep):
        super().__init__(pool_connections=4, pool_maxsize=8)
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep

    def send(self, request, **kwargs):
        attempt = 0
        while True:
            try:
                response = super().send(request, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.retries:
                    raise GitHubUnavailable(f"{request.method} {request.url}: {exc}") from exc
                self._pause(attempt, f"{request.method} {request.url}: {exc}")
                attempt += 1
                continue
            limit = wait_for(response)
            if limit is not None:
                seconds, reason = limit
                if seconds > self.max_wait or attempt >= self.retries:
                    raise RateLimited(time.time() + seconds, reason)
                log.warning("%s %s: %s, waiting %.1fs", request.method, request.url, reason, seconds)
                response.close()
                self._sleep(seconds)
                attempt += 1
                continue
            if response.status_code >= 500 and attempt < self.retries:
                response.close()
                self._pause(attempt, f"{request.method} {request.url}: {response.status_code}")
                attempt += 1
                continue
            if response.status_code >= 500:
                raise GitHubUnavailable(
                    f"{request.method} {request.url}: {response.status_code} after {attempt + 1} tries"
                )
            return response

    def _pause(self, attempt: int, why: str) -> None:
        # Full jitter: several workers retrying the same outage do not retry in step.
        delay = random.uniform(0, self.backoff * (2**attempt))
        log.warning("%s; retrying in %.2fs", why, delay)
        self._sleep(delay)


def github_client(api_url: str, *, retries: int, backoff: float, max_wait: float, timeout: float):
    """A github3 client for ``api_url`` (github.com, or an Enterprise ``.../api/v3``)."""
    import github3
    from github3.session import GitHubSession

    session = GitHubSession(default_connect_timeout=min(timeout, 10.0), default_read_timeout=timeout)
    # The version header pins the REST API the App was written against. github3 asks for
    # the "full" media type (bodies as text and HTML too), which its models expect.
    session.headers["X-GitHub-Api-Version"] = API_VERSION
    adapter = RetryingAdapter(retries=retries, backoff=backoff, max_wait=max_wait)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    api_url = api_url.rstrip("/")
    if api_url == GITHUB_COM_API:
        return github3.GitHub(session=session)
    root = api_url[: -len("/api/v3")] if api_url.endswith("/api/v3") else api_url
    gh = github3.GitHubEnterprise(root, session=session)
    gh.session.base_url = root + "/api/v3"
    return gh
