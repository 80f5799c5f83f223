"""The App's configuration: defaults, then ``AINA_*`` environment variables, then a mapping.

Every key is checked once, when the app is created, so a bad value stops the App at start-up
with a message naming the key (and the environment variable that sets it) instead of failing
on the first webhook.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_aina.changer.settings import EvolutionSettings, SettingsError

ENV_PREFIX = "AINA"
log = logging.getLogger(__name__)

#: Keys a deployment must set; there is no safe default for any of them.
REQUIRED = ("APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET")

DEFAULTS: dict[str, Any] = {
    # GitHub.com's REST root; a GitHub Enterprise Server (or the test fake) is
    # ``https://HOST/api/v3``.
    "GITHUB_API_URL": "https://api.github.com",
    # State and the job queue: a SQLite file (one machine; empty means
    # ``<instance>/aina.sqlite3``), or ``postgresql://USER:PASSWORD@HOST:PORT/DBNAME`` for
    # App processes on several machines (github_app.store.open_store reads it).
    "DATABASE": "",
    # Master key for per-installation telemetry secrets; empty derives them from
    # WEBHOOK_SECRET (with a distinct label, so one never equals the other).
    "TELEMETRY_KEY": "",
    # GitHub caps webhook payloads at 25 MB; telemetry batches are far smaller.
    "WEBHOOK_MAX_BYTES": 25 * 1024 * 1024,
    "TELEMETRY_MAX_BYTES": 4 * 1024 * 1024,
    "TELEMETRY_MAX_WINDOWS": 20_000,
    "TELEMETRY_RETENTION_DAYS": 14,
    # Deadlines. GitHub gives up on a delivery after 10 s: a body must arrive within
    # BODY_TIMEOUT_SECONDS (a stalled client gets a 408, not a thread), /readyz waits this
    # long for its probe write, and the job worker writes a heartbeat this often (/readyz
    # wants one within three beats).
    "BODY_TIMEOUT_SECONDS": 5.0,
    "READY_TIMEOUT_SECONDS": 2.0,
    "WORKER_HEARTBEAT_SECONDS": 5.0,
    # While a write to the store has waited this long, other requests' writes are refused
    # at once (503, Retry-After) instead of queueing behind it (github_app/web/store_gate.py).
    "STORE_STUCK_SECONDS": 2.0,
    # Jobs: threads in `aina serve`, lease before a silent worker's job is taken over,
    # attempts before a job is marked failed, backoff between attempts.
    "WORKER_THREADS": 1,
    "EVOLUTION_THREADS": 1,
    "JOB_LEASE_SECONDS": 60.0,
    "JOB_MAX_ATTEMPTS": 8,
    "RETRY_BASE_SECONDS": 5.0,
    "RETRY_MAX_SECONDS": 1800.0,
    "WORKER_POLL_SECONDS": 0.5,
    # `aina serve --worker-only` lowers its own CPU priority by this much (os.nice; 0 keeps
    # it): on a machine it shares with the HTTP workers, the acknowledgements GitHub times
    # come first and the jobs, which nobody waits on, take the CPU left over. Empty: the
    # store's choice (Store.WORKER_NICE: 10 on PostgreSQL, 0 on SQLite, whose worker holds
    # the write lock the acknowledgements wait for).
    "WORKER_NICE": "",
    # GitHub calls: retries inside one call, and the longest wait a call may sleep for
    # (a longer Retry-After or rate-limit reset reschedules the job instead).
    "HTTP_RETRIES": 5,
    "HTTP_MAX_WAIT_SECONDS": 60.0,
    "HTTP_BACKOFF_SECONDS": 0.5,
    "HTTP_TIMEOUT_SECONDS": 30.0,
    # Installation tokens live an hour; renew this long before they expire.
    "TOKEN_RENEW_MARGIN_SECONDS": 300.0,
    # Schedules. Telemetry arriving within the debounce shares one Reasoner run.
    "REASON_INTERVAL_SECONDS": 3600.0,
    "REASON_DEBOUNCE_SECONDS": 30.0,
    "REDELIVERY_INTERVAL_SECONDS": 600.0,
    "REDELIVERY_LOOKBACK_SECONDS": 3 * 24 * 3600.0,
    # Where jobs unpack repositories; empty means a folder under the system's temp folder.
    "WORK_DIR": "",
    # Settings of the evolution loop (pytest_aina.changer.settings.EvolutionSettings: proposers,
    # proposer_config, budget, seed, workers, device, telemetry, executor, ray_address), JSON in
    # AINA_EVOLUTION; parsed
    # by check() into that type. Nothing else of the App's configuration (its key, its
    # secrets) reaches the loop.
    "EVOLUTION": {},
}

TEXT_KEYS = ("PRIVATE_KEY", "WEBHOOK_SECRET", "TELEMETRY_KEY", "GITHUB_API_URL", "DATABASE", "WORK_DIR")
_INTS = (
    "WEBHOOK_MAX_BYTES",
    "TELEMETRY_MAX_BYTES",
    "TELEMETRY_MAX_WINDOWS",
    "TELEMETRY_RETENTION_DAYS",
    "WORKER_THREADS",
    "EVOLUTION_THREADS",
    "JOB_MAX_ATTEMPTS",
    "HTTP_RETRIES",
)
_FLOATS = (
    "JOB_LEASE_SECONDS",
    "RETRY_BASE_SECONDS",
    "RETRY_MAX_SECONDS",
    "WORKER_POLL_SECONDS",
    "HTTP_MAX_WAIT_SECONDS",
    "HTTP_BACKOFF_SECONDS",
    "HTTP_TIMEOUT_SECONDS",
    "TOKEN_RENEW_MARGIN_SECONDS",
    "REASON_INTERVAL_SECONDS",
    "REASON_DEBOUNCE_SECONDS",
    "REDELIVERY_INTERVAL_SECONDS",
    "REDELIVERY_LOOKBACK_SECONDS",
    "BODY_TIMEOUT_SECONDS",
    "READY_TIMEOUT_SECONDS",
    "WORKER_HEARTBEAT_SECONDS",
    "STORE_STUCK_SECONDS",
)


#: The largest niceness Unix knows: the lowest CPU priority.
MAX_NICE = 19


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


def where(key: str) -> str:
    """How a person sets ``key``: the environment variable, for the error messages."""
    return f"{key} (environment variable {ENV_PREFIX}_{key})"


def check(config: dict[str, Any]) -> None:
    """Validate and normalise ``config`` in place, raising :class:`ConfigError`."""
    missing = [k for k in REQUIRED if config.get(k) in (None, "")]
    if missing:
        raise ConfigError("missing configuration: " + ", ".join(where(k) for k in missing))
    try:
        config["APP_ID"] = int(config["APP_ID"])
    except (TypeError, ValueError):
        raise ConfigError(f"{where('APP_ID')} must be the App's numeric id, got {config['APP_ID']!r}") from None
    if config["APP_ID"] <= 0:
        raise ConfigError(f"{where('APP_ID')} must be positive, got {config['APP_ID']}")
    config["PRIVATE_KEY"] = read_private_key(config["PRIVATE_KEY"])
    check_signing_key(config["PRIVATE_KEY"])
    for key in ("WEBHOOK_SECRET", "TELEMETRY_KEY", "GITHUB_API_URL", "DATABASE", "WORK_DIR"):
        if not isinstance(config.get(key), str):
            raise ConfigError(f"{where(key)} must be text, got {type(config.get(key)).__name__}")
    try:
        config["EVOLUTION"] = EvolutionSettings.from_json(config.get("EVOLUTION"))
    except SettingsError as exc:
        raise ConfigError(f"{where('EVOLUTION')}: {exc}") from None
    url = config["GITHUB_API_URL"].rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where('GITHUB_API_URL')} must be an http(s) URL, got {url!r}")
    config["GITHUB_API_URL"] = url
    warn_short_secrets(config)
    for key, kind in [(k, int) for k in _INTS] + [(k, float) for k in _FLOATS]:
        try:
            value = kind(config[key])
        except (TypeError, ValueError):
            raise ConfigError(f"{where(key)} must be a number, got {config[key]!r}") from None
        if value < 0 or (kind is int and value == 0 and key != "HTTP_RETRIES"):
            raise ConfigError(f"{where(key)} must be positive, got {value}")
        config[key] = value
    nice = config["WORKER_NICE"]
    if nice in ("", None):
        config["WORKER_NICE"] = None  # the store's (Store.WORKER_NICE)
    else:
        try:
            if isinstance(nice, bool) or (isinstance(nice, float) and not nice.is_integer()):
                raise ValueError(nice)  # int() would take True as 1 and cut 7.5 to 7
            config["WORKER_NICE"] = int(nice)
        except (TypeError, ValueError):
            raise ConfigError(f"{where('WORKER_NICE')} must be a whole number 0 to {MAX_NICE}, got {nice!r}") from None
        if not 0 <= config["WORKER_NICE"] <= MAX_NICE:
            raise ConfigError(f"{where('WORKER_NICE')} must be 0 to {MAX_NICE} (os.nice), got {nice}")


def read_private_key(value: Any) -> str:
    """The App's private key: PEM text, or the path of a PEM file."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        raise ConfigError(f"{where('PRIVATE_KEY')} must be PEM text or a file path")
    if "-----BEGIN" in value:
        return value.replace("\\n", "\n")  # keys pasted into one-line env files
    path = Path(os.path.expanduser(value))
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise ConfigError(
            f"{where('PRIVATE_KEY')} is neither PEM text nor a readable file: {path}: {exc.strerror}"
        ) from None
    if "-----BEGIN" not in text:
        raise ConfigError(f"{where('PRIVATE_KEY')}: {path} holds no PEM key")
    return text


