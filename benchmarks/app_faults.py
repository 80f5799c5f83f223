"""Put the App, as deployed, under faults while it takes webhooks and telemetry, and count
what happened to every request.

The App runs as the docs deploy it (gunicorn with ``github_app.web.gunicorn_config``, 2
workers x 8 threads, and ``python -m github_app serve --worker-only``) on loopback. A load
process sends webhooks (a dashboard edit: one job per delivery, keyed by the delivery id)
at ``--rate`` and telemetry batches twice a second; a request that fails (a 5xx, no answer
within GitHub's 10 s, a dropped connection) is sent again, same delivery id or same body,
up to three times, two seconds apart, as GitHub's redelivery and a retrying sender would.
A poller asks ``/readyz`` (and ``/healthz``) every half second. Each scenario then reads
the database and reports:

* acknowledged: deliveries (telemetry windows) answered 2xx at least once;
* stored: of those sent, the ones in the database; lost: acknowledged and not stored;
* duplicated: deliveries or windows stored twice, jobs enqueued twice for one delivery;
* answers by status (5xx by cause: 503 = the store said retry, 500 = a bug, ``timeout`` =
  no answer within 10 s, ``conn`` = connection refused or dropped), the slowest answer;
* ``/readyz`` and ``/healthz`` during the fault: statuses and the slowest answer.

Scenarios (``--only NAME`` to run some): ``baseline``; ``kill9`` (kill -9 a gunicorn
worker three times and the job worker once, restarting it); ``lock`` (another process
holds the database's write lock for 15 s, longer than every deadline); ``disk_full`` (the
database on a 6 MiB tmpfs that a file then fills, freed after 8 s; needs root to mount);
``stalled`` (16 clients that send headers and half a body, then nothing, re-opened as they
are cut). Everything stays on loopback and each loop is bounded. Run from the repository root:

    .venv/bin/python benchmarks/app_faults.py --json faults.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # worker_process: the job worker's environment and start

import bench_app  # noqa: E402  (gunicorn start/stop, shared with the latency benchmark)

SECRET = bench_app.SECRET
INSTALLATION, REPO = bench_app.INSTALLATION, bench_app.REPO
DEADLINE = 10.0  # GitHub gives up on a delivery after 10 s


# -- load ------------------------------------------------------------------------------------
class Load:
    """Webhooks at ``rate`` and telemetry batches, each retried up to three times."""

    def __init__(self, url: str, rate: float, duration: float):
        self.host, self.port = url.removeprefix("http://").split(":")
        self.rate, self.duration = rate, duration
        self.lock = threading.Lock()
        self.answers: dict[str, int] = {}
        self.slowest = 0.0
        self.acked: set[str] = set()
        self.sent: set[str] = set()
        self.windows_acked: set[str] = set()
        self.windows_sent: set[str] = set()

    def _count(self, what: str, seconds: float) -> None:
        with self.lock:
            self.answers[what] = self.answers.get(what, 0) + 1
            self.slowest = max(self.slowest, seconds)

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> int | str:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=DEADLINE)
        started = time.monotonic()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status: int | str = response.status
        except TimeoutError:
            status = "timeout"
        except (OSError, http.client.HTTPException):
            status = "conn"
        finally:
            conn.close()
        self._count(str(status), time.monotonic() - started)
        return status

    def webhook(self, n: int) -> None:
        guid = f"fault-{n}-{uuid.uuid4().hex[:8]}"
        body = json.dumps(
            {
                "action": "edited",
                "installation": {"id": INSTALLATION},
                "repository": {"full_name": REPO},
                "issue": {"number": 1, "labels": [{"name": "aina-dashboard"}]},
                "sender": {"login": "maintainer", "type": "User"},
            }
        ).encode()
        headers = {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": guid,
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        }
        with self.lock:
            self.sent.add(guid)
        for _ in range(4):
            status = self._post("/webhook", body, headers)
            if isinstance(status, int) and 200 <= status < 300:
                with self.lock:
                    self.acked.add(guid)
                return
            if isinstance(status, int) and status < 500:
                return  # a 4xx is final
            time.sleep(2.0)

    def telemetry(self, n: int) -> None:
        from github_app.store import window_digest
        from github_app.web.telemetry import telemetry_secret
        from pytest_aina.telemetry.window import Latency, Window
        from pytest_aina.telemetry.wire import encode_batch

        start = 1_780_000_000.0 + 600 * n
        windows = [
            Window(
                start=start + 60 * i,
                end=start + 60 * i + 60,
                service="svc",
                kernel="softmax",
                variant="generic",
                dims=(("M", n), ("N", i + 1)),
                dtype="float16",
                device="H100",
                arch="sm_90",
                calls=10,
                time_s=1e-3,
                latency=Latency(1e-4, 1e-4, 1e-4, 1e-4, 1e-4),
            )
            for i in range(5)
        ]
        digests = {window_digest(w.as_dict()) for w in windows}
        body = encode_batch(windows)
        key = telemetry_secret(SECRET, INSTALLATION).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Aina-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        }
        with self.lock:
            self.windows_sent |= digests
        for _ in range(4):
            status = self._post(f"/telemetry?installation={INSTALLATION}&repository={REPO}", body, headers)
            if status in (202, 409):  # 409: stored by an earlier attempt
                with self.lock:
                    self.windows_acked |= digests
                return
            if isinstance(status, int) and status < 500:
                return
            time.sleep(2.0)

    def run(self) -> None:
        threads: list[threading.Thread] = []
        started = time.monotonic()
        total = int(self.rate * self.duration)
        for n in range(total):
            delay = started + n / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            threads = [t for t in threads if t.is_alive()]
            if len(threads) < 256:  # bounded: a stuck App cannot make this unbounded
                t = threading.Thread(target=self.webhook, args=(n,), daemon=True)
                t.start()
                threads.append(t)
            if n % max(1, int(self.rate / 2)) == 0:
                t = threading.Thread(target=self.telemetry, args=(n,), daemon=True)
                t.start()
                threads.append(t)
        for t in threads:
            t.join(4 * (DEADLINE + 2.0))


class Poller:
    """GET /readyz and /healthz every half second: statuses and the slowest answer."""

    def __init__(self, url: str):
        self.url = url
        self.stop = threading.Event()
        self.seen: dict[str, dict[str, int]] = {"/readyz": {}, "/healthz": {}}
        self.slowest = {"/readyz": 0.0, "/healthz": 0.0}
        self.problems: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        while not self.stop.wait(0.5):
            for path in self.seen:
                conn = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
                started = time.monotonic()
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    data = response.read()
                    status = str(response.status)
                    if path == "/readyz" and response.status != 200:
                        problem = json.loads(data).get("problems", ["?"])[0][:90]
                        if problem not in self.problems:
                            self.problems.append(problem)
                except TimeoutError:
                    status = "timeout"
                except (OSError, http.client.HTTPException, ValueError):
                    status = "conn"
                finally:
                    conn.close()
                self.seen[path][status] = self.seen[path].get(status, 0) + 1
                self.slowest[path] = max(self.slowest[path], time.monotonic() - started)


# -- the deployment ----------------------------------------------------------------------------
class Deployment:
    def __init__(self, folder: Path, args, extra_env: dict[str, str] | None = None):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        from github_app.store import SQLiteStore

        self.folder, self.args = folder, args
        key = folder.parent / f"{folder.name}.pem"
        key.write_bytes(
            rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.db = folder / "aina.sqlite3"
        from worker_process import app_env, offline_settings

        self.env = app_env(
            offline_settings(key, str(self.db), SECRET, RETRY_BASE_SECONDS="30"),
            ROOT,
        )
        self.env.update(extra_env or {})
        store = SQLiteStore(self.db)
        store.upsert_installation(INSTALLATION, "faults", True)
        store.upsert_repository(REPO, INSTALLATION, default_branch="main")
        store.update_repository(REPO, dashboard_issue=1)
        store.close()
        self.web, self.url = bench_app.start_gunicorn("github_app:create_app()", self.env, args)
        self.worker = self.start_worker()
        self.wait_ready()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until /readyz says 200 (both gunicorn workers and the job worker have opened the
        database): a fault must meet a running App, not a starting one."""
        host, port = self.url.removeprefix("http://").split(":")
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < 4:  # a few in a row, so both gunicorn workers have answered
            if time.monotonic() > deadline:
                raise RuntimeError("the App did not become ready")
            conn = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
            try:
                conn.request("GET", "/readyz")
                ready = ready + 1 if conn.getresponse().status == 200 else 0
            except (OSError, http.client.HTTPException):
                ready = 0
            finally:
                conn.close()
            time.sleep(0.25)

    def start_worker(self) -> subprocess.Popen:
        return bench_app.start_job_worker(self.env, self.folder.parent / f"{self.folder.name}-worker.log")

    def gunicorn_workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.web.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def close(self) -> None:
        bench_app.stop(self.web)
        bench_app.stop(self.worker)


