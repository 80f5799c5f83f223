"""POST /telemetry over real HTTP: signed per installation, validated, durable, 4xx else."""

from __future__ import annotations

import json
import subprocess
import sys

import requests
from app_helpers import WEBHOOK_SECRET, drain, sign, window

from github_app.web.telemetry import telemetry_secret
from pytest_aina.telemetry.wire import encode_batch


def post(
    app,
    inst_id: int,
    body: bytes,
    *,
    repository: str = "octo-org/kernels",
    secret: str | None = None,
    signature: str | None = None,
):
    secret = telemetry_secret(WEBHOOK_SECRET, inst_id) if secret is None else secret
    return requests.post(
        f"{app.url}/telemetry",
        params={"installation": inst_id, "repository": repository},
        data=body,
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "X-Aina-Signature-256": signature if signature is not None else sign(secret, body),
        },
    )


def stored_windows(app) -> int:
    return app.services.store.telemetry_summary("octo-org/kernels")["windows"]


def test_a_signed_valid_batch_is_stored_durably_then_answered_202(app, onboarded):
    repo, inst = onboarded
    body = encode_batch([window(i) for i in range(5)])
    r = post(app, inst.id, body)
    assert r.status_code == 202, r.text
    assert r.json() == {"stored": 5, "received": 5}
    # Durable: another process, with its own connection, reads the committed rows.
    db = app.services.config["DATABASE"]
    count = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
            ".execute('SELECT COUNT(*) FROM telemetry_windows').fetchone()[0])",
            db,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert count == "5"
    reason = app.services.store.jobs(kind="reason")
    assert len(reason) == 1 and reason[0].payload["repository"] == "octo-org/kernels"


def test_windows_sent_again_in_a_new_batch_are_stored_once(app, onboarded):
    repo, inst = onboarded
    assert post(app, inst.id, encode_batch([window(0), window(1)])).status_code == 202
    r = post(app, inst.id, encode_batch([window(1), window(2)]))
    assert r.status_code == 202 and r.json() == {"stored": 1, "received": 2}
    assert stored_windows(app) == 3


def test_forged_replayed_oversized_and_malformed_batches_get_4xx_and_store_nothing(make_app, fake, installed):
    app = make_app(TELEMETRY_MAX_BYTES=4096)
    repo, inst = installed
    fake.deliver_event("installation", fake.installation_payload(inst, "created"))
    drain(app.services)
    other_installation_secret = telemetry_secret(WEBHOOK_SECRET, inst.id + 1)
    good = encode_batch([window(0)])
    bad_window = json.loads(good)
    bad_window["windows"][0]["calls"] = 0
    bad_window["windows"][0]["latency_s"]["p50"] = 1.0  # above p90: quantiles out of order
    cases = {
        "forged: the webhook secret itself": (post(app, inst.id, good, secret=WEBHOOK_SECRET), 401),
        "forged: another installation's secret": (post(app, inst.id, good, secret=other_installation_secret), 401),
        "unsigned": (post(app, inst.id, good, signature=""), 401),
        "oversized": (post(app, inst.id, encode_batch([window(i) for i in range(20)])), 413),
        "not JSON": (post(app, inst.id, b"{nope"), 422),
        "NaN is not JSON": (post(app, inst.id, good.replace(b'"calls":1000', b'"calls":NaN')), 422),
        "not a batch": (post(app, inst.id, b'{"windows": []}'), 422),
        "invalid window": (post(app, inst.id, json.dumps(bad_window).encode()), 422),
        "no query": (requests.post(app.url + "/telemetry", data=good, timeout=10), 400),
        "repository not installed": (post(app, inst.id, good, repository="octo-org/other"), 404),
    }
    for name, (response, status) in cases.items():
        assert response.status_code == status, (name, response.status_code, response.text)
    assert "calls" in cases["invalid window"][0].json()["problems"][0]
    assert stored_windows(app) == 0
    assert app.services.store.jobs(kind="reason") == []

    first = post(app, inst.id, good)
    replay = post(app, inst.id, good)
    assert (first.status_code, replay.status_code) == (202, 409)
    assert stored_windows(app) == 1


def test_chunked_body_over_the_limit_is_refused(make_app, fake, installed):
    app = make_app(TELEMETRY_MAX_BYTES=2048)
    repo, inst = installed
    body = encode_batch([window(i) for i in range(10)])
    secret = telemetry_secret(WEBHOOK_SECRET, inst.id)
    r = requests.post(
        f"{app.url}/telemetry?installation={inst.id}&repository=octo-org/kernels",
        data=iter([body[:1000], body[1000:]]),
        timeout=10,
        headers={"X-Aina-Signature-256": sign(secret, body)},
    )
    assert r.status_code == 413


def test_a_separate_telemetry_key_gives_other_secrets(make_app, fake, installed):
    app = make_app(TELEMETRY_KEY="a-telemetry-master-key")
    repo, inst = installed
    fake.deliver_event("installation", fake.installation_payload(inst, "created"))
    drain(app.services)
    body = encode_batch([window(0)])
    assert post(app, inst.id, body).status_code == 401  # derived from the webhook secret
    secret = telemetry_secret("a-telemetry-master-key", inst.id)
    assert post(app, inst.id, body, secret=secret).status_code == 202


def test_telemetry_secret_is_per_installation_and_not_the_webhook_secret():
    a, b = telemetry_secret("k", 1), telemetry_secret("k", 2)
    assert a != b and len(a) == 64 and a != "k"
    assert telemetry_secret("k", 1) == a
