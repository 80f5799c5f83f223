"""``POST /webhook``: GitHub's deliveries, checked, deduplicated and turned into jobs.

Answers (none of them 5xx for anything a client sends):

* 202 — handled: the delivery id and its jobs are stored (one transaction);
* 200 — a redelivery of a handled delivery, a ``ping``, or an event the App ignores;
* 400 — no event or delivery header, or a body that is not a JSON object;
* 401 — no ``X-Hub-Signature-256``, or one that does not match (checked in constant time);
* 413 — a body over ``WEBHOOK_MAX_BYTES``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re

from flask import Blueprint, current_app, jsonify, request

from github_app.events.payload import text
from github_app.events.router import Event
from github_app.web.limits import read_body

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_EVENT = re.compile(r"^[a-z_]{1,64}$")


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def _refuse(status: int, reason: str, message: str):
    current_app.extensions["aina"].metrics.inc("aina_requests_rejected_total",
                                               route="webhook", reason=reason)
    return jsonify(error=message), status


@bp.post("/webhook")
def webhook():
    services = current_app.extensions["aina"]
    body = read_body(services.config["WEBHOOK_MAX_BYTES"])
    if body is None:
        return _refuse(413, "too_large", "payload too large")
    if not signature_ok(services.config["WEBHOOK_SECRET"], body,
                        request.headers.get("X-Hub-Signature-256")):
        return _refuse(401, "signature", "missing or wrong X-Hub-Signature-256")
    event_name = request.headers.get("X-GitHub-Event", "")
    delivery = request.headers.get("X-GitHub-Delivery", "")
    if not _EVENT.match(event_name) or not _DELIVERY.match(delivery):
        return _refuse(400, "headers", "X-GitHub-Event and X-GitHub-Delivery are required")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _refuse(400, "json", "body is not JSON")
    if not isinstance(payload, dict):
        return _refuse(400, "json", "body is not a JSON object")

    action = text(payload.get("action"), 64)
    if services.store.delivery_seen(delivery):
        services.metrics.inc("aina_webhooks_total", event=event_name, outcome="duplicate")
        return jsonify(status="duplicate", delivery=delivery), 200
    event = Event(event_name, action, payload, delivery)
    jobs = services.router.dispatch(event, services.store)
    outcome = "ignored" if not jobs else "handled"
    if not services.store.record_delivery(delivery, event_name, action, jobs or [], outcome):
        outcome = "duplicate"  # the same delivery raced in on another thread
    services.metrics.inc("aina_webhooks_total", event=event_name, outcome=outcome)
    log.info("delivery %s %s.%s: %s, %d job(s)", delivery, event_name, action, outcome,
             len(jobs or []))
    if event_name == "ping":
        return jsonify(status="pong", delivery=delivery), 200
    return jsonify(status=outcome, delivery=delivery, jobs=len(jobs or [])), \
        202 if outcome == "handled" else 200
