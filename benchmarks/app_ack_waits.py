"""Where a webhook's acknowledgement waits, with the job worker running: a profile,
not the deployed measurement (that is bench_app.py).

The App runs in this process (werkzeug, a thread per connection, so every wait is in one
process and can be timed), the job worker as its own process on the same database
(``serve --worker-only``, as bench_app.py starts it), webhooks at 200/s open loop from
bench_app.py's generator for 10 s. Timed around: the whole view, ``delivery_seen``,
``record_delivery`` and, where the store has them, its group commit (BEGIN..COMMIT), the
wait in BEGIN IMMEDIATE for another process's lock, and the size of each group. Prints
the generator's figures and a table. Run from the repository root (ROOT: another checkout
to profile, e.g. an older commit's tree):

    .venv/bin/python benchmarks/app_ack_waits.py [ROOT] [--worker-nice N] [--store postgresql]
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "root",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the checkout to profile (this one)",
    )
    p.add_argument("--worker-nice", type=int, metavar="N", help="the job worker's AINA_WORKER_NICE (the App's)")
    p.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="the App's database (sqlite)")
    args = p.parse_args(argv)
    root = args.root.resolve()
    if not (root / "github_app").is_dir():
        p.error(f"{root} is not a checkout of pytest-aina (no github_app/ in it)")
    here = Path(__file__).resolve().parent.parent
    # this checkout's tests/ for the shared helpers, the profiled checkout's App
    sys.path[:0] = [str(root), str(root / "benchmarks"), str(here / "tests")]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a log line per request otherwise
    work = Path(tempfile.mkdtemp(prefix="aina-waits-"))
    server = None
    if args.store == "postgresql":
        from postgres_server import PostgresServer

        server = PostgresServer(durable=True).start()
        db = server.create_database("waits")
    else:
        db = str(work / "a.sqlite3")
    try:
        return _profile(args, root, work, db)
    finally:
        if server is not None:
            server.stop()


def _profile(args, root: Path, work: Path, db: str) -> int:
    import bench_app
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from werkzeug.serving import make_server
    from worker_process import app_env, offline_settings, start_worker_process

    from github_app import create_app
    from github_app.store import SQLiteStore, open_store

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (work / "k.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings = offline_settings(work / "k.pem", db, bench_app.SECRET)
    if args.worker_nice is not None:
        settings["WORKER_NICE"] = str(args.worker_nice)
    env = app_env(settings, root)
    store = open_store(db)
    store.upsert_installation(bench_app.INSTALLATION, "bench", True)
    store.upsert_repository(bench_app.REPO, bench_app.INSTALLATION, default_branch="main")
    store.close()

    times: dict[str, list[float]] = collections.defaultdict(list)

    def timed(owner, name, label):
        real = getattr(owner, name)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return real(*a, **kw)
            finally:
                times[label].append(time.perf_counter() - t)

        setattr(owner, name, wrapper)

    if args.store == "postgresql":
        from psycopg_pool import ConnectionPool

        from github_app.store.postgres import PostgresStore

        Store = PostgresStore
        timed(ConnectionPool, "getconn", "  pool: waiting for a connection")
    else:
        Store = SQLiteStore
    timed(Store, "record_delivery", "record_delivery (whole)")
    timed(Store, "delivery_seen", "delivery_seen")
    if Store is SQLiteStore and hasattr(SQLiteStore, "_commit_group"):
        timed(SQLiteStore, "_commit_group", "  group commit (BEGIN..COMMIT)")
        timed(SQLiteStore, "_begin", "    BEGIN IMMEDIATE (another process)")
        commit = SQLiteStore._commit_group

        def sized(self, batch, started):
            sizes.append(len(batch))
            return commit(self, batch, started)

        sizes: list[int] = []
        SQLiteStore._commit_group = sized
    app = create_app({**settings, "APP_ID": 1})
    timed(app.extensions["aina"].router, "dispatch", "router.dispatch")
    view = app.view_functions["webhooks.webhook"]

    def timed_view(*a, **kw):
        t = time.perf_counter()
        try:
            return view(*a, **kw)
        finally:
            times["view (the whole handler)"].append(time.perf_counter() - t)

    app.view_functions["webhooks.webhook"] = timed_view
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # as bench_app.py starts it
    worker = start_worker_process(env, work / "job-worker.log", threads=2, evolution_threads=1, root=root)
    try:
        time.sleep(3)  # the worker imports and starts
        url = f"http://127.0.0.1:{server.server_port}"
        load = [sys.executable, str(root / "benchmarks" / "bench_app.py"), "--generate", url]
        load += ["--rate", "200", "--duration", "10", "--clients", "32", "--warmup", "50"]
        out = subprocess.run(load, capture_output=True, text=True, cwd=root, check=True)
    finally:
        worker.terminate()
        worker.wait()
        server.shutdown()
    print(out.stdout.strip().splitlines()[-1])
    print(f"store {args.store}; load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    for label in sorted(times):
        xs = sorted(times[label])
        n = len(xs)
        print(
            f"{label:40} n={n:5} p50 {1e3 * xs[n // 2]:7.2f} p99 {1e3 * xs[int(n * 0.99)]:7.2f}"
            f" mean {1e3 * sum(xs) / n:7.2f} ms"
        )
    if "group commit" in " ".join(times):
        print(f"  deliveries per group commit: mean {statistics.fmean(sizes):.2f}, max {max(sizes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
