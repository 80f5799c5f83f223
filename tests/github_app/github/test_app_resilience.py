"""GitHub's bad moments: 5xx, primary and secondary rate limits, token expiry, and the
App's own JWT as GitHub checks it."""

from __future__ import annotations

import time

import pytest
from app_helpers import APP_ID, drain, make_change

from github_app.github.auth import AppAuth
from github_app.github.client import RateLimited, wait_for
from github_app.store import JobSpec

REPO = "octo-org/kernels"


def publish_job(inst, hyp="hyp-1"):
    return JobSpec(
        "publish",
        {"repository": REPO, "installation_id": inst.id, "change": make_change(hyp)},
        key=f"publish:{REPO}:{hyp}",
        repository=REPO,
    )


def test_5xx_answers_are_retried_inside_the_call(fake, app, onboarded):
    repo, inst = onboarded
    fake.inject("POST", r"/git/commits$", 502, times=2)
    fake.inject("POST", r"/pulls$", 503)
    app.services.store.enqueue([publish_job(inst)])
    ran = drain(app.services)
    publish = [j for j in ran if j.kind == "publish"]
    assert len(publish) == 1, "the job itself did not need a second attempt"
    assert fake.count("POST", "git/create-commit", 502) == 2
    assert fake.count("POST", "pulls/create", 503) == 1
    assert fake.count("POST", "pulls/create", 201) == 1
    assert len(repo.pulls()) == 1


def test_secondary_rate_limit_waits_for_retry_after(fake, app, onboarded):
    repo, inst = onboarded
    fake.inject(
        "POST",
        r"/git/blobs$",
        403,
        headers={"Retry-After": "1"},
        body={
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            "documentation_url": "https://docs.github.com/rest",
        },
    )
    fake.inject("POST", r"/git/trees$", 429, headers={"Retry-After": "1"})
    app.services.store.enqueue([publish_job(inst)])
    started = time.monotonic()
    drain(app.services)
    assert time.monotonic() - started >= 2.0, "Retry-After was not honoured"
    assert len(repo.pulls()) == 1


def test_primary_rate_limit_waits_until_reset(fake, app, onboarded):
    repo, inst = onboarded
    reset = int(time.time()) + 1
    fake.inject(
        "GET",
        r"/contents/",
        403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        body={
            "message": "API rate limit exceeded for installation ID 1.",
            "documentation_url": "https://docs.github.com/rest",
        },
    )
    app.services.store.enqueue([publish_job(inst)])
    drain(app.services)
    assert time.time() >= reset
    assert len(repo.pulls()) == 1


def test_a_long_wait_reschedules_the_job_instead_of_holding_a_worker(fake, make_app, installed):
    app = make_app(HTTP_MAX_WAIT_SECONDS=1.0)
    repo, inst = installed
    fake.deliver_event("installation", fake.installation_payload(inst, "created"))
    drain(app.services)
    fake.inject("GET", r"/contents/", 429, headers={"Retry-After": "3600"})
    app.services.store.enqueue([publish_job(inst)])
    from github_app.worker import Worker

    worker = Worker(app.services, ("default",), name="w")
    job = worker.run_once()
    assert job.kind == "publish"
    [again] = app.services.store.jobs(kind="publish")
    assert again.state == "queued" and again.run_at > time.time() + 3000
    assert again.attempts == 0, "a rate limit is not a failed attempt"
    assert "rate limited" in again.last_error


def test_the_app_jwt_is_what_github_accepts(fake, app, onboarded):
    # onboarding fetched an installation token with the App's JWT: the fake checked it
    # against the App's public key; here we check its clock claims.
    [claims] = fake.jwts_seen
    assert claims["iss"] == str(APP_ID)
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["iat"] <= time.time() - 55, "iat should be a minute in the past"
    assert claims["exp"] > time.time()


def test_a_jwt_signed_with_another_key_is_refused(fake, app, rest_description):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from github3.exceptions import AuthenticationFailed

    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    auth = AppAuth({**app.services.config, "PRIVATE_KEY": other})
    inst = fake.install("octo-org", [])
    with pytest.raises(AuthenticationFailed):
        auth.installation_token(inst.id)


def test_installation_tokens_are_cached_until_shortly_before_they_expire(fake, app, installed):
    repo, inst = installed
    auth = app.services.auth
    first = auth.installation_token(inst.id)
    assert auth.installation_token(inst.id) is first
    assert fake.count("POST", "apps/create-installation-access-token") == 1
    # A token within the renewal margin of its expiry is replaced before use.
    fake.token_lifetime = auth.margin + 1
    auth.forget(inst.id)
    short = auth.installation_token(inst.id)
    assert auth.installation_token(inst.id) is short
    time.sleep(1.2)
    renewed = auth.installation_token(inst.id)
    assert renewed is not short and renewed.token != short.token
    assert fake.count("POST", "apps/create-installation-access-token") == 3


def test_an_expired_token_is_renewed_after_a_401(fake, app, onboarded):
    repo, inst = onboarded
    # GitHub revokes the token early: the next call is a 401, the job forgets the token and
    # retries with a fresh one.
    fake.tokens.clear()
    app.services.store.enqueue([publish_job(inst)])
    drain(app.services)
    assert len(repo.pulls()) == 1


def test_wait_for_reads_githubs_headers():
    class R:
        def __init__(self, status, headers, content=b""):
            self.status_code, self.headers, self.content = status, headers, content

    now = 1000.0
    assert wait_for(R(403, {"Retry-After": "7"}), now) == (7.0, "secondary rate limit (Retry-After)")
    assert wait_for(R(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1030"}), now) == (
        31.0,
        "primary rate limit",
    )
    assert wait_for(R(403, {"X-RateLimit-Remaining": "12"}, b'{"message":"Must have admin"}'), now) is None, (
        "a permission error is not a rate limit"
    )
    assert wait_for(R(403, {}, b"You have exceeded a secondary rate limit"), now)[0] == 60.0
    assert wait_for(R(502, {}), now) is None
    assert RateLimited(now, "x").retry_at == now


def test_the_private_key_is_parsed_once_not_for_every_jwt(fake, app, monkeypatch):
    """Parsing the PEM key holds the GIL for 50 to 80 ms (PyJWT did it for every JWT
    given PEM text); the App parses it once and signs every JWT with the parsed key."""
    from github_app.github import auth as auth_module

    parsed = []
    real = auth_module.signing_key
    monkeypatch.setattr(auth_module, "signing_key", lambda pem: parsed.append(pem) or real(pem))
    auth = AppAuth(app.services.config)
    seen = len(fake.jwts_seen)
    for _ in range(3):
        inst = fake.install("octo-org", [])
        auth.installation_token(inst.id)  # each a new installation: a new JWT each time
    assert len(parsed) == 1 and len(fake.jwts_seen) == seen + 3  # and GitHub accepted each
