"""The App as production runs it: start-up checks, /healthz and /readyz, deadlines on what
clients send, 503 with Retry-After for a store that cannot write, and gunicorn's worker
under stalled clients."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time

import pytest
import requests
from app_helpers import WEBHOOK_SECRET, Served, post_webhook, serve_gunicorn, sign
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from github_app import ConfigError, create_app
from github_app.store import SQLiteStore, StoreUnavailable


def config(app_key, tmp_path, **extra):
    return {
        "APP_ID": 7,
        "PRIVATE_KEY": app_key[0],
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DATABASE": str(tmp_path / "db.sqlite3"),
        "GITHUB_API_URL": "http://127.0.0.1:9/api/v3",
        **extra,
    }


@pytest.fixture
def serve(app_key, tmp_path):
    served = []

    def start(**extra):
        s = Served(create_app(config(app_key, tmp_path, **extra)))
        served.append(s)
        return s

    yield start
    for s in served:
        s.stop()


# -- start-up ----------------------------------------------------------------------------------
def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    "kind, message",
    [
        ("public", "is a public key or a certificate"),
        ("ec", r"is not an RSA key \(EC\)"),
        ("garbage", "is not a PEM private key that can be read"),
        ("encrypted", "is encrypted with a password"),
        ("short", "is an RSA key of 1024 bits"),
    ],
)
def test_a_key_that_cannot_sign_rs256_stops_the_app_naming_private_key(app_key, tmp_path, kind, message):
    rsa_key = serialization.load_pem_private_key(app_key[0].encode(), password=None)
    pem = {
        "public": app_key[1],
        "ec": _pem(ec.generate_private_key(ec.SECP256R1())),
        "garbage": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
        "encrypted": rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"password"),
        ).decode(),
        "short": _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
    }[kind]
    with pytest.raises(ConfigError, match="PRIVATE_KEY") as info:
        create_app(config(app_key, tmp_path, PRIVATE_KEY=pem))
    assert re.search(message, str(info.value))
    body = [line for line in pem.splitlines() if "-----" not in line]
    assert not any(line in str(info.value) for line in body), "the key's text was printed"


def test_a_short_webhook_secret_is_accepted_with_a_warning_that_says_why(app_key, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="github_app.config"):
        app = create_app(config(app_key, tmp_path, WEBHOOK_SECRET="s3cret"))
    app.extensions["aina"].store.close()
    [record] = [r for r in caplog.records if "WEBHOOK_SECRET" in r.getMessage()]
    assert "only 6 characters" in record.getMessage()
    assert "offline" in record.getMessage() and "s3cret" not in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="github_app.config"):
        create_app(config(app_key, tmp_path, WEBHOOK_SECRET="x" * 16)).extensions["aina"].store.close()
    assert not caplog.records


# -- /healthz and /readyz ----------------------------------------------------------------------
def test_readyz_wants_a_store_that_writes_and_a_worker_that_beats(serve):
    from github_app.worker import process_heartbeat

    app = serve(WORKER_HEARTBEAT_SECONDS=0.2, READY_TIMEOUT_SECONDS=1.0)
    assert requests.get(app.url + "/healthz", timeout=10).json() == {"status": "ok"}
    r = requests.get(app.url + "/readyz", timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert "no job worker" in r.json()["problems"][0]

    stop = threading.Event()
    beat = threading.Thread(target=process_heartbeat, args=(app.services, "here:1", stop))
    beat.start()
    try:
        deadline = time.monotonic() + 10
        while (r := requests.get(app.url + "/readyz", timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.05)
        assert r.json()["worker"]["name"] == "here:1"
    finally:
        stop.set()
        beat.join()
    time.sleep(0.7)  # more than three missed beats
    r = requests.get(app.url + "/readyz", timeout=10)
    assert r.status_code == 503 and "last heartbeat is" in r.json()["problems"][0]


def test_readyz_answers_within_its_deadline_while_the_database_is_locked(serve):
    app = serve(READY_TIMEOUT_SECONDS=0.5)
    app.services.store.set_meta("worker_heartbeat", json.dumps({"at": time.time() + 60}))
    holder = sqlite3.connect(app.services.config["DATABASE"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        for _ in range(2):  # the second check finds the first probe still waiting
            started = time.monotonic()
            r = requests.get(app.url + "/readyz", timeout=10)
            assert time.monotonic() - started < 3
            assert r.status_code == 503 and "has not committed" in r.json()["problems"][0]
        assert requests.get(app.url + "/healthz", timeout=3).status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    deadline = time.monotonic() + 35  # the hung probe finishes once the lock is free
    while requests.get(app.url + "/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


# -- 503 with Retry-After ----------------------------------------------------------------------
class UnavailableStore(SQLiteStore):
    """A store whose writes fail the way a locked or full database does."""

    def record_delivery(self, *args, **kwargs):
        raise StoreUnavailable("database is locked (held past the deadline)")

    def store_telemetry(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")


def unavailable_store(database, *, max_attempts):
    return UnavailableStore(os.environ["AINA_TEST_UNAVAILABLE_DB"], max_attempts=max_attempts)


def test_a_store_that_cannot_write_gives_503_with_retry_after(serve, tmp_path, monkeypatch):
    from app_helpers import window

    from github_app.web.telemetry import telemetry_secret
    from pytest_aina.telemetry.wire import encode_batch

    monkeypatch.setenv("AINA_TEST_UNAVAILABLE_DB", str(tmp_path / "u.sqlite3"))
    app = serve(DATABASE=f"python:{__name__}:unavailable_store")
    app.services.store.upsert_installation(5, "octo", True)
    app.services.store.upsert_repository("octo/k", 5)
    r = post_webhook(app.url, "installation", {"action": "created", "installation": {"id": 5}})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.headers["Content-Type"].startswith("application/json") and "retry" in r.json()["error"]
    body = encode_batch([window(0)])
    t = requests.post(
        app.url + "/telemetry?installation=5&repository=octo/k",
        data=body,
        timeout=10,
        headers={"X-Aina-Signature-256": sign(telemetry_secret(WEBHOOK_SECRET, 5), body)},
    )
    assert t.status_code == 503 and t.headers["Retry-After"] == "5"
    metrics = requests.get(app.url + "/metrics", timeout=10).text
    assert re.search(r'aina_requests_failed_total\{cause="store",route="webhooks"\} 1', metrics)


def test_while_a_write_is_stuck_on_a_locked_database_other_writes_get_503_at_once(serve):
    app = serve(STORE_STUCK_SECONDS=0.3)
    payload = {"zen": "Avoid administrative distraction."}
    holder = sqlite3.connect(app.services.config["DATABASE"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    first: list = []
    stuck = threading.Thread(target=lambda: first.append(post_webhook(app.url, "ping", payload)))
    try:
        stuck.start()
        time.sleep(0.6)  # the first delivery waits on the lock, longer than 0.3 s by now
        started = time.monotonic()
        r = post_webhook(app.url, "ping", payload)
        assert time.monotonic() - started < 2
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
        assert requests.get(app.url + "/healthz", timeout=2).status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    stuck.join(40)
    assert first[0].status_code == 200  # it went through once the lock was free
    assert post_webhook(app.url, "ping", payload).status_code == 200


# -- deadlines on what clients send ------------------------------------------------------------
def stalled(port: int, path: str = "/webhook") -> socket.socket:
    """A client that sends its headers and half its body, then nothing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\n"
        "X-GitHub-Delivery: d\r\nContent-Length: 100\r\n\r\n".encode()
        + b"{" * 50
    )
    return s


