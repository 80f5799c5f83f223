"""Running the App on one machine: HTTP and job workers in one process, or either alone
(``--worker-only`` next to gunicorn, ``--no-worker``); stops on SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading

from werkzeug.serving import make_server

from github_app import config as app_config
from github_app.app import create_app
from github_app.config import MAX_NICE, ConfigError
from github_app.store import StoreUnavailable
from github_app.web.telemetry import master_key, telemetry_secret
from github_app.worker import start_workers, startup_jobs


class _Held(logging.Handler):
    """Start-up warnings (a short secret), held until the first line, which says where the
    App listens, is out: scripts and people read that line first."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def lower_priority(niceness: int) -> None:
    """Lower this process's CPU priority by ``niceness`` (all its threads: the job worker's
    process is niced before it starts any). The job worker and the HTTP workers share the
    machine's cores; GitHub times the acknowledgements, nobody times the jobs, so the
    scheduler should give the webhooks the CPU first. Where the system has no ``os.nice``
    (Windows) the worker runs at normal priority, with a warning."""
    if niceness <= 0:
        return
    try:
        os.nice(niceness)
    except (AttributeError, OSError) as exc:
        logging.getLogger(__name__).warning("job worker runs at normal priority: os.nice(%d): %s", niceness, exc)


def run(args: argparse.Namespace) -> int:
    """``aina serve`` with parsed ``args`` (see :func:`github_app.cli.register`); the exit
    status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config_log, held = logging.getLogger(app_config.__name__), _Held()
    config_log.addHandler(held)
    config_log.propagate = False
    try:
        app = create_app()
    except (ConfigError, ValueError, StoreUnavailable) as exc:  # the last: no database
        print(f"aina serve: {exc}", file=sys.stderr)
        return 2
    finally:
        config_log.removeHandler(held)
        config_log.propagate = True

    def release_warnings() -> None:
        for record in held.records:
            config_log.handle(record)

    services = app.extensions["aina"]
    if args.print_telemetry_secret is not None:
        print(telemetry_secret(master_key(services.config), args.print_telemetry_secret))
        release_warnings()
        return 0

    niceness = 0
    if args.worker_only:
        niceness = services.config["WORKER_NICE"] if args.nice is None else args.nice
        if niceness is None:  # unset: what suits the store
            niceness = services.store.WORKER_NICE
        if niceness > MAX_NICE:
            print(f"aina serve: --nice must be 0 to {MAX_NICE}, got {niceness}", file=sys.stderr)
            return 2
        lower_priority(niceness)
    elif args.nice is not None:
        print("aina serve: --nice is for --worker-only (the HTTP workers keep their priority)", file=sys.stderr)
        return 2

    # As the HTTP workers do (gunicorn_config.post_worker_init): a full garbage collection
    # no longer walks what start-up made, which held the GIL for tens of ms, sometimes
    # while another thread held the store's write lock.
    gc.freeze()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workers = []
    threads = evolvers = 0
    if not args.no_worker:
        services.store.enqueue(startup_jobs())
        threads = services.config["WORKER_THREADS"] if args.threads is None else args.threads
        evolvers = services.config["EVOLUTION_THREADS"] if args.evolution_threads is None else args.evolution_threads
        workers = start_workers(services, threads=threads, evolution_threads=evolvers, stop=stop)
    try:
        if args.worker_only:
            print(
                f"aina serve: {threads + evolvers} worker thread(s) at niceness +{niceness}; Ctrl-C stops", flush=True
            )
            release_warnings()
            while not stop.wait(1.0):
                pass
        else:
            server = make_server(args.host, args.port, app, threaded=True)
            print(
                f"aina serve: listening on http://{args.host}:{server.server_port} "
                f"with {threads + evolvers} worker thread(s)",
                flush=True,
            )
            release_warnings()
            threading.Thread(target=lambda: (stop.wait(), server.shutdown()), daemon=True).start()
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for t in workers:
            t.join(timeout=30)
    return 0
