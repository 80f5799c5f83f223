"""The telemetry wire format, version 1: how windows travel from production to the App.

Windows
    One JSON object per window, described by the published JSON Schema
    ``pytest_aina/schemas/telemetry-v1.json`` (``aina telemetry schema`` prints it)::

        {"aina_telemetry": 1,
         "start": "2025-06-02T10:05:00Z", "end": "2025-06-02T10:10:00Z",
         "service": "chat-decode", "instance": "gpu-node-17/3112",
         "kernel": "rms_norm", "variant": "generic",
         "dims": {"M": 64, "N": 4096}, "dtype": "bfloat16",
         "device": {"name": "NVIDIA H100 80GB HBM3", "arch": "sm_90"},
         "calls": 91520, "time_s": 0.412,
         "latency_s": {"min": 4.1e-06, "p50": 4.4e-06, "p90": 4.9e-06, "p99": 6.2e-06, "max": 2.1e-05},
         "timing": "cuda_event",
         "versions": {"aina": "0.1.0", "torch": "2.4.1", "triton": "3.0.0"}}

    ``dims`` are the kernel spec's named dims for the calls; ``time_s`` is the sum of the
    calls' latencies; ``timing`` says how a latency was taken: ``cuda_event`` (GPU time,
    between CUDA events around the launch) or ``wall`` (host time around the call, which
    for an asynchronous GPU launch is launch time, not kernel time).

Offline form
    A JSONL file: one window per line, nothing else. ``aina telemetry check FILE`` names
    the line and the key of every error.

Batches over HTTP
    The recorder POSTs batches to the App::

        POST <url>
        Content-Type: application/json
        X-Aina-Signature-256: sha256=<hex>

        {"aina_telemetry": 1, "batch_id": "<32 hex>", "windows": [<window>, ...]}

    The signature is HMAC-SHA256, keyed with the shared secret (UTF-8), over the raw
    request body exactly as sent; ``<hex>`` is the lower-case hex digest, as in GitHub's
    ``X-Hub-Signature-256``. A receiver computes the same digest over the bytes it read,
    compares with :func:`hmac.compare_digest` (:func:`verify` does both) and rejects the
    batch (401) on a mismatch, before parsing JSON. ``batch_id`` is random per batch so a
    receiver can ignore a batch it has already stored. The recorder never retries: a
    batch that is not answered 2xx within the timeout is dropped and counted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from pytest_aina.telemetry.window import FORMAT_VERSION, Window

SIGNATURE_HEADER = "X-Aina-Signature-256"
SIGNATURE_PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The value of the signature header for ``body``."""
    return SIGNATURE_PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header)


def encode_batch(windows: list[Window], batch_id: str | None = None) -> bytes:
    """The request body for a batch: compact JSON, UTF-8."""
    doc = {
        "aina_telemetry": FORMAT_VERSION,
        "batch_id": batch_id or uuid.uuid4().hex,
        "windows": [w.as_dict() for w in windows],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_line(window: Window) -> str:
    """One JSONL line (without the newline)."""
    return json.dumps(window.as_dict(), separators=(",", ":"))
