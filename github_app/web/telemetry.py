"""``POST /telemetry``: windows from production, signed per installation.

The recorder posts to ``/telemetry?installation=ID&repository=OWNER/NAME`` (the URL is the
only thing it needs besides its secret) with ``X-Aina-Signature-256: sha256=<hex>``, the
HMAC-SHA256 of the raw body under the installation's telemetry secret. Secrets are derived
(:func:`telemetry_secret`), so the App stores none and ``aina serve
--print-telemetry-secret ID`` tells an operator the one to configure.

Answers (never a 5xx for anything a client sends):

* 202 — every window is valid and the batch is durably stored (committed, fsync'd);
* 400 — no ``installation``/``repository`` in the query; 401 — missing or wrong signature;
* 404 — the repository is not one the installation serves;
* 408 — the body did not arrive within ``BODY_TIMEOUT_SECONDS``;
* 409 — this batch (same ``batch_id``, or same body) was stored before: a replay;
* 413 — body over ``TELEMETRY_MAX_BYTES`` or more than ``TELEMETRY_MAX_WINDOWS`` windows;
* 422 — not a valid batch of the wire format; the body lists the problems;
* 503 — the store cannot take the batch now (``Retry-After``; :mod:`.errors`).

Lone surrogates in a window's strings are valid JSON but not Unicode, and no database can
store them; Python makes them of the bytes of a non-UTF-8 environment variable, so a
service name read from one would otherwise have every batch of its sender refused. They
are stored as U+FFFD (the length, so the schema's verdict, unchanged), the 202 says how
many strings were repaired (``repaired``), and ``aina_telemetry_windows_repaired_total``
counts the windows.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

from flask import Blueprint, current_app, jsonify, request

from github_app.store import JobSpec
from github_app.web.limits import has_surrogate_escape, read_body, scrub_surrogates

log = logging.getLogger(__name__)
bp = Blueprint("telemetry", __name__)

SIGNATURE_HEADER = "X-Aina-Signature-256"
_REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
# ASCII digits only: str.isdigit() and int() also take other scripts' digits ("١٢٣") and
# superscripts (int("²") raises), and an id has one spelling.
_ID = re.compile(r"[1-9][0-9]{0,18}")
# The schema's batch.batch_id (pytest_aina/schemas/telemetry-v1.json).
_BATCH_ID = re.compile(r"[0-9a-f]{8,64}")


def telemetry_secret(master_key: str, installation_id: int) -> str:
    """The telemetry secret of one installation, derived from the App's master key.

    HMAC with a label keeps it distinct from the webhook secret even when the master key is
    the webhook secret; rotating the master key rotates every installation's secret.
    """
    label = f"aina-telemetry-v1:{installation_id}".encode()
    return hmac.new(master_key.encode(), label, hashlib.sha256).hexdigest()


def master_key(config) -> str:
    return config["TELEMETRY_KEY"] or config["WEBHOOK_SECRET"]


def _refuse(status: int, reason: str, message: str, **extra):
    services = current_app.extensions["aina"]
    services.metrics.inc("aina_requests_rejected_total", route="telemetry", reason=reason)
    services.metrics.inc("aina_telemetry_batches_total", outcome=reason)
    return jsonify(error=message, **extra), status


@bp.post("/telemetry")
def telemetry():
    services = current_app.extensions["aina"]
    config = services.config
    installation = request.args.get("installation", "")
    repository = request.args.get("repository", "")
    if not _ID.fullmatch(installation) or not int(installation) < 2**63 or not _REPO.fullmatch(repository):
        return _refuse(400, "query", "expected /telemetry?installation=ID&repository=OWNER/NAME (ID in ASCII digits)")
    installation_id = int(installation)

    body = read_body(config["TELEMETRY_MAX_BYTES"], config["BODY_TIMEOUT_SECONDS"])
    if body is None:
        return _refuse(413, "too_large", f"body over {config['TELEMETRY_MAX_BYTES']} bytes")

    from pytest_aina.telemetry import validate, wire

    secret = telemetry_secret(master_key(config), installation_id)
    signature = request.headers.get(SIGNATURE_HEADER)
    # compare_digest raises TypeError for non-ASCII text: such a header is simply wrong.
    if signature is None or not signature.isascii() or not wire.verify(secret, body, signature):
        return _refuse(401, "signature", f"missing or wrong {SIGNATURE_HEADER}")

    repo = services.store.repository(repository)
    if repo is None or not repo["active"] or repo["installation_id"] != installation_id:
        return _refuse(404, "repository", f"{repository} is not a repository of installation {installation_id}")

    try:
        windows, issues = validate.read_batch(body)
    except validate.TelemetryError as exc:
        return _refuse(422, "invalid", str(exc))
    except RecursionError:
        return _refuse(422, "invalid", "body is not JSON we accept: nested too deeply")
    if issues:
        return _refuse(
            422,
            "invalid",
            f"{len(issues)} problem(s) in the batch; nothing stored",
            problems=[str(i) for i in issues[:50]],
        )
    if len(windows) > config["TELEMETRY_MAX_WINDOWS"]:
        return _refuse(413, "too_many", f"more than {config['TELEMETRY_MAX_WINDOWS']} windows")

    batch_id = validate.parse_json(body).get("batch_id")
    if batch_id is not None and not (isinstance(batch_id, str) and _BATCH_ID.fullmatch(batch_id)):
        return _refuse(422, "invalid", "batch_id must be 8 to 64 lower-case hex digits")
    digest = "batch:" + batch_id if batch_id else "sha256:" + hashlib.sha256(body).hexdigest()
    job = (
        JobSpec(
            "reason",
            {"repository": repository, "installation_id": installation_id},
            key=f"reason:{repository}",
            repository=repository,
            delay=config["REASON_DEBOUNCE_SECONDS"],
        )
        if windows
        else None
    )
    rows = [w.as_dict() for w in windows]
    repaired = 0
    if has_surrogate_escape(body):
        for i, row in enumerate(rows):
            rows[i], changed = scrub_surrogates(row)
            if changed:
                repaired += changed
                services.metrics.inc("aina_telemetry_windows_repaired_total")
        if repaired:
            log.warning(
                "telemetry for %s: %d string(s) with lone surrogates stored as U+FFFD "
                "(a sender's text from bytes that are not UTF-8)",
                repository,
                repaired,
            )
    with current_app.extensions["aina.store_gate"].write():
        stored = services.store.store_telemetry(digest, repository, installation_id, rows, job)
    if stored is None:
        return _refuse(409, "replay", "this batch was stored before")
    services.metrics.inc("aina_telemetry_batches_total", outcome="stored")
    services.metrics.inc("aina_telemetry_windows_total", stored)
    extra = {"repaired": repaired} if repaired else {}
    return jsonify(stored=stored, received=len(windows), **extra), 202
