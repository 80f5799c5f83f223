"""``POST /webhook``: GitHub's deliveries, checked, deduplicated and turned into jobs.

Answers (none of them 5xx for anything a client sends):

* 202 — handled: the delivery id and its jobs are stored (one transaction);
* 200 — a redelivery of a handled delivery, a ``ping``, or an event the App ignores;
* 400 — no event or delivery header, or a body that is not a JSON object;
* 401 — no ``X-Hub-Signature-256``, or one that does not match (checked in constant time);
* 408 — the body did not arrive within ``BODY_TIMEOUT_SECONDS``;
* 413 — a body over ``WEBHOOK_MAX_BYTES``;
* 503 — the store cannot take the delivery now (``Retry-After``; :mod:`.errors`).

A payload is untrusted even when signed: lone surrogates in its strings (valid JSON, not
valid Unicode) become U+FFFD before anything reads it, and the handlers read it through
:mod:`github_app.events.payload`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

from flask import Blueprint, current_app, jsonify, request

from github_app.events.payload import text
from github_app.events.router import Event
from github_app.web.limits import BadJSON, has_surrogate_escape, parse_json, read_body, scrub_surrogates

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_EVENT = re.compile(r"^[a-z_]{1,64}$")


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    # compare_digest raises TypeError for non-ASCII text: such a header is simply wrong.
    if not header or not header.isascii() or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def _refuse(status: int, reason: str, message: str):
    current_app.extensions["aina"].metrics.inc("aina_requests_rejected_total", route="webhook", reason=reason)
    return jsonify(error=message), status


def _duplicate(services, event_name: str, delivery: str):
    services.metrics.inc("aina_webhooks_total", event=event_name, outcome="duplicate")
    return jsonify(status="duplicate", delivery=delivery), 200


@bp.post("/webhook")
def webhook():
    services = current_app.extensions["aina"]
    body = read_body(services.config["WEBHOOK_MAX_BYTES"], services.config["BODY_TIMEOUT_SECONDS"])
    if body is None:
        return _refuse(413, "too_large", "payload too large")
    if not signature_ok(services.config["WEBHOOK_SECRET"], body, request.headers.get("X-Hub-Signature-256")):
        return _refuse(401, "signature", "missing or wrong X-Hub-Signature-256")
    event_name = request.headers.get("X-GitHub-Event", "")
    delivery = request.headers.get("X-GitHub-Delivery", "")
    if not _EVENT.fullmatch(event_name) or not _DELIVERY.fullmatch(delivery):
        return _refuse(400, "headers", "X-GitHub-Event and X-GitHub-Delivery are required")
    try:
        payload = parse_json(body)
    except BadJSON as exc:
        return _refuse(400, "json", str(exc))
    if not isinstance(payload, dict):
        return _refuse(400, "json", "body is not a JSON object")
    if has_surrogate_escape(body):
        payload, _ = scrub_surrogates(payload)

    action = text(payload.get("action"), 64)
    if services.store.CHECK_SEEN_FIRST and services.store.delivery_seen(delivery):
        return _duplicate(services, event_name, delivery)
    event = Event(event_name, action, payload, delivery)
    jobs = services.router.dispatch(event, services.store)
    outcome = "ignored" if not jobs else "handled"
    with current_app.extensions["aina.store_gate"].write():
        recorded = services.store.record_delivery(delivery, event_name, action, jobs or [], outcome)
    if not recorded:  # handled before (the store was not asked first), or raced in on another thread
        return _duplicate(services, event_name, delivery)
    services.metrics.inc("aina_webhooks_total", event=event_name, outcome=outcome)
    log.info("delivery %s %s.%s: %s, %d job(s)", delivery, event_name, action, outcome, len(jobs or []))
    if event_name == "ping":
        return jsonify(status="pong", delivery=delivery), 200
    return jsonify(status=outcome, delivery=delivery, jobs=len(jobs or [])), 202 if outcome == "handled" else 200
