"""Fixtures for the App's tests: a GitHub API fake and the App, both on loopback.

``fake`` is a real HTTP server speaking GitHub's REST API (checked against GitHub's
published description); ``app`` is the App from its factory, served by werkzeug on
another port, configured to talk to the fake as a GitHub Enterprise server;
``onboarded`` is a repository whose installation the App has heard of and set up.
"""

from __future__ import annotations

import logging

import octokit
import pytest
from app_helpers import APP_ID, WEBHOOK_SECRET, Served, app_config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fake_github import FakeGitHub, RestDescription

# One line per request from two servers drowns what a failing test says.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def rest_description():
    try:
        return RestDescription(octokit.rest_description())
    except octokit.OctokitUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def app_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def fake(rest_description, app_key):
    gh = FakeGitHub(rest_description, app_id=APP_ID, public_key=app_key[1], webhook_secret=WEBHOOK_SECRET).start()
    yield gh
    gh.stop()
    assert gh.violations == [], "the fake saw requests or gave answers GitHub would not"


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


@pytest.fixture
def installed(fake):
    """A repository with kernels, installed for the App; (repo, installation)."""
    repo = fake.create_repo(
        "octo-org/kernels",
        {
            "README.md": "# kernels\n",
            "kernels/__init__.py": "",
            "kernels/softmax.py": "def softmax(x):\n    return x\n",
            "specs/softmax.yaml": "name: softmax\n",
        },
    )
    fake.add_user("maintainer")
    fake.add_user("drive-by")
    repo.collaborators["maintainer"] = "write"
    inst = fake.install("octo-org", ["octo-org/kernels"])
    return repo, inst


@pytest.fixture
def onboarded(fake, app, installed):
    """``installed``, after the App handled the installation event (repository known,
    baseline recorded, dashboard issue drawn); (repo, installation)."""
    from app_helpers import drain

    repo, inst = installed
    delivery = fake.deliver_event("installation", fake.installation_payload(inst, "created"))
    assert delivery.status_code == 202, delivery.response_body
    drain(app.services)
    return repo, inst
