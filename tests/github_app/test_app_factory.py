"""The app factory, its configuration, ``aina serve``, and what the webhook path imports."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from github_app import ConfigError, create_app
from github_app.cli import register


def base_config(app_key, tmp_path, **extra):
    return {
        "APP_ID": 7,
        "PRIVATE_KEY": app_key[0],
        "WEBHOOK_SECRET": "s",
        "DATABASE": str(tmp_path / "db.sqlite3"),
        **extra,
    }


def test_the_factory_builds_an_app_from_a_mapping(app_key, tmp_path):
    app = create_app(base_config(app_key, tmp_path, WORKER_THREADS="3"))
    services = app.extensions["aina"]
    assert services.config["APP_ID"] == 7 and services.config["WORKER_THREADS"] == 3
    assert services.config["GITHUB_API_URL"] == "https://api.github.com"
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/metrics").headers["Content-Type"].startswith("text/plain; version=0.0.4")
    services.store.close()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"APP_ID": None}, "APP_ID (environment variable AINA_APP_ID)"),
        ({"WEBHOOK_SECRET": ""}, "AINA_WEBHOOK_SECRET"),
        ({"APP_ID": "twelve"}, "numeric id"),
        ({"PRIVATE_KEY": "/no/such/key.pem"}, "neither PEM text nor a readable file"),
        ({"GITHUB_API_URL": "ftp://example.com"}, "http(s) URL"),
        ({"JOB_LEASE_SECONDS": "soon"}, "JOB_LEASE_SECONDS"),
        ({"WORKER_THREADS": 0}, "WORKER_THREADS"),
        ({"WORKER_NICE": 20}, "WORKER_NICE.*0 to 19"),
        ({"WORKER_NICE": -1}, "WORKER_NICE"),
        ({"WORKER_NICE": "low"}, "WORKER_NICE.*whole number"),
        ({"WORKER_NICE": 7.5}, "WORKER_NICE.*whole number"),
        ({"DATABASE": "postgres://db/aina"}, "only SQLite paths"),
    ],
)
def test_bad_configuration_is_refused_naming_the_key(app_key, tmp_path, change, message):
    config = {**base_config(app_key, tmp_path), **change}
    with pytest.raises((ConfigError, ValueError), match=message.replace("(", r"\(").replace(")", r"\)")):
        create_app(config)


def test_the_private_key_may_be_a_path(app_key, tmp_path):
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    app = create_app(base_config(app_key, tmp_path, PRIVATE_KEY=str(key_file)))
    assert app.extensions["aina"].config["PRIVATE_KEY"] == app_key[0]
    app.extensions["aina"].store.close()


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def test_configuration_from_aina_environment_variables(app_key, tmp_path):
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    proc = run_python(
        """
        import json
        from github_app import create_app
        c = create_app().extensions["aina"].config
        print(json.dumps([c["APP_ID"], c["WEBHOOK_SECRET"], c["GITHUB_API_URL"],
                          c["HTTP_RETRIES"], c["DATABASE"]]))
    """,
        {
            "AINA_APP_ID": "99",
            "AINA_PRIVATE_KEY": str(key_file),
            "AINA_WEBHOOK_SECRET": "12345",
            "AINA_HTTP_RETRIES": "2",
            "AINA_GITHUB_API_URL": "https://ghe.example.com/api/v3/",
            "AINA_DATABASE": str(tmp_path / "env.sqlite3"),
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [99, "12345", "https://ghe.example.com/api/v3", 2, str(tmp_path / "env.sqlite3")]


def test_the_webhook_path_imports_no_torch_triton_or_litellm(app_key, tmp_path):
    """Import the App, serve a signed webhook and a telemetry batch over HTTP, then look at
    what got imported, in a fresh interpreter."""
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    proc = run_python(
        """
        import hashlib, hmac, json, sys, threading
        import requests
        from werkzeug.serving import make_server
        from github_app import create_app
        from github_app.web.telemetry import telemetry_secret

        app = create_app()
        store = app.extensions["aina"].store
        store.upsert_installation(5, "octo", True)
        store.upsert_repository("octo/k", 5)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        body = json.dumps({"action": "closed", "installation": {"id": 5},
                           "repository": {"full_name": "octo/k"},
                           "pull_request": {"number": 1, "head": {"ref": "aina/x"},
                                            "merged": True}}).encode()
        sig = "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
        r = requests.post(url + "/webhook", data=body, headers={
            "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d1",
            "X-Hub-Signature-256": sig})
        batch = json.dumps({"aina_telemetry": 1, "windows": []}).encode()
        secret = telemetry_secret("s", 5).encode()
        t = requests.post(url + "/telemetry?installation=5&repository=octo/k", data=batch,
                          headers={"X-Aina-Signature-256": "sha256=" + hmac.new(
                              secret, batch, hashlib.sha256).hexdigest()})
        server.shutdown()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "triton", "litellm"))
        print(json.dumps([r.status_code, t.status_code, heavy]))
    """,
        {
            "AINA_APP_ID": "1",
            "AINA_PRIVATE_KEY": str(key_file),
            "AINA_WEBHOOK_SECRET": "s",
            "AINA_DATABASE": str(tmp_path / "w.sqlite3"),
        },
    )
    assert proc.returncode == 0, proc.stderr
    webhook, telemetry, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (webhook, telemetry) == (202, 202)
    assert heavy == []


def parse(argv):
    parser = argparse.ArgumentParser(prog="aina")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    return parser.parse_args(argv)


def test_register_adds_serve_to_the_aina_cli():
    args = parse(["serve", "--port", "9000", "--worker-only", "--threads", "2"])
    assert (args.port, args.worker_only, args.threads) == (9000, True, 2)
    assert callable(args.run)
    with pytest.raises(SystemExit):
        parse(["serve", "--port", "99999"])
    with pytest.raises(SystemExit):
        parse(["serve", "--worker-only", "--no-worker"])


def test_parsing_serve_imports_no_flask_github3_pyjwt_or_core():
    """``aina --help`` registers ``serve``: what the App needs loads when it runs."""
    proc = run_python(
        """
        import contextlib, io, json, sys
        from github_app.__main__ import main
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
            main(["serve", "--help"])
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {
            "flask", "werkzeug", "github3", "jwt", "requests", "pytest_aina", "torch", "triton",
            "litellm"})
        print(json.dumps(["--worker-only" in out.getvalue(), heavy]))
    """,
        {},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [True, []]


def test_serve_prints_an_installations_telemetry_secret(app_key, tmp_path):
    from github_app.web.telemetry import telemetry_secret

    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    env = {
        **clean,
        "AINA_APP_ID": "1",
        "AINA_PRIVATE_KEY": str(key_file),
        "AINA_WEBHOOK_SECRET": "s",
        "AINA_DATABASE": str(tmp_path / "x.sqlite3"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "github_app", "serve", "--print-telemetry-secret", "42"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == telemetry_secret("s", 42)
    missing = subprocess.run(
        [sys.executable, "-m", "github_app", "serve"], env=clean, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and "AINA_APP_ID" in missing.stderr


def test_serve_answers_http_and_stops_on_sigterm(app_key, tmp_path):
    import signal
    import time

    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    env = {
        **clean,
        "AINA_APP_ID": "1",
        "AINA_PRIVATE_KEY": str(key_file),
        "AINA_WEBHOOK_SECRET": "s",
        "AINA_DATABASE": str(tmp_path / "x.sqlite3"),
        "AINA_GITHUB_API_URL": "http://127.0.0.1:9/api/v3",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "github_app", "serve", "--port", "0", "--no-worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split("listening on ")[1].split()[0]
        deadline = time.monotonic() + 10
        while True:
            try:
                assert requests.get(url + "/healthz", timeout=5).json()["status"] == "ok"
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_gunicorn_serves_the_factory_as_the_docs_say(app_key, tmp_path):
    import re
    import signal
    import time

    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    env = {
        **clean,
        "AINA_APP_ID": "1",
        "AINA_PRIVATE_KEY": str(key_file),
        "AINA_WEBHOOK_SECRET": "s",
        "AINA_DATABASE": str(tmp_path / "g.sqlite3"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--threads",
            "4",
            "github_app:create_app()",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
            url = m.group(1) if m else None
        assert url, "gunicorn did not start"
        body = b'{"zen": "Design for failure."}'
        import hashlib
        import hmac

        sig = "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
        r = None
        for _ in range(50):  # both worker processes answer once they have booted
            try:
                r = requests.post(
                    url + "/webhook",
                    data=body,
                    timeout=5,
                    headers={"X-GitHub-Event": "ping", "X-GitHub-Delivery": f"d-{_}", "X-Hub-Signature-256": sig},
                )
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert r is not None and r.status_code == 200 and r.json()["status"] == "pong"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_the_manifest_subscribes_to_every_event_the_app_handles():
    import yaml

    from github_app.events import default_router

    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "app.yml").read_text())
    router = default_router()
    handled = {event for event, _ in router._handlers}
    # GitHub sends installation events to every App, subscribed or not.
    assert handled - {"installation", "installation_repositories"} == set(manifest["default_events"])
    assert manifest["default_permissions"] == {
        "contents": "write",
        "pull_requests": "write",
        "issues": "write",
        "checks": "write",
        "actions": "read",  # the gate's verdict artifact (merging)
        "statuses": "write",  # the aina / soak status (merging)
        "metadata": "read",
    }


def _niceness_of_every_thread(pid: int) -> set[int]:
    # /proc/PID/task/TID/stat: field 19 is the nice value; the name (field 2) may hold
    # spaces, so count from its closing parenthesis.
    out = set()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        out.add(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads niceness from Linux's /proc")
def test_the_worker_only_process_lowers_its_cpu_priority(app_key, tmp_path):
    """``serve --worker-only`` runs at AINA_WORKER_NICE below the priority it was started
    with, every thread of it (the job threads start after the nice): the HTTP workers'
    acknowledgements get the CPU first."""
    import time

    from worker_process import app_env, start_worker_process

    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    settings = {"APP_ID": 1, "PRIVATE_KEY": key_file, "WEBHOOK_SECRET": "s" * 16, "WORKER_NICE": 7}
    settings.update(DATABASE=tmp_path / "db.sqlite3", GITHUB_API_URL="http://127.0.0.1:9")
    base = os.getpriority(os.PRIO_PROCESS, 0)
    log = tmp_path / "worker.log"
    proc = start_worker_process(app_env(settings), log, threads=2, evolution_threads=1)
    try:
        deadline = time.monotonic() + 60
        while "worker thread(s)" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "3 worker thread(s) at niceness +7" in log.read_text()
        assert _niceness_of_every_thread(proc.pid) == {min(19, base + 7)}
    finally:
        proc.kill()
        proc.wait()


def test_serve_takes_the_niceness_from_the_flag_over_the_setting(app_key, tmp_path, monkeypatch):
    from github_app import serve

    asked = []

    class Lowered(Exception):  # stops serve.run where the priority is lowered
        pass

    def lower(n):
        asked.append(n)
        raise Lowered

    monkeypatch.setattr(serve, "lower_priority", lower)
    for key in [k for k in os.environ if k.startswith("AINA_")]:
        monkeypatch.delenv(key)
    for key, value in base_config(app_key, tmp_path, WEBHOOK_SECRET="s" * 16, WORKER_NICE=4).items():
        monkeypatch.setenv(f"AINA_{key}", str(value))
    for argv in (["--worker-only"], ["--worker-only", "--nice", "0"], ["--worker-only", "--nice", "19"]):
        with pytest.raises(Lowered):
            serve.run(parse(["serve", *argv]))
    assert asked == [4, 0, 19]
    # Unset: the store's choice; SQLite's worker holds the write lock the acknowledgements
    # wait for, so it keeps its priority (PostgreSQL's would be lowered by 10).
    monkeypatch.delenv("AINA_WORKER_NICE")
    with pytest.raises(Lowered):
        serve.run(parse(["serve", "--worker-only"]))
    assert asked[-1] == 0


def test_serve_refuses_a_niceness_out_of_range_or_without_worker_only(app_key, tmp_path, monkeypatch, capsys):
    from github_app import serve

    for key in [k for k in os.environ if k.startswith("AINA_")]:
        monkeypatch.delenv(key)
    for key, value in base_config(app_key, tmp_path, WEBHOOK_SECRET="s" * 16).items():
        monkeypatch.setenv(f"AINA_{key}", str(value))
    assert serve.run(parse(["serve", "--worker-only", "--nice", "20"])) == 2
    assert "--nice must be 0 to 19, got 20" in capsys.readouterr().err
    assert serve.run(parse(["serve", "--nice", "5"])) == 2
    assert "--nice is for --worker-only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["serve", "--worker-only", "--nice", "-1"])