#: Below this many characters a secret can be found by trying every one (see warn_short_secrets).
MIN_SECRET_LENGTH = 16


def signing_key(pem: str):
    """The App's private key, parsed: what check_signing_key checks and the App signs its
    JWTs with. Parse it once: parsing (with the RSA checks it runs) takes 50 to 80 ms with
    the GIL held, and PyJWT does it on every signature it is given PEM text for; in the job
    worker, another thread that held the store's write lock waited that long for the GIL,
    and every webhook acknowledgement with it."""
    from cryptography.hazmat.primitives import serialization  # lazy, as in check_signing_key

    return serialization.load_pem_private_key(pem.encode("ascii", "replace"), password=None)


def check_signing_key(pem: str) -> None:
    """Refuse a ``PRIVATE_KEY`` that cannot sign the App's JWTs (RS256), naming the key
    and what it is instead, never its text: a public key, an EC key or garbage would
    otherwise start the App and then fail every job, forever."""
    import jwt  # lazy: pyjwt and cryptography load when the App starts, not with `aina --help`
    from cryptography.hazmat.primitives.asymmetric import rsa

    advice = "use the private key GitHub generated for the App (its .pem file)"
    if "PUBLIC KEY-----" in pem or "CERTIFICATE-----" in pem:
        raise ConfigError(f"{where('PRIVATE_KEY')} is a public key or a certificate, which cannot sign; {advice}")
    try:
        key = signing_key(pem)
    except TypeError:
        raise ConfigError(f"{where('PRIVATE_KEY')} is encrypted with a password; {advice}, unencrypted") from None
    except Exception as exc:  # ValueError, UnsupportedAlgorithm: no key we can read
        raise ConfigError(
            f"{where('PRIVATE_KEY')} is not a PEM private key that can be read ({type(exc).__name__}); {advice}"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
        raise ConfigError(
            f"{where('PRIVATE_KEY')} is not an RSA key ({kind}); GitHub's JWTs "
            f"are signed RS256, with an RSA key; {advice}"
        )
    if key.key_size < 2048:
        raise ConfigError(
            f"{where('PRIVATE_KEY')} is an RSA key of {key.key_size} bits; GitHub's are 2048 bits or more; {advice}"
        )
    try:
        jwt.encode({"iss": "check"}, key, algorithm="RS256")  # the parsed key: no second parse
    except Exception as exc:
        raise ConfigError(f"{where('PRIVATE_KEY')} cannot sign RS256 ({type(exc).__name__}); {advice}") from None


def warn_short_secrets(config: Mapping[str, Any]) -> None:
    """Warn (the App still starts: an operator may be trying it out) about a webhook
    secret or telemetry key shorter than :data:`MIN_SECRET_LENGTH`."""
    for key in ("WEBHOOK_SECRET", "TELEMETRY_KEY"):
        value = config.get(key) or ""
        if 0 < len(value) < MIN_SECRET_LENGTH:
            log.warning(
                "%s is only %d characters: whoever sees one signed request (a proxy's log, "
                "a redelivery) can find a secret this short by trying every one offline, "
                "then sign forged %s. Use at least %d random characters, e.g. `python -c "
                "'import secrets; print(secrets.token_hex(32))'`.",
                where(key),
                len(value),
                "webhooks and, unless TELEMETRY_KEY is set, every installation's telemetry"
                if key == "WEBHOOK_SECRET"
                else "telemetry for every installation",
                MIN_SECRET_LENGTH,
            )


def merged(env_config: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults, then what the environment set, then ``overrides``."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in env_config.items() if k in DEFAULTS or k in REQUIRED})
    if overrides:
        out.update(overrides)
    return out
