"""Measure the GitHub App's HTTP side on loopback.

* Webhook acknowledgement: latency (p50, p99) and throughput of ``POST /webhook`` for a
  handled event (a bot PR closed: signature, parse, redelivery check, routing, and one
  durable SQLite transaction with the delivery and its job), against a bare Flask endpoint
  that only answers 200, served the same way in the same run; the ratio is the App's cost.
* Telemetry: windows durably stored per second through ``POST /telemetry`` (signed
  batches, validated against the wire format, committed with fsync before the 202).

Both servers are gunicorn (``--workers 1 --threads 8``, the same for both); the load comes
from a second process (this script with ``--generate``) with concurrent keep-alive
connections. Run from the repository root:

    .venv/bin/python benchmarks/bench_app.py                  # defaults below
    .venv/bin/python benchmarks/bench_app.py --requests 4000 --concurrency 8 --batch 500

It prints a table and writes the figures as JSON with the machine and the versions
(``--json FILE``). Nothing here is asserted: this is a measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
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
SECRET = "bench-webhook-secret"
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


# -- the load generator (second process) -------------------------------------------------------
def generate(url: str, kind: str, requests_total: int, concurrency: int, batch: int,
             warmup: int) -> dict:
    import requests

    sys.path.insert(0, str(ROOT))
    from github_app.web.telemetry import telemetry_secret

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(10**9))
    tsecret = telemetry_secret(SECRET, INSTALLATION).encode()

    def webhook_request(n: int):
        body = json.dumps({"action": "closed", "number": n % 1000 + 1,
                           "installation": {"id": INSTALLATION},
                           "repository": {"full_name": REPO},
                           "pull_request": {"number": n % 1000 + 1, "merged": True,
                                            "head": {"ref": "aina/softmax/x"},
                                            "merged_by": {"login": "m"}},
                           "sender": {"login": "m"}}).encode()
        return "/webhook", body, {
            "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body,
                                                        hashlib.sha256).hexdigest()}

    def telemetry_request(n: int):
        body = json.dumps({"aina_telemetry": 1, "batch_id": f"{n:016x}{uuid.uuid4().hex[:8]}",
                           "windows": [_window(n * batch + i) for i in range(batch)]},
                          separators=(",", ":")).encode()
        return (f"/telemetry?installation={INSTALLATION}&repository={REPO}", body, {
            "Content-Type": "application/json",
            "X-Aina-Signature-256": "sha256=" + hmac.new(tsecret, body,
                                                        hashlib.sha256).hexdigest()})

    make = webhook_request if kind == "webhook" else telemetry_request
    # Bodies are built before the clock starts: the generator must not be what is measured.
    prepared = [make(n) for n in range(requests_total + warmup)]

    def worker():
        session = requests.Session()
        while True:
            with lock:
                n = next(counter)
            if n >= len(prepared):
                return
            path, body, headers = prepared[n]
            t0 = time.perf_counter()
            r = session.post(url + path, data=body, headers=headers, timeout=60)
            dt = time.perf_counter() - t0
            with lock:
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if n >= warmup:
                    latencies.append(dt)

    # warm-up requests go first, serially, so every connection path is hot
    for n in range(warmup):
        path, body, headers = prepared[n]
        requests.post(url + path, data=body, headers=headers, timeout=60)
    counter = iter(range(warmup, len(prepared)))
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(latencies), "wall_s": wall, "statuses": statuses,
            "throughput_rps": len(latencies) / wall,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "mean_ms": 1000 * statistics.fmean(latencies)}


def _window(i: int) -> dict:
    start = 1_780_000_000 + 60 * i
    t = lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))  # noqa: E731
    return {"aina_telemetry": 1, "start": t(start), "end": t(start + 60),
            "service": f"svc-{i % 7}", "kernel": "softmax", "variant": "generic",
            "dims": {"M": 1 + i % 4096, "N": 4096}, "dtype": "float16",
            "device": {"name": "NVIDIA H100 80GB HBM3", "arch": "sm_90"}, "calls": 1000,
            "time_s": 0.1, "latency_s": {"min": 8e-5, "p50": 1e-4, "p90": 1.1e-4,
                                         "p99": 1.3e-4, "max": 2e-4}}


# -- servers -----------------------------------------------------------------------------------
def start_gunicorn(target: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1",
         "--worker-class", "gthread", "--threads", "8", "--keep-alive", "30",
         "--chdir", str(HERE), "--pythonpath", str(ROOT), target],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = None
    for line in proc.stdout:
        m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
        if m:
            url = m.group(1)
        if "Booting worker" in line:
            break
    if url is None:
        proc.kill()
        raise RuntimeError(f"gunicorn {target} did not start")
    # keep reading its output so a full pipe never blocks the server
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_load(url: str, kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--generate", url, "--kind", kind,
           "--requests", str(args.requests if kind == "webhook" else args.batches),
           "--concurrency", str(args.concurrency), "--batch", str(args.batch),
           "--warmup", str(args.warmup if kind == "webhook" else 2)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=3000, help="webhooks per server (3000)")
    p.add_argument("--concurrency", type=int, default=8, help="client connections (8)")
    p.add_argument("--batches", type=int, default=60, help="telemetry batches (60)")
    p.add_argument("--batch", type=int, default=500, help="windows per batch (500)")
    p.add_argument("--warmup", type=int, default=50, help="untimed requests first (50)")
    p.add_argument("--json", metavar="FILE", help="also write the figures here")
    p.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--kind", default="webhook", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.generate:
        print(json.dumps(generate(args.generate, args.kind, args.requests, args.concurrency,
                                  args.batch, args.warmup)))
        return 0

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    work = Path(tempfile.mkdtemp(prefix="aina-bench-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (work / "app.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    db = work / "aina.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    env.update({"AINA_APP_ID": "1", "AINA_PRIVATE_KEY": str(work / "app.pem"),
                "AINA_WEBHOOK_SECRET": SECRET, "AINA_DATABASE": str(db),
                "AINA_GITHUB_API_URL": "http://127.0.0.1:9/api/v3",
                "AINA_TELEMETRY_MAX_BYTES": str(64 * 1024 * 1024)})
    sys.path.insert(0, str(ROOT))
    from github_app.store import SQLiteStore

    store = SQLiteStore(db)
    store.upsert_installation(INSTALLATION, "bench", True)
    store.upsert_repository(REPO, INSTALLATION, default_branch="main")
    store.close()

    results = {}
    bare, bare_url = start_gunicorn("bench_app:bare_app()", env)
    try:
        results["bare_flask"] = run_load(bare_url, "webhook", args)
    finally:
        stop(bare)
    app, app_url = start_gunicorn("github_app:create_app()", env)
    try:
        results["app_webhook"] = run_load(app_url, "webhook", args)
        results["app_telemetry"] = run_load(app_url, "telemetry", args)
    finally:
        stop(app)
    check = SQLiteStore(db)
    stored = check.telemetry_summary(REPO)["windows"]
    check.close()

    b, a, t = results["bare_flask"], results["app_webhook"], results["app_telemetry"]
    windows_per_s = t["requests"] * args.batch / t["wall_s"]
    summary = {
        "webhook_p50_ms": a["p50_ms"], "webhook_p99_ms": a["p99_ms"],
        "webhook_rps": a["throughput_rps"], "bare_p50_ms": b["p50_ms"],
        "bare_p99_ms": b["p99_ms"], "bare_rps": b["throughput_rps"],
        "p50_ratio": a["p50_ms"] / b["p50_ms"], "p99_ratio": a["p99_ms"] / b["p99_ms"],
        "throughput_ratio": a["throughput_rps"] / b["throughput_rps"],
        "telemetry_windows_per_s": windows_per_s, "telemetry_windows_stored": stored,
        "telemetry_batch_p50_ms": t["p50_ms"], "telemetry_batch_p99_ms": t["p99_ms"],
    }
    meta = {"machine": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average_at_end": os.getloadavg(), "args": vars(args)}
    print(f"{'':28}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}   statuses")
    for name, r in results.items():
        print(f"{name:28}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}{r['throughput_rps']:9.0f}   "
              f"{r['statuses']}")
    print(f"App/bare: p50 x{summary['p50_ratio']:.2f}, p99 x{summary['p99_ratio']:.2f}, "
          f"throughput x{summary['throughput_ratio']:.2f}")
    print(f"Telemetry: {windows_per_s:,.0f} windows/s durably stored "
          f"({args.batch} per batch; {stored} rows in the store)")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "results": results,
                                               "meta": meta}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
