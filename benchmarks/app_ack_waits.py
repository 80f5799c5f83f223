"""Where a webhook's acknowledgement waits, with the job worker running: a profile,
not the deployed measurement (that is bench_app.py).

The App runs in this process (werkzeug, a thread per connection, so every wait is in one
process and can be timed), the job worker as its own process on the same database
(``serve --worker-only``, as bench_app.py starts it), webhooks at 200/s open loop from
bench_app.py's generator for 10 s. Timed around: the whole view, ``delivery_seen``,
``record_delivery`` and, where the store has them, its group commit (BEGIN..COMMIT), the
wait in BEGIN IMMEDIATE for another process's lock, and the size of each group. Prints
the generator's figures and a table. On SQLite it also says whose lock those waits were
for: the job worker records each of its write transactions (a ``sitecustomize`` put on its
``PYTHONPATH`` for the run wraps ``SQLiteStore._tx``; nothing in the App changes), and each
wait in BEGIN over 1 ms is laid beside them: the part of it during a worker transaction, and
how long after the last one ended it went on (polling's overshoot, or a holder not traced).
Run from the repository root (ROOT: another checkout to profile, e.g. an older commit's
tree):

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
    holds_file = work / "worker-holds.tsv"
    if args.store == "sqlite":
        (work / "trace").mkdir()
        (work / "trace" / "sitecustomize.py").write_text(_WORKER_TRACE)
        env["PYTHONPATH"] = os.pathsep.join([str(work / "trace"), env["PYTHONPATH"]])
        env["AINA_BENCH_HOLDS"] = str(holds_file)
    store = open_store(db)
    store.upsert_installation(bench_app.INSTALLATION, "bench", True)
    store.upsert_repository(bench_app.REPO, bench_app.INSTALLATION, default_branch="main")
    store.close()

    times: dict[str, list[float]] = collections.defaultdict(list)
    # When each timed call began and ended, on the clock every process here shares (the
    # job worker's transactions are laid beside the App's waits in BEGIN: _whose_lock).
    spans: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)

    def timed(owner, name, label):
        real = getattr(owner, name)

        def wrapper(*a, **kw):
            t = time.monotonic()
            try:
                return real(*a, **kw)
            finally:
                end = time.monotonic()
                times[label].append(end - t)
                spans[label].append((t, end))

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
    begin_label = "    BEGIN IMMEDIATE (another process)"
    if Store is SQLiteStore and hasattr(SQLiteStore, "_commit_group"):
        timed(SQLiteStore, "_commit_group", "  group commit (BEGIN..COMMIT)")
        timed(SQLiteStore, "_begin", begin_label)
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
    if holds_file.exists():
        _whose_lock(spans[begin_label], holds_file)
    return 0


# Put on the job worker's PYTHONPATH (SQLite only): each write transaction it makes, from
# BEGIN IMMEDIATE granted to COMMIT done (monotonic clock, the same in every process here),
# appended to $AINA_BENCH_HOLDS when the worker exits.
_WORKER_TRACE = """
import atexit, os, time

from github_app.store import sqlite as _sqlite

_holds = []
_real_tx = _sqlite.SQLiteStore._tx


class _Timed:
    def __init__(self, cm):
        self.cm = cm

    def __enter__(self):
        con = self.cm.__enter__()
        self.granted = time.monotonic()
        return con

    def __exit__(self, *exc):
        try:
            return self.cm.__exit__(*exc)
        finally:
            _holds.append((self.granted, time.monotonic()))


_sqlite.SQLiteStore._tx = lambda self, **kw: _Timed(_real_tx(self, **kw))


@atexit.register
def _write():
    with open(os.environ["AINA_BENCH_HOLDS"], "a") as f:
        f.writelines(f"{a:.6f} {b:.6f}\\n" for a, b in _holds)
"""


def _whose_lock(begins: list[tuple[float, float]], holds_file: Path) -> None:
    """The App's waits in BEGIN IMMEDIATE over 1 ms, beside the worker's transactions."""
    holds = sorted(tuple(map(float, line.split())) for line in holds_file.read_text().splitlines())
    if not holds:
        print("  the job worker recorded no write transaction")
        return
    lengths = sorted(b - a for a, b in holds)
    n = len(lengths)
    print(
        f"  the job worker's write transactions: {n}, each holding SQLite's lock p50 {1e3 * lengths[n // 2]:.2f}"
        f" p99 {1e3 * lengths[int(n * 0.99)]:.2f} max {1e3 * lengths[-1]:.2f} ms"
    )
    waits = [(a, b) for a, b in begins if b - a > 0.001]
    if not waits:
        print("  no wait in BEGIN IMMEDIATE over 1 ms")
        return
    during, after = 0.0, []
    for a, b in waits:
        during += sum(max(0.0, min(b, y) - max(a, x)) for x, y in holds if x < b and y > a)
        ended = [y for x, y in holds if a < y <= b]
        after.append(b - max(ended) if ended else b - a)
    total = sum(b - a for a, b in waits)
    after.sort()
    print(
        f"  waits in BEGIN IMMEDIATE over 1 ms: {len(waits)}, {1e3 * total:.0f} ms in all, of it"
        f" {1e3 * during:.0f} ms during a job worker transaction; from the end of the last one in"
        f" the wait (or the wait's start) to the App's BEGIN: p50 {1e3 * after[len(after) // 2]:.2f}"
        f" max {1e3 * after[-1]:.2f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
