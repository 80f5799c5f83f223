"""Fixtures for the sandbox tests: hostile candidates are real files written per test."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import textwrap
import threading

import pytest

from pytest_aina.sandbox.parent.machine import probe

#: Credentials planted in the parent's environment: none may reach a child or a record.
SECRET_NAMES = [
    "GITHUB_TOKEN",
    "OPENAI_API_KEY",
    "AINA_WEBHOOK_SECRET",
    "MY_SERVICE_KEY",
    "DB_PASSWORD",
    "SOME_SESSION_TOKEN",
]


@pytest.fixture
def write(tmp_path):
    """write(name, source) -> path of a candidate file (source is dedented)."""

    def _write(name: str, source: str) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return str(path)

    return _write


@pytest.fixture
def planted_secrets(monkeypatch) -> dict[str, str]:
    values = {}
    for name in SECRET_NAMES:
        values[name] = f"{name.lower()}-{secrets.token_hex(16)}"
        monkeypatch.setenv(name, values[name])
    values["GITHUB_TOKEN"] = "ghp_" + secrets.token_hex(18)  # the real shape, for the pattern redactor too
    monkeypatch.setenv("GITHUB_TOKEN", values["GITHUB_TOKEN"])
    return values


@pytest.fixture
def open_folder():
    """A folder anyone may write to, reachable by any uid (unlike pytest's tmp_path, which
    is private to its owner): the hardest place to keep a candidate out of."""
    path = tempfile.mkdtemp(prefix="aina-outside-")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def caps():
    return probe()


@pytest.fixture
def loopback_server():
    """A real TCP server on 127.0.0.1 that counts the connections it accepts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            accepted.append(f"{addr[0]}:{addr[1]}")
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join(2)
    srv.close()
