"""``aina serve``: its arguments; :mod:`github_app.serve` runs the App with them.

Registered with the ``aina`` CLI through the ``aina.commands`` entry-point group, and run by
``python -m github_app``. Parsing imports nothing heavy, so ``aina --help`` does not pay for
Flask, github3.py and pyjwt.
"""

from __future__ import annotations

import argparse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0-65535: {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the GitHub App (webhooks, telemetry, job workers)",
        description="Run the pytest-aina GitHub App. Configuration comes from AINA_* "
        "environment variables (AINA_APP_ID, AINA_PRIVATE_KEY, "
        "AINA_WEBHOOK_SECRET, AINA_GITHUB_API_URL, AINA_DATABASE, ...); "
        "see docs/github-app.md.",
    )
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, metavar="PORT", help="port to listen on (default: 8000)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--worker-only", action="store_true", help="run job workers only, no HTTP (next to gunicorn)")
    mode.add_argument("--no-worker", action="store_true", help="serve HTTP only; workers run elsewhere")
    mode.add_argument(
        "--print-telemetry-secret",
        type=int,
        metavar="INSTALLATION_ID",
        help="print the telemetry secret of one installation and exit",
    )
    p.add_argument("--threads", type=_count, metavar="N", help="job worker threads (default: AINA_WORKER_THREADS, 1)")
    p.add_argument(
        "--evolution-threads",
        type=_count,
        metavar="N",
        help="evolution worker threads (default: AINA_EVOLUTION_THREADS, 1)",
    )
    p.add_argument(
        "--nice",
        type=_count,
        metavar="N",
        help="with --worker-only: lower this process's CPU priority by N, 0 to 19 "
        "(default: AINA_WORKER_NICE, else 10 on PostgreSQL and 0 on SQLite), so the HTTP "
        "workers' acknowledgements come first",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from github_app import serve  # Flask, github3.py and pyjwt load when the App runs

    return serve.run(args)
