"""Running the App on one machine: HTTP and job workers in one process, or either alone
(``--worker-only`` next to gunicorn, ``--no-worker``); stops on SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from werkzeug.serving import make_server

from github_app import config as app_config
from github_app.app import create_app
from github_app.config import IDLE, ConfigError
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


def lower_priority(priority: int | str) -> None:
    """Lower this process's CPU priority: by a niceness 1 to 19, or to Linux's SCHED_IDLE
    class (``"idle"``). Every thread of the process is moved (Linux schedules threads, and
    both settings are per thread); the job threads, started after, inherit it. The job
    worker and the HTTP workers share the machine's cores; GitHub times the
    acknowledgements, nobody times the jobs, so the scheduler should give the webhooks the
    CPU first. Where the system cannot (no ``os.nice`` or no SCHED_IDLE) the worker runs
    at normal priority, with a warning."""
    if priority == IDLE:
        try:
            for tid in _threads():
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError) as exc:
            logging.getLogger(__name__).warning("job worker runs at normal priority: SCHED_IDLE: %s", exc)
        return
    if priority <= 0:
        return
    try:
        for tid in _threads():
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + priority)
    except (AttributeError, OSError) as exc:
        logging.getLogger(__name__).warning("job worker runs at normal priority: nice +%d: %s", priority, exc)


def _priority_text(priority: int | str) -> str:
    return "SCHED_IDLE priority" if priority == IDLE else f"niceness +{priority}"


def _threads() -> list[int]:
    """This process's thread ids (Linux's /proc; elsewhere, the process itself)."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


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

    priority: int | str = 0
    if args.worker_only:
        priority = services.config["WORKER_NICE"] if args.nice is None else args.nice  # cli._priority checked it
        if priority is None:  # unset: what suits the store
            priority = services.store.WORKER_NICE
        lower_priority(priority)
    elif args.nice is not None:
        print("aina serve: --nice is for --worker-only (the HTTP workers keep their priority)", file=sys.stderr)
        return 2

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
                f"aina serve: {threads + evolvers} worker thread(s) at {_priority_text(priority)}; Ctrl-C stops",
                flush=True,
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
