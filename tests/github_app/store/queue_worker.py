"""A worker process for the store's multi-process tests (``python queue_worker.py DATABASE
NAME LEASE``): the claim, work, complete cycle of :class:`github_app.worker.Worker`, on the
store ``open_store`` opens for the App's ``DATABASE`` setting, with no GitHub behind it.

Job kinds: ``work`` sleeps ``payload["work"]`` seconds on its first attempt (so a test can
kill the process holding it) and, with ``payload["then"]``, completes with a ``child``
follow-up and a ``publish`` for hypothesis ``payload["hyp"]``; ``publish`` opens the
hypothesis's PR (a row in ``pulls``) or updates the open one, as the App's publish job does.
Prints the id of every job it completed, and exits once nothing is queued or running.
"""

from __future__ import annotations

import sys
import time

from github_app.store import JobSpec, StoreUnavailable, open_store

REPO = "octo-org/kernels"


def publish_job(hyp: str) -> JobSpec:
    return JobSpec("publish", {"hyp": hyp}, key=f"publish:{REPO}:{hyp}", repository=REPO)


def run(store, job, name: str) -> list[JobSpec]:
    if job.kind == "work":
        if job.attempts == 1:
            time.sleep(job.payload.get("work", 0.0))
        if job.payload.get("then"):
            return [JobSpec("child", {"parent": job.id}), publish_job(job.payload["hyp"])]
    elif job.kind == "publish":
        hyp = job.payload["hyp"]
        link = store.open_pull(REPO, hyp)
        number = link["number"] if link else job.id  # a new PR gets a number of its own
        store.save_pull(
            REPO, hyp, number, f"aina/k/{hyp}", head_sha=f"sha-{job.id}", title=hyp, kernel="k", change={"by": name}
        )
    return []


def main(database: str, name: str, lease: float) -> int:
    store = open_store(database)
    while True:
        try:
            job = store.claim(["default"], name, lease)
            if job is None:
                if not any(state in ("queued", "running") for _, state in store.job_counts()):
                    return 0
                time.sleep(0.01)
                continue
            follow_up = run(store, job, name)
            if store.complete(job.id, name, {"by": name}, follow_up):
                print(job.id, flush=True)
        except StoreUnavailable as exc:  # as the App's worker does: wait and go on
            print(f"unavailable: {exc}", file=sys.stderr, flush=True)
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
