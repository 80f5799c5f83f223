"""Measure the GitHub App's acknowledgements as it is deployed, on loopback.

* Webhook acknowledgement latency (p50, p99) at a fixed arrival rate (open loop: request i
  is due at ``i / rate`` s, and its latency counts from then, so a stall is not hidden by
  a client that waited for it): a handled event (a bot PR closed: signature, parse,
  redelivery check, routing, and one durable transaction with the delivery and its job;
  in SQLite shared with the deliveries that arrive meanwhile), against a bare Flask endpoint that only answers 200.
* Both served by gunicorn with the App's settings (``-c python:github_app.web.gunicorn_config``:
  2 workers x 8 threads by default), the same for both; the job worker (``python -m
  github_app serve --worker-only --threads 2 --evolution-threads 1``) runs on the App's
  database throughout, as deployed: it claims and finishes the jobs the webhooks cause
  (two writes each; the GitHub calls of the start-up jobs go to a closed port, fail at
  once and are retried by the queue), polls, schedules and writes its heartbeat. ``--compare-worker`` also measures
  the App with no job worker running, in the same run; ``--compare-durable`` the bare
  endpoint with a durable write of each delivery (``record_delivery``, no job): the least
  an acknowledgement that loses nothing can do. ``--worker-variant`` measures the App
  against other job workers (threads, settings) in the same rounds. ``--worker-own-database`` (SQLite; an
  experiment, not the App as deployed) gives the job worker a database file of its own, fed
  with one ``pull_closed`` job per webhook at the same rate by a stand-in in this process:
  the worker does the same work, but none of its writes touch the file the
  acknowledgements write, which bounds what a queue the acknowledgements never write would
  gain.
* The store: SQLite (a file in a temporary folder, the embedded default) or, with
  ``--store postgresql``, a throw-away PostgreSQL server started for the run
  (``tests/postgres_server.py``, with fsync on as deployed); the App and the worker reach
  it on loopback.
* Telemetry: windows durably stored per second through ``POST /telemetry`` (signed
  batches, validated, committed with fsync before the 202); ``--batches 0`` skips it.

The load comes from a second process (this script with ``--generate``), ``--clients``
threads on keep-alive connections. Run from the repository root:

    .venv/bin/python benchmarks/bench_app.py                      # 200/s for 15 s
    .venv/bin/python benchmarks/bench_app.py --rate 200 --duration 30 --compare-worker --json FILE
    .venv/bin/python benchmarks/bench_app.py --store postgresql --batches 0

It prints a table (with the load average, and the hypervisor's steal time during each
measurement: on a busy machine or a VM whose host is busy the figures mean little) and
writes the figures as JSON with the machine and the versions (``--json FILE``). Nothing
here is asserted: this is a measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent  # gunicorn imports bare_app from here
ROOT = HERE.parent
SECRET = "bench-webhook-secret-0123456789"
INSTALLATION = 7
REPO = "bench/kernels"


def bare_app():
    """The control: a Flask app whose webhook endpoint does nothing but answer."""
    from flask import Flask, jsonify

    app = Flask("bare")

    @app.post("/webhook")
    def webhook():
        return jsonify(status="ok"), 200

    return app


def bare_durable_app():
    """The bare endpoint plus the one thing an acknowledgement cannot leave out: the
    delivery stored durably before the answer (the App's store, ``AINA_DATABASE``, one
    ``record_delivery`` with no job). No signature, parsing, routing or job: what is left
    between this and the App is the App's own code; between this and the bare endpoint,
    the durable write."""
    from flask import Flask, jsonify, request

    from github_app.store import open_store

    store = open_store(os.environ["AINA_DATABASE"])
    app = Flask("bare-durable")

    @app.post("/webhook")
    def webhook():
        request.get_data()  # the body read, as the App reads it
        store.record_delivery(request.headers.get("X-GitHub-Delivery", ""), "pull_request", "closed", [], "handled")
        return jsonify(status="ok"), 200

    return app


# -- the load generator (second process) -------------------------------------------------------
def _webhook(n: int) -> tuple[str, bytes, dict[str, str]]:
    body = json.dumps(
        {
            "action": "closed",
            "number": n % 1000 + 1,
            "installation": {"id": INSTALLATION},
            "repository": {"full_name": REPO},
            "pull_request": {
                "number": n % 1000 + 1,
                "merged": True,
                "head": {"ref": "aina/softmax/x"},
                "merged_by": {"login": "m"},
            },
            "sender": {"login": "m"},
        }
    ).encode()
    return (
        "/webhook",
        body,
        {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        },
    )


def _telemetry(n: int, batch: int) -> tuple[str, bytes, dict[str, str]]:
    sys.path.insert(0, str(ROOT))
    from github_app.web.telemetry import telemetry_secret

    body = json.dumps(
        {
            "aina_telemetry": 1,
            "batch_id": f"{n:016x}{uuid.uuid4().hex[:8]}",
            "windows": [_window(n * batch + i) for i in range(batch)],
        },
        separators=(",", ":"),
    ).encode()
    key = telemetry_secret(SECRET, INSTALLATION).encode()
    return (
        f"/telemetry?installation={INSTALLATION}&repository={REPO}",
        body,
        {
            "Content-Type": "application/json",
            "X-Aina-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        },
    )


def generate(url: str, kind: str, rate: float, duration: float, clients: int, batch: int, warmup: int) -> dict:
    """Send ``rate * duration`` requests (open loop) or, for telemetry, ``duration``
    batches back to back; the latencies and statuses."""
    host, port = re.match(r"http://([^:]+):(\d+)", url).groups()
    total = int(rate * duration) if kind == "webhook" else int(duration)
    # Bodies are built before the clock starts: the generator must not be what is measured.
    prepared = [_webhook(n) if kind == "webhook" else _telemetry(n, batch) for n in range(total + warmup)]
    latencies: list[float] = []
    service: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    next_index = iter(range(warmup, len(prepared)))
    start = [0.0]  # webhooks: when the first is due; telemetry: when the first batch was sent

    def post(conn, n):
        path, body, headers = prepared[n]
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while True:
            with lock:
                n = next(next_index, None)
            if n is None:
                return
            if kind == "webhook":
                due = start[0] + (n - warmup) / rate
            else:  # back to back, from the first batch sent (not from a schedule)
                due = time.perf_counter()
                with lock:
                    start[0] = min(start[0], due)
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            try:
                status = post(conn, n)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                status = 0
            done = time.perf_counter()
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(done - due)
                service.append(done - sent)

    warm = http.client.HTTPConnection(host, int(port), timeout=60)
    for n in range(warmup):  # serially, so every code path is hot
        post(warm, n)
    warm.close()
    threads = [threading.Thread(target=client) for _ in range(clients if kind == "webhook" else 1)]
    start[0] = time.perf_counter() + 0.05 if kind == "webhook" else float("inf")
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start[0]
    latencies.sort()
    service.sort()

    def pct(xs, q):
        return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]

    return {
        "requests": len(latencies),
        "wall_s": wall,
        "statuses": statuses,
        "throughput_rps": len(latencies) / wall,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": 1000 * latencies[-1],
        "mean_ms": 1000 * statistics.fmean(latencies),
        "service_p99_ms": pct(service, 0.99),
    }


def _window(i: int) -> dict:
    start = 1_780_000_000 + 60 * i
    t = lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))  # noqa: E731
    return {
        "aina_telemetry": 1,
        "start": t(start),
        "end": t(start + 60),
        "service": f"svc-{i % 7}",
        "kernel": "softmax",
        "variant": "generic",
        "dims": {"M": 1 + i % 4096, "N": 4096},
        "dtype": "float16",
        "device": {"name": "NVIDIA H100 80GB HBM3", "arch": "sm_90"},
        "calls": 1000,
        "time_s": 0.1,
        "latency_s": {"min": 8e-5, "p50": 1e-4, "p90": 1.1e-4, "p99": 1.3e-4, "max": 2e-4},
    }


# -- servers -----------------------------------------------------------------------------------
def start_gunicorn(target: str, env: dict[str, str], args) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:github_app.web.gunicorn_config",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--chdir",
            str(HERE),
            "--pythonpath",
            str(ROOT),
            target,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url, booted = None, 0
    for line in proc.stdout:
        m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
        if m:
            url = m.group(1)
        booted += "Booting worker" in line
        if booted == args.workers:
            break
    if url is None:
        proc.kill()
        raise RuntimeError(f"gunicorn {target} did not start")
    # keep reading its output so a full pipe never blocks the server
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    time.sleep(1.0)  # the workers import the App after "Booting"
    return proc, url


def start_job_worker(env: dict[str, str], log: Path, threads: int = 2) -> subprocess.Popen:
    # As the docs deploy it: two job threads and one evolution thread, at the niceness the
    # App's configuration gives it (AINA_WORKER_NICE, else the store's; --worker-nice sets
    # it here); --worker-variant may ask for other threads and settings.
    from worker_process import start_worker_process  # tests/ (main puts it on the path)

    return start_worker_process(env, log, threads=threads, evolution_threads=1, root=ROOT)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_load(url: str, kind: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--generate",
        url,
        "--kind",
        kind,
        "--rate",
        str(args.rate),
        "--duration",
        str(args.duration if kind == "webhook" else args.batches),
        "--clients",
        str(args.clients),
        "--batch",
        str(args.batch),
        "--warmup",
        str(args.warmup if kind == "webhook" else 2),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


#: The goal (issue 15): webhook ack p99 under this, with the job worker running ...
GOAL_P99_MS = 20.0
#: ... and at most this many times the bare endpoint's p99 in the same run.
GOAL_RATIO = 1.5


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=200.0, help="webhooks per second (200)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load per server and round (15)")
    p.add_argument("--rounds", type=int, default=1, help="rounds of bare, then App, interleaved (1)")
    p.add_argument("--clients", type=int, default=32, help="client connections (32)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    p.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (8)")
    p.add_argument("--compare-worker", action="store_true", help="also measure the App with no job worker running")
    p.add_argument(
        "--compare-durable",
        action="store_true",
        help="also measure the bare endpoint with a durable write of each delivery to the App's store (and no more)",
    )
    p.add_argument(
        "--worker-own-database",
        action="store_true",
        help="SQLite, an experiment: the job worker on a database file of its own, fed the same jobs at the same rate",
    )
    p.add_argument(
        "--worker-nice",
        default="",
        metavar="N[,N...]",
        help="the job worker's AINA_WORKER_NICE (default: the App's: 10 on PostgreSQL, 0 on SQLite); several, e.g. 0,10: "
        "each round measures the App once per value, the worker restarted with it",
    )
    p.add_argument(
        "--worker-variant",
        action="append",
        default=[],
        metavar="SPEC",
        help="another job worker to measure the App against, as KEY=VALUE[,KEY=VALUE...]: threads=N (its job threads, "
        "2 as deployed), db_nice=N (PostgreSQL, a diagnostic: the server processes serving the worker reniced to N; "
        "needs the right to) or any App setting without AINA_ (e.g. WORKER_POLL_SECONDS=0.05); repeatable, each round "
        "measures the App once per variant after the worker as deployed (or --worker-nice's), the worker restarted for each",
    )
    p.add_argument(
        "--no-fsync",
        action="store_true",
        help="PostgreSQL, a diagnostic (not as deployed): the server with fsync and full-page writes off, to see "
        "how much of an acknowledgement is the disk's",
    )
    p.add_argument("--batches", type=int, default=20, help="telemetry batches (20; 0 skips)")
    p.add_argument("--batch", type=int, default=500, help="windows per batch (500)")
    p.add_argument("--warmup", type=int, default=50, help="untimed requests first (50)")
    p.add_argument(
        "--store", choices=("sqlite", "postgresql", "both"), default="sqlite", help="the App's database (sqlite)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures here")
    p.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--kind", default="webhook", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.generate:
        print(
            json.dumps(
                generate(args.generate, args.kind, args.rate, args.duration, args.clients, args.batch, args.warmup)
            )
        )
        return 0
    try:
        nices = [int(n) for n in args.worker_nice.split(",")] if args.worker_nice else []
    except ValueError:
        p.error(f"--worker-nice: whole numbers separated by commas, got {args.worker_nice!r}")
    # as deployed (or at each niceness asked for), then each variant
    variants = [Variant.at_niceness(n) for n in nices] or [Variant.deployed()]
    for spec in args.worker_variant:
        try:
            variants.append(Variant.parse(spec))
        except ValueError as exc:
            p.error(f"--worker-variant {spec!r}: {exc}")
    if args.rounds < 1:
        p.error("--rounds must be 1 or more")
    if any(v.db_nice for v in variants) and args.store != "postgresql":
        p.error("--worker-variant db_nice=N is for --store postgresql")
    if args.no_fsync and args.store != "postgresql":
        p.error("--no-fsync is for --store postgresql")
    if args.worker_own_database and args.store != "sqlite":
        p.error("--worker-own-database is for --store sqlite")

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    out: dict[str, dict] = {}
    verdicts = []
    for store in ("sqlite", "postgresql") if args.store == "both" else (args.store,):
        work = Path(tempfile.mkdtemp(prefix="aina-bench-"))
        (work / "app.pem").write_bytes(pem)
        server = None
        if store == "postgresql":
            from postgres_server import PostgresServer

            server = PostgresServer(durable=not args.no_fsync).start()
            db = server.create_database("bench")
        else:
            db = str(work / "aina.sqlite3")
        try:
            out[store] = _measure(args, store, work, db, variants)
        finally:
            if server is not None:
                server.stop()
        verdicts += out[store]["verdicts"]
    print()
    for line in verdicts:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(out if args.store == "both" else out[args.store], indent=2))
    return 0


def _cpu_times() -> list[int] | None:
    """The machine's CPU time by kind (Linux's /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def _steal_pct(before, after) -> float | None:
    """The share of CPU time the hypervisor gave to other guests while this ran: on a
    shared VM it is what moves the bare endpoint's own p99 between runs (a vCPU taken
    away for tens of ms while a request is in flight), so each measurement says it."""
    if before is None or after is None:
        return None
    delta = [a - b for a, b in zip(after, before)]
    return 100.0 * delta[7] / max(1, sum(delta))


