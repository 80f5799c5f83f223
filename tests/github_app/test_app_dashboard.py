"""The dashboard shows why a hot kernel got no hypothesis: the Reasoner's left-alone list,
from the App's bridge (the real Reasoner on the committed sample day, with this
repository's specs and dispatch tables), kept in the store and drawn by the dashboard job
on the GitHub fake."""

from __future__ import annotations

import json
from pathlib import Path

from app_helpers import drain

from github_app import bridge
from github_app.jobs import dashboard_job
from github_app.jobs.dashboard_updates import left_alone, save_left_alone

ROOT = Path(__file__).resolve().parents[2]
REPO = "octo-org/kernels"


def test_the_dashboard_says_why_a_hot_kernel_is_left_alone(fake, app, onboarded):
    repo, inst = onboarded
    store = app.services.store
    lines = (ROOT / "telemetry" / "sample-fleet-day.jsonl").read_text().splitlines()
    report, _ = bridge.reasoner_report(list(enumerate(json.loads(x) for x in lines)), ROOT)
    softmax = next(x for x in report.left_alone if x.kernel == "softmax")
    assert softmax.share > 0.3 and not [h for h in report.hypotheses if h.kernel == "softmax"]

    assert left_alone(store, REPO) == []
    save_left_alone(store, REPO, report.left_alone)
    assert left_alone(store, REPO) == [x.to_json() for x in report.left_alone]
    store.enqueue([dashboard_job(REPO, inst.id)])
    drain(app.services)
    body = repo.issues[store.repository(REPO)["dashboard_issue"]].body
    assert "## Hot kernels left alone, and why" in body
    line = next(x for x in body.splitlines() if x.startswith("- `softmax` ("))
    assert line.startswith(f"- `softmax` ({softmax.share:.0%} of GPU time, ")
    assert f"): {softmax.detail.split(';')[0]}" in line and softmax.reason in line

    # the next reason job's list replaces it: a kernel no longer left alone leaves the dashboard
    save_left_alone(store, REPO, [])
    store.enqueue([dashboard_job(REPO, inst.id)])
    drain(app.services)
    body = repo.issues[store.repository(REPO)["dashboard_issue"]].body
    assert "left alone" not in body and "- `softmax` (" not in body
