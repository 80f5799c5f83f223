"""Fixtures for the App's tests: a GitHub API fake and the App, both on loopback.

``fake`` is a real HTTP server speaking GitHub's REST API (checked against GitHub's
published description); ``app`` is the App from its factory, served by werkzeug on
another port, configured to talk to the fake as a GitHub Enterprise server. ``drain``
runs the App's job worker in the test's thread until no job is due.
"""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server

import octokit
from fake_github import FakeGitHub, RestDescription

WEBHOOK_SECRET = "webhook-secret-for-tests"
APP_ID = 4242


@pytest.fixture(scope="session")
def rest_description():
    try:
        return RestDescription(octokit.rest_description())
    except octokit.OctokitUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def app_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture
def fake(rest_description, app_key):
    gh = FakeGitHub(rest_description, app_id=APP_ID, public_key=app_key[1],
                    webhook_secret=WEBHOOK_SECRET).start()
    yield gh
    gh.stop()
    assert gh.violations == [], "the fake saw requests or gave answers GitHub would not"


def app_config(fake, app_key, tmp_path, **overrides):
    config = {
        "APP_ID": APP_ID, "PRIVATE_KEY": app_key[0], "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": fake.api_url, "DATABASE": str(tmp_path / "aina.sqlite3"),
        "HTTP_BACKOFF_SECONDS": 0.01, "RETRY_BASE_SECONDS": 0.01, "RETRY_MAX_SECONDS": 0.05,
        "REASON_DEBOUNCE_SECONDS": 0.0, "HTTP_TIMEOUT_SECONDS": 10.0,
        "WORK_DIR": str(tmp_path),
    }
    config.update(overrides)
    return config


class Served:
    """The App on a loopback port."""

    def __init__(self, flask_app):
        self.flask = flask_app
        self.services = flask_app.extensions["aina"]
        self.server = make_server("127.0.0.1", 0, flask_app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.services.store.close()


@pytest.fixture
def make_app(fake, app_key, tmp_path):
    from github_app import create_app

    served = []

    def make(**overrides):
        s = Served(create_app(app_config(fake, app_key, tmp_path, **overrides)))
        fake.app.webhook_url = s.url + "/webhook"
        served.append(s)
        return s

    yield make
    for s in served:
        s.stop()


@pytest.fixture
def app(make_app):
    return make_app()


def drain(services, *, timeout: float = 30.0, queues=("default", "evolution")) -> list:
    """Run due jobs until none is left (waiting out short backoffs); the jobs run."""
    from github_app.worker import Worker

    worker = Worker(services, queues, name="test-worker")
    ran = []
    deadline = time.monotonic() + timeout
    idle_since = None
    while time.monotonic() < deadline:
        job = worker.run_once()
        if job is not None:
            ran.append(job)
            idle_since = None
            continue
        pending = [j for state in ("queued", "running") for j in services.store.jobs(state=state)]
        if not pending:
            return ran
        idle_since = idle_since or time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"jobs still pending after {timeout}s: "
                         f"{[(j.kind, j.state, j.last_error) for j in services.store.jobs()]}")


@pytest.fixture
def installed(fake):
    """A repository with kernels, installed for the App; (repo, installation)."""
    repo = fake.create_repo("octo-org/kernels", {
        "README.md": "# kernels\n",
        "kernels/__init__.py": "",
        "kernels/softmax.py": "def softmax(x):\n    return x\n",
        "specs/softmax.yaml": "name: softmax\n",
    })
    fake.add_user("maintainer")
    fake.add_user("drive-by")
    repo.collaborators["maintainer"] = "write"
    inst = fake.install("octo-org", ["octo-org/kernels"])
    return repo, inst
