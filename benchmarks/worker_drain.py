"""How many webhook jobs per second the job worker finishes, as deployed, on each store.

The acknowledgement goal (``bench_app.py``) needs the worker to keep up with the webhooks'
jobs: at 200 webhooks/s, 200 ``pull_closed`` jobs/s (the job a bot PR's closing causes:
record the outcome, release deferred work, queue a dashboard update). This enqueues
``--jobs`` of them at once, starts ``python -m github_app serve --worker-only --threads 2
--evolution-threads 1`` (tests/worker_process.py, as bench_app.py starts it) and times
the worker from its first finished job to its last: nothing else runs, so this is the
worker's own ceiling on this machine, not what it manages while the acknowledgements
take the CPU. ``--rate R`` instead queues the jobs one by one at R per second (as the
webhooks would, without the HTTP) and waits for the worker to finish them: the CPU per
job a worker that keeps up costs. Either way it reports the worker's CPU per job and, on
PostgreSQL, the server's (every process of it: the worker's backend, the WAL writer, ...,
and the backend of this process, which queues the jobs): on one machine both come out of
the CPU the acknowledgements need. Run from the repository root (ROOT: another
checkout's App to measure, e.g. the main branch's, for a before/after in one run):

    .venv/bin/python benchmarks/worker_drain.py --store postgresql [--jobs 2000] [ROOT ...]
    .venv/bin/python benchmarks/worker_drain.py --store postgresql --rate 200 --jobs 3000 [ROOT ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, all its threads together (the kernel's per-process
    CPU clock, as the sandbox reads it)."""
    from pytest_aina.sandbox.parent import procs

    return procs.process_cpu_ns(pid) / 1e9


def _server_cpu_seconds(server) -> float:
    """CPU time of the PostgreSQL server so far: the postmaster and every process below it,
    with the children each has reaped (a backend whose connection closed)."""
    if server is None:
        return 0.0
    from pytest_aina.sandbox.parent import procs

    pid = int((server.data / "postmaster.pid").read_text().split()[0])
    return sum(procs.tree_cpu_ns(procs.descendants(pid)).values()) / 1e9


def _job(i: int):
    from bench_app import INSTALLATION, REPO

    from github_app.store import JobSpec

    # a bot PR closed by a person (bench_app.py's webhooks say merged, which reads the PR once more)
    return JobSpec(
        "pull_closed",
        {"repository": REPO, "installation_id": INSTALLATION, "number": i, "merged": False, "by": "m"},
        key=f"pull_closed:{REPO}:{i}",
        repository=REPO,
    )


def drain(
    root: Path, store_kind: str, jobs: int, nice: int | None, work: Path, db: str, server=None, rate: float = 0.0
) -> dict:
    from bench_app import INSTALLATION, REPO, SECRET, stop
    from worker_process import app_env, offline_settings, start_worker_process

    from github_app.store import open_store

    store = open_store(db)
    store.upsert_installation(INSTALLATION, "bench", True)
    store.upsert_repository(REPO, INSTALLATION, default_branch="main")
    if not rate:
        store.enqueue([_job(i) for i in range(1, jobs + 1)])
    settings = offline_settings(work / "app.pem", db, SECRET)
    if nice is not None:
        settings["WORKER_NICE"] = str(nice)
    worker = start_worker_process(
        app_env(settings, root), work / "worker.log", threads=2, evolution_threads=1, root=root
    )
    first = last = cpu_first = cpu_last = None
    done_at_first = 0
    deadline = time.monotonic() + 600
    try:
        if rate:  # the worker started and idle first, then the jobs at the rate
            time.sleep(3)
            first, cpu_first, server_first = time.monotonic(), _cpu_seconds(worker.pid), _server_cpu_seconds(server)
            for i in range(1, jobs + 1):
                time.sleep(max(0.0, first + i / rate - time.monotonic()))
                store.enqueue([_job(i)])
        while time.monotonic() < deadline:
            done = store.job_counts().get(("pull_closed", "done"), 0)
            now = time.monotonic()
            if done and first is None:
                first, done_at_first, cpu_first = now, done, _cpu_seconds(worker.pid)
                server_first = _server_cpu_seconds(server)
            if done == jobs:
                last, cpu_last, server_last = now, _cpu_seconds(worker.pid), _server_cpu_seconds(server)
                break
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited: {(work / 'worker.log').read_text()[-2000:]}")
            time.sleep(0.05)
    finally:
        stop(worker)
        store.close()
    if last is None or last == first:
        return {"root": str(root), "store": store_kind, "jobs": jobs, "jobs_per_s": None, "finished": False}
    return {
        "root": str(root),
        "store": store_kind,
        "jobs": jobs,
        "jobs_per_s": (jobs - done_at_first) / (last - first),
        "seconds": last - first,
        # the worker process's own CPU per job (the database server's is not counted): at
        # 200 jobs/s the worker needs 200 times this of the machine's CPU
        "worker_cpu_ms_per_job": 1000 * (cpu_last - cpu_first) / (jobs - done_at_first),
        # the database server's, on PostgreSQL (the backend queueing the jobs included)
        "server_cpu_ms_per_job": 1000 * (server_last - server_first) / (jobs - done_at_first) if server else None,
        "rate": rate or None,
        "load_average": os.getloadavg()[0],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="*", type=Path, help="checkouts whose App to measure, in turn (this one)")
    p.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="the App's database (sqlite)")
    p.add_argument("--jobs", type=int, default=2000, help="pull_closed jobs to drain (2000)")
    p.add_argument("--rounds", type=int, default=1, help="rounds over the checkouts, interleaved (1)")
    p.add_argument("--worker-nice", type=int, metavar="N", help="the worker's AINA_WORKER_NICE (the App's)")
    p.add_argument(
        "--rate", type=float, default=0.0, help="queue the jobs one by one at this many per second (0: all at once)"
    )
    args = p.parse_args(argv)
    roots = [r.resolve() for r in args.roots] or [ROOT]
    for r in roots:
        if not (r / "github_app").is_dir():
            p.error(f"{r} is not a checkout of pytest-aina (no github_app/ in it)")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # This checkout's helpers; the App (and its store) is imported from this checkout too,
    # to set up the database: each root's own App runs in the worker process.
    sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "tests")]
    server = None
    if args.store == "postgresql":
        from postgres_server import PostgresServer

        server = PostgresServer(durable=True).start()
    try:
        for r in range(args.rounds):
            for i, root in enumerate(roots):
                work = Path(tempfile.mkdtemp(prefix="aina-drain-"))
                (work / "app.pem").write_bytes(pem)
                if server is not None:
                    db = server.create_database(f"drain{r}x{i}")
                else:
                    db = str(work / "aina.sqlite3")
                out = drain(root, args.store, args.jobs, args.worker_nice, work, db, server, args.rate)
                rate = (
                    "did not finish"
                    if out["jobs_per_s"] is None
                    else f"{out['jobs_per_s']:.0f} jobs/s, worker CPU {out['worker_cpu_ms_per_job']:.2f} ms per job"
                    + (
                        f", server CPU {out['server_cpu_ms_per_job']:.2f} ms per job"
                        if out["server_cpu_ms_per_job"] is not None
                        else ""
                    )
                )
                print(
                    f"round {r + 1} {args.store} {root}: {rate} ({args.jobs} pull_closed jobs), "
                    f"load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
