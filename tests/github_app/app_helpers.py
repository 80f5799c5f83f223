"""Helpers shared by the App's tests (a module of its own: ``conftest`` is not importable
by name when several test folders have one)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
from werkzeug.serving import make_server
from worker_process import app_env, start_worker_process

from github_app.store import JobSpec

WEBHOOK_SECRET = "webhook-secret-for-tests"
APP_ID = 4242


def app_config(fake, app_key, tmp_path, **overrides):
    config = {
        "APP_ID": APP_ID,
        "PRIVATE_KEY": app_key[0],
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": fake.api_url,
        "DATABASE": str(tmp_path / "aina.sqlite3"),
        "HTTP_BACKOFF_SECONDS": 0.01,
        "RETRY_BASE_SECONDS": 0.01,
        "RETRY_MAX_SECONDS": 0.05,
        "REASON_DEBOUNCE_SECONDS": 0.0,
        "HTTP_TIMEOUT_SECONDS": 10.0,
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
        # A short poll interval: shutdown() waits for it, once per test.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.services.store.close()


def drain(services, *, timeout: float = 30.0, queues=("default", "evolution")) -> list:
    """Run due jobs until none is left (waiting out short backoffs); the jobs run."""
    from github_app.worker import Worker

    worker = Worker(services, queues, name="test-worker")
    ran = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = worker.run_once()
        if job is not None:
            ran.append(job)
            continue
        pending = [j for state in ("queued", "running") for j in services.store.jobs(state=state) if j.queue in queues]
        if not pending:
            return ran
        time.sleep(0.02)
    raise AssertionError(
        f"jobs still pending after {timeout}s: {[(j.kind, j.state, j.last_error) for j in services.store.jobs()]}"
    )


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(
    url: str,
    event: str,
    payload,
    *,
    delivery: str | None = None,
    secret: str = WEBHOOK_SECRET,
    signature: str | None = None,
    body: bytes | None = None,
):
    body = json.dumps(payload).encode() if body is None else body
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature if signature is not None else sign(secret, body),
    }
    return requests.post(url + "/webhook", data=body, headers=headers, timeout=10)


def make_change(
    hypothesis_id: str = "hyp-1",
    *,
    kernel: str = "softmax",
    content: str = "def softmax_v2(x):\n    return x\n",
    base: str | None = None,
    **extra,
) -> dict:
    """A change as the Changer will hand it over: files, with an in-toto statement whose
    subjects are the other files' sha256, naming the hypothesis, the telemetry's digest and
    (when given: :func:`based_on` sets it later) the commit it was made on."""
    files = dict(extra.pop("files", None) or {f"kernels/{kernel}_v2.py": content})
    telemetry = b'{"aina_telemetry": 1}\n'
    predicate = {
        "kernel": kernel,
        "hypothesis": {
            "id": hypothesis_id,
            "kind": "hot_unspecialised",
            "kernel": kernel,
            "domain": {"dims": {"M": [4096, 8191]}, "dtype": "float16", "arch": "sm_90"},
            "title": f"{kernel}: a hot shape no variant serves",
            "expected_gain": 100.0,
            "evidence": {},
        },
        "trigger": {
            "telemetry": {
                "path": "telemetry.jsonl",
                "sha256": hashlib.sha256(telemetry).hexdigest(),
                "bytes": len(telemetry),
            }
        },
        "base": {"commit": base, "dirty": False},
    }
    deleted = sorted(p for p, c in files.items() if c is None)
    if deleted:
        predicate["deleted"] = deleted
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": p, "digest": {"sha256": hashlib.sha256(c.encode()).hexdigest()}}
            for p, c in files.items()
            if c is not None
        ],
        "predicateType": "https://pytest-aina.dev/evolution/v1",
        "predicate": predicate,
    }
    attestation = f".aina/attestations/{hypothesis_id}.json"
    files[attestation] = json.dumps(statement, indent=1)
    change = {
        "hypothesis_id": hypothesis_id,
        "branch": f"aina/{kernel}/{hypothesis_id}",
        "title": f"{kernel}: faster for the hot shapes ({hypothesis_id})",
        "body": "## Evidence\n\n| shape | before | after |\n| --- | --- | --- |\n| 4096x50304 | 1.00 ms | 0.80 ms |\n",
        "files": files,
        "attestation": attestation,
        "labels": ["risk:low"],
        "kernel": kernel,
    }
    change.update(extra)
    return change


def based_on(change: dict, base: str) -> dict:
    """``change`` with its attestation naming ``base`` as the commit it was made on, unless
    it names one already (the PR's base, which the provenance check compares it with)."""
    files = dict(change["files"])
    statement = json.loads(files[change["attestation"]])
    if statement["predicate"]["base"]["commit"] is None:
        statement["predicate"]["base"]["commit"] = base
    files[change["attestation"]] = json.dumps(statement, indent=1)
    return dict(change, files=files)


def window(i: int = 0, *, kernel: str = "softmax", calls: int = 1000):
    """A valid telemetry window (pytest_aina's :class:`Window`)."""
    from pytest_aina.telemetry.window import Latency, Window

    start = 1_780_000_000.0 + 300 * i
    return Window(
        start=start,
        end=start + 300,
        service="chat-decode",
        kernel=kernel,
        variant="generic",
        dims=(("M", 4096), ("N", 50304)),
        dtype="float16",
        device="NVIDIA H100 80GB HBM3",
        arch="sm_90",
        calls=calls,
        time_s=calls * 1e-4,
        latency=Latency(8e-5, 1e-4, 1.1e-4, 1.3e-4, 2e-4),
        timing="cuda_event",
    )


@dataclass
class Gunicorn:
    """A running gunicorn: where it listens, and its log so far (read on a thread)."""

    proc: subprocess.Popen
    url: str
    lines: list[str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def serve_gunicorn(env: dict[str, str], *, workers: int = 1, threads: int = 4, app: str = "github_app:create_app()"):
    """The App as the docs deploy it (``-c python:github_app.web.gunicorn_config``) on a
    free loopback port, up and answering /healthz; SIGTERM on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:github_app.web.gunicorn_config", "--bind", "127.0.0.1:0"]
        + ["--workers", str(workers), "--threads", str(threads), app],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url, lines = None, []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline and (line := proc.stdout.readline()):
            lines.append(line)
            m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        assert url, "gunicorn did not start:\n" + "".join(lines)
        # keep reading its log, so that a full pipe never blocks it
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
        for _ in range(100):  # the workers boot after the arbiter listens
            try:
                if requests.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        yield Gunicorn(proc, url, lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()


def publish(app, inst, change: dict, repository: str = "octo-org/kernels") -> None:
    """Queue the App's publish job for ``change`` and run the queue dry."""
    # made on the baseline the App knows (the commit its PR will sit on, unless main moved)
    change = based_on(change, app.services.store.repository(repository)["baseline_sha"])
    app.services.store.enqueue(
        [
            JobSpec(
                "publish",
                {"repository": repository, "installation_id": inst.id, "change": change},
                key=f"publish:{repository}:{change['hypothesis_id']}",
                repository=repository,
            )
        ]
    )
    drain(app.services)


def start_worker(fake, app, key_file: Path, log: Path) -> subprocess.Popen:
    """``python -m github_app serve --worker-only`` on the App's database, configured from
    the environment as a deployment would be."""
    settings = {
        "APP_ID": APP_ID,
        "PRIVATE_KEY": key_file,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": fake.api_url,
        "DATABASE": app.services.config["DATABASE"],
        "JOB_LEASE_SECONDS": 1.5,
        "WORKER_POLL_SECONDS": 0.05,
        "HTTP_BACKOFF_SECONDS": 0.01,
        "RETRY_BASE_SECONDS": 0.05,
    }
    return start_worker_process(app_env(settings), log, threads=1, evolution_threads=0)


def kill_worker_when_held(fake, app, key_file: Path, log: Path, hold, timeout: float = 60) -> subprocess.Popen:
    """Start a worker, wait until it reaches the request ``hold`` holds, kill -9 it there
    and only then let the held request go on (GitHub did it; the worker never heard)."""
    worker = start_worker(fake, app, key_file, log)
    try:
        assert hold.reached.wait(timeout), log.read_text()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        hold.release()
        if worker.poll() is None:
            worker.kill()
    return worker


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