class Variant:
    """One job worker to measure the App against: App settings of its own (``AINA_`` left
    off), its number of job threads and, on PostgreSQL, ``db_nice`` (see
    :func:`_renice_worker_backends`); ``label`` names its figures, ``described`` says it in
    the verdict."""

    def __init__(self, label: str, settings: dict[str, str], *, threads=2, db_nice=0, described=""):
        self.label, self.settings, self.described = label, settings, described
        self.threads, self.db_nice = threads, db_nice

    @classmethod
    def deployed(cls) -> Variant:
        return cls("app_webhook", {})

    @classmethod
    def at_niceness(cls, n: int) -> Variant:
        return cls(f"app_webhook_nice{n}", {"WORKER_NICE": str(n)}, described=f" at niceness +{n}")

    #: The whole-number keys of ``--worker-variant`` and their ranges (the rest are settings).
    NUMBERS = {"threads": (1, 64), "db_nice": (0, 19)}

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """``--worker-variant``'s KEY=VALUE[,KEY=VALUE...]."""
        settings, numbers = {}, {}
        for part in filter(None, (x.strip() for x in spec.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key or not value:
                raise ValueError(f"{part!r} is not KEY=VALUE")
            if key in cls.NUMBERS:
                low, high = cls.NUMBERS[key]
                if not value.isdigit() or not low <= int(value) <= high:
                    raise ValueError(f"{key} takes a whole number from {low} to {high}, not {value!r}")
                numbers[key] = int(value)
            else:
                settings[key.removeprefix("AINA_")] = value
        if not settings and not numbers:
            raise ValueError("no setting given")
        return cls(f"app_webhook[{spec}]", settings, **numbers, described=f" ({spec})")


#: The job worker's connections' application_name on PostgreSQL (``db_nice``).
WORKER_APP_NAME = "aina-bench-job-worker"


def _renice_worker_backends(dsn: str, nice: int, done: threading.Event, reniced: set[int]) -> None:
    """``db_nice`` (PostgreSQL, a diagnostic, not a deployment): lower the CPU priority of
    the server processes that serve the job worker's connections, as AINA_WORKER_NICE
    lowers the worker's own, until ``done``. On one machine those processes do about half
    of a webhook job's CPU work at the acknowledgements' priority; this says how much of
    the acknowledgements' wait is theirs. Needs the right to renice them (root, or the
    server running as this user). ``reniced``: the processes' ids, as they are found."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        while not done.is_set():
            rows = con.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (WORKER_APP_NAME,))
            for (pid,) in rows.fetchall():
                if pid not in reniced:
                    os.setpriority(os.PRIO_PROCESS, pid, nice)
                    reniced.add(pid)
            done.wait(0.2)


def _feed_worker(jobs_db: str, rate: float, done: threading.Event) -> None:
    """``--worker-own-database``: what the webhooks' acknowledgements would have queued for
    the worker (each webhook the generator sends, routed by the App's router, recorded with
    its job), written to the worker's own database instead, one per webhook at ``rate``,
    until ``done``."""
    from github_app.events import default_router
    from github_app.events.router import Event
    from github_app.store import open_store

    store, router = open_store(jobs_db), default_router()
    start = time.perf_counter()
    n = 0
    try:
        while not done.is_set():
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            _, body, headers = _webhook(n)
            payload, delivery = json.loads(body), headers["X-GitHub-Delivery"]
            jobs = router.dispatch(Event(headers["X-GitHub-Event"], payload["action"], payload, delivery), store)
            store.record_delivery(delivery, headers["X-GitHub-Event"], payload["action"], jobs, "handled")
            n += 1
    finally:
        store.close()


def _backlog(db: str) -> int:
    """The webhooks' jobs (``pull_closed``) not finished yet."""
    from github_app.store import open_store

    store = open_store(db)
    try:
        counts = store.job_counts()
    finally:
        store.close()
    return counts.get(("pull_closed", "queued"), 0) + counts.get(("pull_closed", "running"), 0)


def _drop_backlog(db: str) -> None:
    """Cancel what the last configuration's webhooks left queued (the store's own
    cancellation: such jobs end as failed, "cancelled", in the counts at the end)."""
    from github_app.store import open_store

    store = open_store(db)
    try:
        store.cancel_jobs(REPO)
    finally:
        store.close()


def _measure(args, store_kind: str, work: Path, db: str, variants: list[Variant]) -> dict:
    from worker_process import app_env, offline_settings

    from github_app.store import open_store

    settings = offline_settings(work / "app.pem", db, SECRET, TELEMETRY_MAX_BYTES=str(64 * 1024 * 1024))

    env = app_env(settings, ROOT)

    store = open_store(db)
    store.upsert_installation(INSTALLATION, "bench", True)
    store.upsert_repository(REPO, INSTALLATION, default_branch="main")
    store.close()

    rounds: list[dict[str, dict]] = []
    load: list[dict[str, list[float]]] = []
    jobs_db = db  # the database the job worker runs on
    if args.worker_own_database:
        jobs_db = str(work / "worker.sqlite3")
        store = open_store(jobs_db)
        store.upsert_installation(INSTALLATION, "bench", True)
        store.upsert_repository(REPO, INSTALLATION, default_branch="main")
        store.close()

    def measure(name: str, target: str, into: dict, loads: dict, telemetry: bool = False) -> None:
        server, url = start_gunicorn(target, env, args)
        done = threading.Event()
        if jobs_db != db and name.startswith("app_"):
            threading.Thread(target=_feed_worker, args=(jobs_db, args.rate, done), daemon=True).start()
        try:
            before = _cpu_times()
            into[name] = run_load(url, "webhook", args)
            done.set()  # (in finally too: a load that failed must not leave it feeding)
            into[name]["steal_pct"] = _steal_pct(before, _cpu_times())
            loads[name] = list(os.getloadavg())
            if telemetry and args.batches:
                into["app_telemetry"] = run_load(url, "telemetry", args)
        finally:
            done.set()
            stop(server)

    def worker_env(variant: Variant):
        own = env if jobs_db == db else {**env, "AINA_DATABASE": jobs_db}
        # PGAPPNAME (libpq's): the server's processes that serve the worker can be told apart
        return {**own, **{f"AINA_{k}": v for k, v in variant.settings.items()}, "PGAPPNAME": WORKER_APP_NAME}

    for r in range(args.rounds):
        results: dict[str, dict] = {}
        loads: dict[str, list[float]] = {}
        if args.compare_worker:
            measure("app_webhook_no_job_worker", "github_app:create_app()", results, loads)
        # Interleaved: the bare endpoint and the App, one after the other in each round, with
        # the same worker running (restarted for each variant asked for).
        for i, variant in enumerate(variants):
            # Each configuration starts from an empty queue: a worker left draining the last
            # one's backlog would be measured against this one's acknowledgements.
            _drop_backlog(jobs_db)
            worker = start_job_worker(worker_env(variant), work / f"job-worker-{r}-{i}.log", variant.threads)
            renicing, reniced = threading.Event(), set()
            if variant.db_nice:
                threading.Thread(
                    target=_renice_worker_backends, args=(db, variant.db_nice, renicing, reniced), daemon=True
                ).start()
            try:
                if i == 0:
                    measure("bare_flask", "bench_app:bare_app()", results, loads)
                    if args.compare_durable:
                        measure("bare_flask_durable", "bench_app:bare_durable_app()", results, loads)
                measure(variant.label, "github_app:create_app()", results, loads, telemetry=(r, i) == (0, 0))
                results[variant.label]["jobs_waiting_at_end"] = _backlog(jobs_db)
                if variant.db_nice:
                    results[variant.label]["worker_backends_reniced"] = len(reniced)
            finally:
                renicing.set()
                stop(worker)
        rounds.append(results)
        load.append(loads)
        print(f"round {r + 1}/{args.rounds} ({store_kind}) done, load average {os.getloadavg()[0]:.1f}", flush=True)

    check = open_store(db)
    stored = check.telemetry_summary(REPO)["windows"]
    check.close()
    check = open_store(jobs_db)
    job_counts = {f"{k}/{s}": n for (k, s), n in check.job_counts().items()}
    check.close()

    print(f"store: {store_kind}")
    print(f"{'round':6}{'':28}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'req/s':>8}  load(1m)  steal%  statuses")
    for r, (results, loads) in enumerate(zip(rounds, load)):
        for name, x in results.items():
            steal = x.get("steal_pct")
            print(
                f"{r + 1:<6}{name:28}{x['p50_ms']:9.2f}{x['p99_ms']:9.2f}{x['max_ms']:9.1f}"
                f"{x['throughput_rps']:8.0f}  {loads.get(name, [float('nan')])[0]:8.1f}"
                f"  {'-' if steal is None else f'{steal:5.1f}':>6}  {x['statuses']}"
            )
    summary: dict[str, dict] = {}
    verdicts = []
    for variant in variants:
        name = variant.label
        per_round = []
        for results in rounds:
            a, b = results[name], results["bare_flask"]
            ok = a["p99_ms"] < GOAL_P99_MS and a["p99_ms"] <= GOAL_RATIO * b["p99_ms"]
            per_round.append(
                {
                    "app_p50_ms": a["p50_ms"],
                    "app_p99_ms": a["p99_ms"],
                    "bare_p50_ms": b["p50_ms"],
                    "bare_p99_ms": b["p99_ms"],
                    "p50_ratio": a["p50_ms"] / b["p50_ms"],
                    "p99_ratio": a["p99_ms"] / b["p99_ms"],
                    "app_steal_pct": a.get("steal_pct"),
                    "bare_steal_pct": b.get("steal_pct"),
                    "goal_met": ok,
                }
            )
        # Jobs the webhooks caused that the worker had not finished when the load stopped.
        left = max(results[name]["jobs_waiting_at_end"] for results in rounds)
        met = sum(x["goal_met"] for x in per_round)
        summary[name] = {"rounds": per_round, "goal_met_rounds": met}
        worker = "job worker running" + variant.described
        if jobs_db != db:
            worker += " on a database of its own (an experiment, not the App as deployed)"
        for r, x in enumerate(per_round):
            print(
                f"round {r + 1}: App/bare, {worker}: p50 x{x['p50_ratio']:.2f}, p99 x{x['p99_ratio']:.2f} "
                f"(App p99 {x['app_p99_ms']:.1f} ms, bare p99 {x['bare_p99_ms']:.1f} ms)"
                + (" - the bare endpoint itself missed the p99 goal here" if x["bare_p99_ms"] >= GOAL_P99_MS else "")
            )
        p99 = statistics.median(x["app_p99_ms"] for x in per_round)
        ratio = statistics.median(x["p99_ratio"] for x in per_round)
        verdicts.append(
            f"GOAL {store_kind}, {worker}: {'MET' if met == len(per_round) else 'NOT MET'} in {met} of "
            f"{len(per_round)} round(s) (App p99 < {GOAL_P99_MS:g} ms and <= x{GOAL_RATIO:g} the bare p99; "
            f"App p99 median {p99:.1f} ms, ratio median x{ratio:.2f}); "
            + (
                "the worker kept up"
                if not left
                else f"the worker did NOT keep up: up to {left} webhook job(s) still waiting at the end of a round"
            )
        )
    if "app_telemetry" in rounds[0]:
        t = rounds[0]["app_telemetry"]
        summary["telemetry"] = {
            "windows_per_s": t["requests"] * args.batch / t["wall_s"],
            "windows_stored": stored,
            "batch_p50_ms": t["p50_ms"],
            "batch_p99_ms": t["p99_ms"],
        }
        print(
            f"Telemetry: {summary['telemetry']['windows_per_s']:,.0f} windows/s durably stored "
            f"({args.batch} per batch; {stored} rows in the store)"
        )
    print(f"Jobs at the end: {job_counts}; {os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}")
    meta = {
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "store": store_kind,
        "load_average_after_each": load,
        "args": vars(args),
    }
    return {
        "summary": summary,
        "jobs_at_end": job_counts,
        "rounds": rounds,
        "meta": meta,
        "verdicts": verdicts,
    }


if __name__ == "__main__":
    sys.exit(main())