def answer(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_body_that_stops_coming_gets_408_after_the_deadline(serve):
    app = serve(BODY_TIMEOUT_SECONDS=0.5)
    started = time.monotonic()
    with stalled(app.server.server_port) as s:
        reply = answer(s)
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert 0.4 < time.monotonic() - started < 5


def test_a_body_shorter_than_its_content_length_gets_400(serve):
    app = serve()
    with socket.create_connection(("127.0.0.1", app.server.server_port), timeout=10) as s:
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
        s.shutdown(socket.SHUT_WR)  # the client is done: 2 bytes of 100
        reply = answer(s)
    assert reply.startswith(b"HTTP/1.1 400"), reply


@pytest.fixture
def gunicorn(app_key, tmp_path):
    """gunicorn with the App's settings: one worker, four threads, short deadlines."""
    key = tmp_path / "app.pem"
    key.write_text(app_key[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    env.update(
        {
            "AINA_APP_ID": "1",
            "AINA_PRIVATE_KEY": str(key),
            "AINA_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "AINA_DATABASE": str(tmp_path / "g.db"),
            "AINA_BODY_TIMEOUT_SECONDS": "1.0",
        }
    )
    with serve_gunicorn(env) as g:
        yield g.url, g.lines
    assert g.proc.returncode == 0, "".join(g.lines[-20:])  # a clean shutdown on SIGTERM


def test_stalled_clients_do_not_take_gunicorns_threads(gunicorn):
    """Twice as many stalled clients as threads: each is cut at its deadline, and the
    requests queued behind them are answered in order, well within GitHub's 10 s."""
    url, log = gunicorn
    port = int(url.rsplit(":", 1)[1])
    clients = [stalled(port) for _ in range(8)]
    # and some that send half their headers only
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Git")
        clients.append(s)
    try:
        time.sleep(0.3)  # they hold every thread now
        started = time.monotonic()
        assert requests.get(url + "/healthz", timeout=10).status_code == 200
        body = json.dumps({"zen": "Design for failure."}).encode()
        r = requests.post(
            url + "/webhook",
            data=body,
            timeout=10,
            headers={
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": "ok-1",
                "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body),
            },
        )
        assert r.status_code == 200, r.text
        assert time.monotonic() - started < 8
        replies = [answer(s) for s in clients[:8]]
        assert all(r.startswith(b"HTTP/1.1 408") for r in replies), replies
        assert [answer(s) for s in clients[8:]] == [b""] * 4  # closed: headers never came
    finally:
        for s in clients:
            s.close()
    assert not any("Traceback" in line for line in log), "".join(log)


def test_gunicorn_workers_leave_what_start_up_made_out_of_garbage_collection():
    """A full collection walked every object start-up made, 30 to 70 ms with the GIL held,
    and inside a group commit every acknowledgement waited that long: each HTTP worker
    freezes its start-up heap once the App is loaded (the job worker too: serve)."""
    import gc

    from github_app.web import gunicorn_config

    gc.unfreeze()  # (nothing in the suite freezes; this test must not depend on it)
    try:
        gunicorn_config.post_worker_init(worker=None)
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
