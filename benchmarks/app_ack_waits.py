"""Where a webhook's acknowledgement waits, on SQLite with the job worker running: a profile,
not the deployed measurement (that is bench_app.py).

The App runs in this process (werkzeug, a thread per connection, so every wait is in one
process and can be timed), the job worker as its own process on the same database
(``serve --worker-only``, as bench_app.py starts it), webhooks at 200/s open loop from
bench_app.py's generator for 10 s. Timed around: the whole view, ``delivery_seen``,
``record_delivery`` and, where the store has them, its group commit (BEGIN..COMMIT), the
wait in BEGIN IMMEDIATE for another process's lock, and the size of each group. Prints
the generator's figures and a table. Run from the repository root (ROOT: another checkout
to profile, e.g. an older commit's tree):

    .venv/bin/python benchmarks/app_ack_waits.py [ROOT]
"""

from __future__ import annotations

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


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    sys.path[:0] = [str(root), str(root / "benchmarks")]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a log line per request otherwise
    import bench_app
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from werkzeug.serving import make_server

    from github_app import create_app
    from github_app.store import SQLiteStore, open_store

    work = Path(tempfile.mkdtemp(prefix="aina-waits-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (work / "k.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    db = str(work / "a.sqlite3")
    settings = {
        "APP_ID": "1",
        "PRIVATE_KEY": str(work / "k.pem"),
        "WEBHOOK_SECRET": bench_app.SECRET,
        "DATABASE": db,
        "GITHUB_API_URL": "http://127.0.0.1:9/api/v3",
        "HTTP_RETRIES": "0",  # as in bench_app.py
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    env.update({f"AINA_{k}": v for k, v in settings.items()}, PYTHONPATH=str(root))
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

    timed(SQLiteStore, "record_delivery", "record_delivery (whole)")
    timed(SQLiteStore, "delivery_seen", "delivery_seen")
    if hasattr(SQLiteStore, "_commit_group"):
        timed(SQLiteStore, "_commit_group", "  group commit (BEGIN..COMMIT)")
        timed(SQLiteStore, "_begin", "    BEGIN IMMEDIATE (another process)")
        commit = SQLiteStore._commit_group

        def sized(self, batch, started):
            sizes.append(len(batch))
            return commit(self, batch, started)

        sizes: list[int] = []
        SQLiteStore._commit_group = sized
    app = create_app({**settings, "APP_ID": 1})
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
    worker = subprocess.Popen(
        [sys.executable, "-m", "github_app", "serve", "--worker-only", "--threads", "2", "--evolution-threads", "1"],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
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
