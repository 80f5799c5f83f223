"""The App's job worker as its own process, started the way a deployment starts it:
``python -m github_app serve --worker-only``, configured only through ``AINA_*``
environment variables.

One home for the tests (``tests/github_app/app_helpers.py``, the store's process tests)
and the benchmarks (``benchmarks/bench_app.py``, ``app_ack_waits.py``, ``app_faults.py``,
``worker_drain.py``; their offline settings: :func:`offline_settings`), which all run it
next to an App: the settings they pass differ (a test's short lease and fast polling), how
the process is made does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def offline_settings(key: Path, db: str, secret: str, **extra: object) -> dict[str, object]:
    """The App's settings for a run that reaches no GitHub (the benchmarks): ``key`` signs,
    ``db`` stores, and every GitHub call fails at once on a closed port. Its job is retried
    by the queue, not inside the job: with the client's own retries (5, backing off) the
    start-up jobs held the worker threads for seconds, and how many of the webhooks' jobs
    the worker ran (the write traffic measured against) varied from run to run."""
    return {
        "APP_ID": "1",
        "PRIVATE_KEY": str(key),
        "WEBHOOK_SECRET": secret,
        "DATABASE": db,
        "GITHUB_API_URL": "http://127.0.0.1:9/api/v3",
        "HTTP_RETRIES": "0",
        **extra,
    }


def app_env(settings: Mapping[str, object], root: Path = ROOT) -> dict[str, str]:
    """This process's environment without any ``AINA_*`` variable of its own (a developer's
    shell must not leak into the run), then ``AINA_<KEY>`` for each of ``settings``, and
    ``root`` first on ``PYTHONPATH`` so the child imports this checkout's App."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AINA_")}
    env.update({f"AINA_{key}": str(value) for key, value in settings.items()})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    return env


def start_worker_process(
    env: Mapping[str, str],
    log: Path,
    *,
    threads: int,
    evolution_threads: int,
    root: Path = ROOT,
    extra: Sequence[str] = (),
) -> subprocess.Popen:
    """``python -m github_app serve --worker-only --threads T --evolution-threads E`` (and
    ``extra`` arguments) with ``env`` (see :func:`app_env`), its output in ``log``; the
    process."""
    with Path(log).open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "github_app",
                "serve",
                "--worker-only",
                "--threads",
                str(threads),
                "--evolution-threads",
                str(evolution_threads),
                *extra,
            ],
            env=dict(env),
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