def account(db: Path, load: Load) -> dict:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stored = {g for (g,) in con.execute("SELECT guid FROM deliveries WHERE guid LIKE 'fault-%'")}
        rows = con.execute("SELECT COUNT(*) FROM deliveries WHERE guid LIKE 'fault-%'").fetchone()[0]
        jobs: dict[str, int] = {}
        for (key,) in con.execute("SELECT key FROM jobs WHERE kind = 'dashboard_edit'"):
            guid = key.rsplit(":", 1)[1]
            jobs[guid] = jobs.get(guid, 0) + 1
        windows = [d for (d,) in con.execute("SELECT digest FROM telemetry_windows")]
    finally:
        con.close()
    window_set = set(windows)
    return {
        "deliveries": {
            "sent": len(load.sent),
            "acknowledged": len(load.acked),
            "stored": len(stored & load.sent),
            "lost": len(load.acked - stored),
            "duplicated": rows - len(stored),
            "stored_without_a_job": len([g for g in stored if g not in jobs]),
            "jobs_enqueued_twice": sum(1 for n in jobs.values() if n > 1),
        },
        "telemetry_windows": {
            "sent": len(load.windows_sent),
            "acknowledged": len(load.windows_acked),
            "stored": len(window_set & load.windows_sent),
            "lost": len(load.windows_acked - window_set),
            "duplicated": len(windows) - len(window_set),
        },
    }


