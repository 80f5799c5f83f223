"""``aina serve``: the App on one machine (HTTP and job workers in one process).

Registered with the ``aina`` CLI through the ``aina.commands`` entry-point group. Nothing
heavy is imported until the command runs.
"""

from __future__ import annotations

import argparse
import sys


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
        "serve", help="run the GitHub App (webhooks, telemetry, job workers)",
        description="Run the pytest-aina GitHub App. Configuration comes from AINA_* "
                    "environment variables (AINA_APP_ID, AINA_PRIVATE_KEY, "
                    "AINA_WEBHOOK_SECRET, AINA_GITHUB_API_URL, AINA_DATABASE, ...); "
                    "see docs/github-app.md.")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, metavar="PORT",
                   help="port to listen on (default: 8000)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--worker-only", action="store_true",
                      help="run job workers only, no HTTP (next to gunicorn)")
    mode.add_argument("--no-worker", action="store_true",
                      help="serve HTTP only; workers run elsewhere")
    mode.add_argument("--print-telemetry-secret", type=int, metavar="INSTALLATION_ID",
                      help="print the telemetry secret of one installation and exit")
    p.add_argument("--threads", type=_count, metavar="N",
                   help="job worker threads (default: AINA_WORKER_THREADS, 1)")
    p.add_argument("--evolution-threads", type=_count, metavar="N",
                   help="evolution worker threads (default: AINA_EVOLUTION_THREADS, 1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from github_app import ConfigError, create_app
    from github_app.store import StoreUnavailable
    from github_app.web.telemetry import master_key, telemetry_secret
    from github_app.worker import start_workers, startup_jobs

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app()
    except (ConfigError, ValueError, StoreUnavailable) as exc:  # the last: no database
        print(f"aina serve: {exc}", file=sys.stderr)
        return 2
    services = app.extensions["aina"]
    if args.print_telemetry_secret is not None:
        print(telemetry_secret(master_key(services.config), args.print_telemetry_secret))
        return 0

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workers = []
    if not args.no_worker:
        services.store.enqueue(startup_jobs())
        threads = services.config["WORKER_THREADS"] if args.threads is None else args.threads
        evolvers = (services.config["EVOLUTION_THREADS"] if args.evolution_threads is None
                    else args.evolution_threads)
        workers = start_workers(services, threads=threads, evolution_threads=evolvers,
                                stop=stop)
    try:
        if args.worker_only:
            print(f"aina serve: {len(workers)} worker thread(s); Ctrl-C stops", flush=True)
            while not stop.wait(1.0):
                pass
        else:
            from werkzeug.serving import make_server

            server = make_server(args.host, args.port, app, threaded=True)
            print(f"aina serve: listening on http://{args.host}:{server.server_port} "
                  f"with {len(workers)} worker thread(s)", flush=True)
            threading.Thread(target=lambda: (stop.wait(), server.shutdown()),
                             daemon=True).start()
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for t in workers:
            t.join(timeout=30)
    return 0
