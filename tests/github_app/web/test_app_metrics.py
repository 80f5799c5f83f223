"""/metrics across processes: gunicorn's workers and the job worker share
PROMETHEUS_MULTIPROC_DIR, and one scrape of any worker gives the totals of all of them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import requests
from app_helpers import WEBHOOK_SECRET, serve_gunicorn, sign


def _total(text: str, series: str) -> float:
    m = re.search(re.escape(series) + r" ([0-9.e+]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def test_one_scrape_sums_every_gunicorn_worker_and_the_job_worker(app_key, tmp_path):
    key = tmp_path / "app.pem"
    key.write_text(app_key[0])
    metrics_dir = tmp_path / "metrics"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    env.update(
        {
            "AINA_APP_ID": "1",
            "AINA_PRIVATE_KEY": str(key),
            "AINA_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "AINA_DATABASE": str(tmp_path / "m.db"),
            "AINA_GITHUB_API_URL": "http://127.0.0.1:9/api/v3",
            "AINA_HTTP_RETRIES": "0",
            "AINA_RETRY_BASE_SECONDS": "60",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    )
    # The job worker: its first jobs (sync, redeliver) fail against a GitHub that is not
    # there and are counted as retries, in this other process.
    worker = subprocess.Popen(
        [sys.executable, "-m", "github_app", "serve", "--worker-only", "--evolution-threads", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with serve_gunicorn(env, workers=2, threads=2) as web:
            url = web.url
            body = b'{"zen": "Practicality beats purity."}'
            sent = 0
            for i in range(40):  # a connection each, so both workers take some
                try:
                    r = requests.post(
                        url + "/webhook",
                        data=body,
                        timeout=10,
                        headers={
                            "X-GitHub-Event": "ping",
                            "X-GitHub-Delivery": f"m-{i}",
                            "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body),
                            "Connection": "close",
                        },
                    )
                except requests.ConnectionError:  # a worker still booting
                    time.sleep(0.1)
                    continue
                assert r.status_code == 200
                sent += 1
            assert sent > 20
            deadline = time.monotonic() + 60
            while True:
                text = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text
                if _total(text, 'aina_job_runs_total{kind="sync",result="retry"}') >= 1:
                    break
                assert time.monotonic() < deadline, "the job worker's counts never showed"
                time.sleep(0.2)
            for _ in range(6):  # whichever worker answers, the same totals
                text = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text
                assert _total(text, 'aina_webhooks_total{event="ping",outcome="ignored"}') == sent
            pids = {p.name.split("_")[1] for p in metrics_dir.glob("counter_*.db")}
            assert len(pids) >= 3, pids  # two gunicorn workers and the job worker
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        finally:
            if worker.poll() is None:
                worker.kill()