# -- the faults --------------------------------------------------------------------------------
def fault_kill9(dep: Deployment, duration: float) -> None:
    for i in range(3):
        time.sleep(duration / 5)
        pids = dep.gunicorn_workers()
        if pids:
            os.kill(pids[0], signal.SIGKILL)  # gunicorn starts another
        if i == 1:
            os.kill(dep.worker.pid, signal.SIGKILL)
            dep.worker.wait()
            dep.worker = dep.start_worker()


def fault_lock(dep: Deployment, duration: float) -> None:
    time.sleep(duration / 4)
    holder = sqlite3.connect(dep.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    time.sleep(15.0)
    holder.execute("ROLLBACK")
    holder.close()


def fault_disk_full(dep: Deployment, duration: float) -> None:
    time.sleep(duration / 4)
    filler = dep.folder / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    time.sleep(8.0)
    filler.unlink()


def fault_stalled(dep: Deployment, duration: float) -> None:
    host, port = dep.url.removeprefix("http://").split(":")
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\n"
        b"X-GitHub-Delivery: stalled\r\nContent-Length: 1000\r\n\r\n" + b"{" * 500
    )
    end = time.monotonic() + duration * 0.75
    time.sleep(duration / 8)
    clients: list[socket.socket] = []
    try:
        while time.monotonic() < end:
            clients = [c for c in clients if c.fileno() != -1]
            while len(clients) < 16:
                c = socket.create_connection((host, int(port)), timeout=30)
                c.sendall(head)
                c.setblocking(False)
                clients.append(c)
            time.sleep(0.05)
            for c in clients:  # a cut client opens again
                try:
                    if c.recv(4096) == b"":
                        c.close()
                except BlockingIOError:
                    pass
                except OSError:
                    c.close()
    finally:
        for c in clients:
            c.close()


FAULTS = {
    "baseline": None,
    "kill9": fault_kill9,
    "lock": fault_lock,
    "disk_full": fault_disk_full,
    "stalled": fault_stalled,
}


def run_scenario(name: str, args, work: Path) -> dict:
    folder = work / name
    folder.mkdir()
    mounted = False
    if name == "disk_full":
        if (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)], capture_output=True
            ).returncode
            != 0
        ):
            return {"skipped": "mount -t tmpfs failed here (not root?)"}
        mounted = True
    try:
        dep = Deployment(folder, args)
        try:
            load, poller = Load(dep.url, args.rate, args.duration), Poller(dep.url)
            poller.thread.start()
            fault = FAULTS[name]
            side = threading.Thread(target=fault, args=(dep, args.duration), daemon=True) if fault else None
            if side:
                side.start()
            load.run()
            if side:
                side.join(60)
            time.sleep(1.0)
            poller.stop.set()
            poller.thread.join(DEADLINE + 1)
        finally:
            dep.close()
        result = account(dep.db, load)
        result["answers"] = dict(sorted(load.answers.items()))
        result["slowest_answer_s"] = round(load.slowest, 2)
        result["readyz"] = {
            "statuses": poller.seen["/readyz"],
            "slowest_s": round(poller.slowest["/readyz"], 2),
            "problems": poller.problems,
        }
        result["healthz"] = {"statuses": poller.seen["/healthz"], "slowest_s": round(poller.slowest["/healthz"], 2)}
        return result
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=20.0, help="webhooks per second (20)")
    p.add_argument("--duration", type=float, default=24.0, help="seconds of load each (24)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    p.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (8)")
    p.add_argument("--only", nargs="*", choices=list(FAULTS), help="these scenarios only")
    p.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="aina-faults-"))
    results = {}
    for name in args.only or list(FAULTS):
        load_before = os.getloadavg()[0]
        results[name] = run_scenario(name, args, work)
        results[name]["load_average_1m"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
        print(f"== {name}: {json.dumps(results[name])}", flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "args": vars(args), "cpus": os.cpu_count()}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
