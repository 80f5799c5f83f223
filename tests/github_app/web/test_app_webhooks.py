"""POST /webhook over real HTTP: signatures, redeliveries, limits, unknown events."""

from __future__ import annotations

import json
import uuid

import requests
from app_helpers import WEBHOOK_SECRET, drain, post_webhook, sign


def _stored(app) -> tuple[int, int]:
    store = app.services.store
    deliveries = store._con().execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    return deliveries, len(store.jobs())


def test_a_signed_event_is_acknowledged_and_queued(fake, app, installed):
    repo, inst = installed
    payload = fake.installation_payload(inst, "created")
    r = post_webhook(app.url, "installation", payload)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "handled"
    assert [j.kind for j in app.services.store.jobs()] == ["installation"]


def test_forged_and_unsigned_requests_are_refused_and_nothing_is_stored(fake, app, installed):
    repo, inst = installed
    payload = fake.installation_payload(inst, "created")
    body = json.dumps(payload).encode()
    wrong_key = post_webhook(app.url, "installation", payload, secret="not-the-secret")
    missing = post_webhook(app.url, "installation", payload, signature="")
    sha1_style = post_webhook(
        app.url, "installation", payload, signature=sign(WEBHOOK_SECRET, body).replace("sha256=", "sha1=")
    )
    tampered = post_webhook(
        app.url,
        "installation",
        payload,
        signature=sign(WEBHOOK_SECRET, body),
        body=body.replace(b'"created"', b'"deleted"'),
    )
    assert [r.status_code for r in (wrong_key, missing, sha1_style, tampered)] == [401] * 4
    assert _stored(app) == (0, 0)


def test_a_redelivery_is_acknowledged_and_not_handled_again(fake, app, installed):
    repo, inst = installed
    payload = fake.installation_payload(inst, "created")
    guid = str(uuid.uuid4())
    first = post_webhook(app.url, "installation", payload, delivery=guid)
    again = post_webhook(app.url, "installation", payload, delivery=guid)
    assert first.status_code == 202
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert _stored(app) == (1, 1)


def test_malformed_requests_get_4xx_never_5xx(app):
    cases = {
        "not json": b"{not json",
        "a list": b"[1, 2]",
        "bad utf-8": b'{"a": "\xff\xfe"}',
        "empty": b"",
    }
    for name, body in cases.items():
        r = post_webhook(app.url, "push", None, body=body)
        assert r.status_code == 400, (name, r.status_code, r.text)
    no_event = requests.post(
        app.url + "/webhook",
        data=b"{}",
        timeout=10,
        headers={"X-Hub-Signature-256": sign(WEBHOOK_SECRET, b"{}"), "X-GitHub-Delivery": "abc"},
    )
    assert no_event.status_code == 400
    wrong_method = requests.get(app.url + "/webhook", timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.headers["Content-Type"].startswith("application/json")
    assert _stored(app) == (0, 0)


def test_oversized_bodies_are_refused_before_they_are_read(make_app):
    app = make_app(WEBHOOK_MAX_BYTES=1024)
    body = json.dumps({"action": "created", "padding": "x" * 2000}).encode()
    r = post_webhook(app.url, "installation", None, body=body)
    assert r.status_code == 413
    # Chunked, with no Content-Length to refuse it by: the limit holds while reading.
    chunked = requests.post(
        app.url + "/webhook",
        data=iter([body[:600], body[600:]]),
        timeout=10,
        headers={
            "X-GitHub-Event": "installation",
            "X-GitHub-Delivery": "x1",
            "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body),
        },
    )
    assert chunked.status_code == 413
    assert _stored(app) == (0, 0)


def test_unknown_events_and_actions_are_acknowledged_and_ignored(fake, app, installed):
    repo, inst = installed
    r1 = post_webhook(app.url, "star", {"action": "created", "installation": {"id": inst.id}})
    r2 = post_webhook(app.url, "pull_request", {"action": "opened", "installation": {"id": 1}})
    ping = post_webhook(app.url, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert (r1.status_code, r1.json()["status"]) == (200, "ignored")
    assert (r2.status_code, r2.json()["status"]) == (200, "ignored")
    assert (ping.status_code, ping.json()["status"]) == (200, "pong")
    assert app.services.store.jobs() == []


def test_metrics_count_what_happened(fake, app, installed):
    repo, inst = installed
    post_webhook(app.url, "installation", fake.installation_payload(inst, "created"))
    post_webhook(app.url, "installation", {}, secret="forged")
    drain(app.services)
    text = requests.get(app.url + "/metrics", timeout=10).text
    assert 'aina_webhooks_total{event="installation",outcome="handled"} 1' in text
    assert 'aina_requests_rejected_total{reason="signature",route="webhook"} 1' in text
    assert 'aina_jobs{kind="installation",state="done"} 1' in text
    assert "# TYPE aina_jobs gauge" in text
    assert requests.get(app.url + "/healthz", timeout=10).json() == {"status": "ok"}
