"""After the merge, end to end on the fake through the real queue: the PR's claim recorded at
merge; production telemetry (generated, with timestamps, posted signed to ``/telemetry``)
verified against it; slower than claimed -> one revert PR (the variant out of the dispatch
table, its generated tests gone, the spec's pinned examples kept) -> gate -> soak -> merged
-> the generic variant serves the calls again; as fast as claimed -> confirmed, no revert, the
track record in the dashboard and the next PR's body. A worker killed (kill -9) in the
verification or while opening the revert PR leaves one revert PR.

The PR itself comes from the publish job (the path from telemetry to a PR through the
Reasoner and an evolution run is ``test_app_end_to_end.py``'s, minutes long); the merge from
the gate's verdict and the soak (``test_app_merging.py``'s). Time: the merge is dated back
in the store (``merged_at``: hours ago), so hours of production telemetry can follow it
without a test that sleeps for hours; everything else runs as deployed.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from app_helpers import (
    WEBHOOK_SECRET,
    drain,
    kill_worker_when_held,
    make_change,
    publish,
    sign,
    start_worker,
    wait_until,
    window,
)
from test_app_merging import comments, run_due, verdict

from github_app.jobs import verification
from github_app.web.telemetry import telemetry_secret
from pytest_aina.runtime.dispatch import add_variant, parse_table
from pytest_aina.telemetry.wire import encode_batch

ROOT = Path(__file__).resolve().parents[2]
REPO = "octo-org/kernels"
VARIANT = "softmax_c1"
SHAPE = (("M", 4096), ("N", 50304))
CASE = "M=4096,N=50304,float16"
CLAIMED_S, CLAIMED_CI = 8.0e-5, [7.9e-5, 8.1e-5]
DEVICE = "NVIDIA H100 80GB HBM3"
# low risk merges after a 3.6 s soak; a claim is judged on whole hours (at least 6 windows,
# 100 calls) at 90% confidence, a margin of 5%
POLICY = (
    "automerge:\n  risk: [low]\n  min_age_hours: 0.001\n"
    "verify:\n  min_calls: 100\n  min_windows: 6\n  confidence: 0.9\n  noise: 0.05\n  max_days: 2\n"
)
SPEC = "name: softmax\nexamples:\n  - {M: 4096, N: 50304, dtype: float16}  # pinned by hyp-1: a hot shape\n"
TEST = "def test_softmax_c1_matches_the_reference():\n    assert True\n"


def table_with_variant(tmp_path) -> tuple[str, str]:
    """The repository's softmax table, and the same with the change's variant appended."""
    text = (ROOT / "kernels/variants/softmax.yaml").read_text()
    path = tmp_path / "softmax.yaml"
    path.write_text(text)
    entry = {
        "name": VARIANT,
        "function": "kernels.softmax:softmax_generic",
        "config": {"BLOCK_N": 4096, "num_warps": 8},
        "domain": {"dims": {"M": [4096, 8191], "N": [32768, None]}, "dtypes": ["float16"], "arch": ["sm_90"]},
        "evidence": {"device": DEVICE, "dims": {"M": 4096, "N": 50304}, "dtype": "float16", "latency_s": CLAIMED_S},
    }
    add_variant(path, entry, comment="added by aina: hypothesis hyp-1")
    return text, path.read_text()


def claiming_change(table: str, hypothesis: str = "hyp-1", variant: str = VARIANT) -> dict:
    """A change as the Changer writes it: the variant's dispatch entry, its generated tests,
    the spec's pinned example, and a statement claiming the variant's latency on an H100."""
    change = make_change(
        hypothesis,
        files={
            "kernels/variants/softmax.yaml": table,
            f"tests/evolved/test_{variant}.py": TEST.replace(VARIANT, variant),
            "specs/softmax.yaml": SPEC,
        },
    )
    statement = json.loads(change["files"][change["attestation"]])
    statement["predicate"].update(
        {
            "variant": {"name": variant, "kind": "config"},
            "device": {"kind": "cuda", "name": DEVICE, "gpu_evidence": True},
            "measurements": [
                {
                    "case": CASE,
                    "speedup": {"value": 1.25, "ci95": [1.2, 1.3]},
                    "after": {"median_s": CLAIMED_S, "ci95_s": CLAIMED_CI},
                }
            ],
            "candidates": [{"id": "c1", "role": "winner", "proposer": "llm"}],
        }
    )
    change["files"][change["attestation"]] = json.dumps(statement, indent=1)
    return change


def files_at(repo, sha: str) -> dict[str, str]:
    git = repo.git
    return {path: git.objects[blob][1].decode() for path, (_, blob) in git.flatten(git.commits[sha].tree).items()}


def merge_after_the_gate(fake, app, repo, pr) -> None:
    fake.complete_gate(repo, pr.head_sha, verdict(pr.head_sha))
    run_due(app.services)
    drain(app.services, timeout=30)  # the soak ends, the look again merges
    assert pr.merged_at is not None, comments(repo, pr)


def merged_claim(fake, app, inst, repo, tmp_path, *, setup: bool = True):
    """The claiming PR, published, gated, soaked and merged; its number. Its merge is then
    dated ten hours back (what a test cannot wait for)."""
    base_table, table = table_with_variant(tmp_path)
    if setup:
        files = {".github/aina.yml": POLICY, "kernels/variants/softmax.yaml": base_table, "specs/softmax.yaml": SPEC}
        fake.push(repo, files, "policy, table and spec", deliver=False)
    publish(app, inst, claiming_change(table))
    [pr] = [p for p in repo.pulls() if p.head_ref.endswith("hyp-1")]
    merge_after_the_gate(fake, app, repo, pr)
    return pr


def backdate(app, number: int, hours: float) -> float:
    merged_at = time.time() - hours * 3600
    with sqlite3.connect(app.services.config["DATABASE"]) as con:
        con.execute("UPDATE claims SET merged_at = ? WHERE repository = ? AND number = ?", (merged_at, REPO, number))
    return merged_at


def production(
    merged_at: float,
    ratio: float,
    hours: int = 9,
    variant: str = VARIANT,
    *,
    claimed_s: float = CLAIMED_S,
    kernel: str = "softmax",
    dims: tuple = SHAPE,
    dtype: str = "float16",
    arch: str = "sm_90",
) -> list:
    """Windows of ``variant`` at the claimed shape after the merge: three 20-minute windows an
    hour, each window's p50 at ``ratio`` times ``claimed_s`` (with a small spread)."""
    out = []
    first_hour = int(merged_at // 3600) + 1
    for h in range(hours):
        for k in range(3):
            start = (first_hour + h) * 3600 + 1200 * k
            p50 = claimed_s * ratio * (1 + 0.01 * ((h * 3 + k) % 5 - 2))
            w = replace(window(0), kernel=kernel, variant=variant, dims=dims, dtype=dtype, arch=arch,
                        start=float(start), end=float(start + 1200))  # fmt: skip
            lat = replace(w.latency, min=p50 * 0.9, p50=p50, p90=p50 * 1.1, p99=p50 * 1.3, max=p50 * 2)
            out.append(replace(w, latency=lat, calls=500, time_s=500 * p50))
    return out


def post_telemetry(app, inst, windows) -> None:
    body = encode_batch(windows)
    r = requests.post(
        f"{app.url}/telemetry",
        params={"installation": inst.id, "repository": REPO},
        data=body,
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "X-Aina-Signature-256": sign(telemetry_secret(WEBHOOK_SECRET, inst.id), body),
        },
    )
    assert r.status_code == 202, r.text


def dashboard(app, repo) -> str:
    return repo.issues[app.services.store.repository(REPO)["dashboard_issue"]].body


def test_slower_in_production_than_claimed_is_reverted_and_the_generic_variant_serves_again(
    fake, app, onboarded, tmp_path
):
    repo, inst = onboarded
    store = app.services.store
    pr = merged_claim(fake, app, inst, repo, tmp_path)
    claim = store.claim_of(REPO, pr.number)
    assert (claim["status"], claim["kernel"], claim["variant"], claim["proposer"], claim["device"]) == (
        "verifying",
        "softmax",
        VARIANT,
        "llm",
        DEVICE,
    )
    [shape] = claim["body"]["claims"]
    assert (shape["label"], shape["latency_s"], shape["latency_ci"]) == (CASE, CLAIMED_S, CLAIMED_CI)
    assert claim["body"]["hot_shapes"] == [CASE]
    assert f"#{pr.number}" in dashboard(app, repo) and "merged and verifying" in dashboard(app, repo)

    # production: 30% slower than claimed, nine whole hours since the merge
    merged_at = backdate(app, pr.number, 10)
    post_telemetry(app, inst, production(merged_at, 1.30))
    drain(app.services, timeout=60)

    claim = store.claim_of(REPO, pr.number)
    assert claim["status"] == "contradicted"
    v = claim["verification"]
    assert v["status"] == "contradicted" and v["shapes"][0]["ratio"] == pytest.approx(1.30, rel=0.02)
    reverts = [p for p in repo.pulls() if p.number != pr.number]
    assert len(reverts) == 1, [p.title for p in reverts]
    [revert] = reverts
    assert claim["revert_number"] == revert.number
    body = repo.issues[revert.number].body
    assert f"Reverts #{pr.number}" in body
    assert f"| {CASE} | 80.0 µs [79.0 µs, 81.0 µs] | 85.1 µs | 104.0 µs" in body  # claimed, threshold, measured
    ids = [int(r.rpartition("#")[2]) for r in v["shapes"][0]["refs"]]
    assert len(ids) == 27 and f"telemetry_windows #{min(ids)}–#{max(ids)}" in body
    files = files_at(repo, revert.head_sha)
    table = parse_table(files["kernels/variants/softmax.yaml"], "softmax.yaml")
    assert [x.name for x in table.variants] == ["generic"]
    assert f"tests/evolved/test_{VARIANT}.py" not in files
    assert files["specs/softmax.yaml"] == SPEC  # the pinned example stays
    assert revert.labels == ["aina", "kernel:softmax", "aina:rollback", "risk:low"]

    # the revert passes the gate like any change, soaks and merges on its own (risk low)
    merge_after_the_gate(fake, app, repo, revert)
    assert store.claim_of(REPO, pr.number)["status"] == "reverted"
    main = files_at(repo, repo.refs["refs/heads/main"])
    table = parse_table(main["kernels/variants/softmax.yaml"], "softmax.yaml")
    assert table.select({"M": 4096, "N": 50304}, "float16", "sm_90").name == "generic"
    assert VARIANT not in main["kernels/variants/softmax.yaml"]
    board = dashboard(app, repo)
    assert "contradicted and reverted" in board and "0 of 1 earlier claims for softmax held" in board

    # looking again (the hourly schedule, redelivered telemetry) opens nothing more
    post_telemetry(app, inst, production(merged_at, 1.30, hours=10)[-3:])
    store.enqueue([verification.verify_all_job()])
    drain(app.services, timeout=60)
    assert len(repo.pulls()) == 2 and fake.count("POST", "pulls/create") == 2


def test_as_fast_as_claimed_is_confirmed_without_a_revert_and_the_record_shows(fake, app, onboarded, tmp_path):
    repo, inst = onboarded
    store = app.services.store
    pr = merged_claim(fake, app, inst, repo, tmp_path)
    merged_at = backdate(app, pr.number, 10)
    post_telemetry(app, inst, production(merged_at, 0.97))
    drain(app.services, timeout=60)

    claim = store.claim_of(REPO, pr.number)
    assert claim["status"] == "confirmed", claim["verification"]["reason"]
    assert claim["revert_number"] is None and len(repo.pulls()) == 1
    board = dashboard(app, repo)
    assert "1 of 1 earlier claims for softmax held in production" in board
    assert "confirmed" in board

    # the next PR's body carries the record
    main_table = files_at(repo, repo.refs["refs/heads/main"])["kernels/variants/softmax.yaml"]
    publish(app, inst, claiming_change(main_table, "hyp-2", "softmax_c2"))
    [pr2] = [p for p in repo.pulls() if p.head_ref.endswith("hyp-2")]
    body = repo.issues[pr2.number].body
    assert "Track record: 1 of 1 earlier claims for softmax held in production (median measured/claimed 0.9" in body
    assert "1 of 1 earlier claims for proposer llm held in production" in body

    # automerge.track_record reads the same record: one claim held, two wanted -> a person decides
    policy = POLICY.replace("automerge:\n", "automerge:\n  track_record: 2\n")
    fake.push(repo, {".github/aina.yml": policy}, "want a longer record", deliver=False)
    fake.complete_gate(repo, pr2.head_sha, verdict(pr2.head_sha))
    drain(app.services, timeout=30)
    assert pr2.state == "open" and pr2.merged_at is None
    assert any(
        "held in production 1 time(s) in a row; automerge.track_record wants 2" in c for c in comments(repo, pr2)
    )


def test_a_claim_still_undecided_after_max_days_is_inconclusive_not_held(fake, app, onboarded, tmp_path):
    repo, inst = onboarded
    store = app.services.store
    pr = merged_claim(fake, app, inst, repo, tmp_path)
    # three days since the merge (max_days: 2), and production ran the variant two hours only
    merged_at = backdate(app, pr.number, 72)
    post_telemetry(app, inst, production(merged_at, 1.30, hours=2))
    drain(app.services, timeout=60)

    claim = store.claim_of(REPO, pr.number)
    assert claim["status"] == "inconclusive" and claim["verification"]["final"] is True
    reason = claim["verification"]["reason"]
    assert reason == f"not enough data after 2 days: {CASE} (6 windows, 3000 calls)", reason
    assert claim["revert_number"] is None and len(repo.pulls()) == 1
    board = dashboard(app, repo)
    assert f"| #{pr.number} | softmax | `{VARIANT}` | inconclusive: {reason} |" in board
    # counted, never as held: the record and automerge.track_record's streak
    assert "no earlier claim for softmax has been decided in production; 1 inconclusive (not enough data)." in board
    assert verification.kernel_streak(store, REPO, "softmax") == 0
    # final: the hourly look leaves it alone, late telemetry decides nothing
    post_telemetry(app, inst, production(merged_at, 1.30, hours=9)[6:])
    store.enqueue([verification.verify_all_job()])
    drain(app.services, timeout=60)
    assert store.claim_of(REPO, pr.number)["status"] == "inconclusive" and len(repo.pulls()) == 1
    assert not [
        j for j in store.jobs(kind="verify") if j.payload["number"] == pr.number and j.created_at > claim["updated_at"]
    ]


@pytest.mark.parametrize(
    "job, method, pattern, opened",
    [
        ("verify", "GET", r"/git/ref/heads/main$", 0),  # the claim decided, the revert not queued yet
        ("publish", "POST", r"/repos/octo-org/kernels/pulls$", 1),  # GitHub opens it; the answer never comes
    ],
)
def test_a_worker_killed_while_verifying_or_opening_the_revert_leaves_one_revert_pr(
    fake, app, onboarded, app_key, tmp_path, job, method, pattern, opened
):
    repo, inst = onboarded
    store = app.services.store
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    pr = merged_claim(fake, app, inst, repo, tmp_path)
    merged_at = backdate(app, pr.number, 10)
    hold = fake.hold(method, pattern)
    post_telemetry(app, inst, production(merged_at, 1.30))
    kill_worker_when_held(fake, app, key_file, tmp_path / "worker1.log", hold, timeout=90)
    assert store.claim_of(REPO, pr.number)["status"] == "contradicted"
    [killed] = store.jobs(state="running")
    assert killed.kind == job
    assert len(repo.pulls()) == 1 + opened

    second = start_worker(fake, app, key_file, tmp_path / "worker2.log")
    try:
        wait_until(lambda: store.claim_of(REPO, pr.number)["revert_number"], 90, "the revert PR to be recorded")
        wait_until(lambda: not store.jobs(state="queued") and not store.jobs(state="running"), 90, "follow-ups")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    reverts = [p for p in repo.pulls() if p.number != pr.number]
    assert len(reverts) == 1, f"{job}: {[p.title for p in reverts]}"
    assert fake.count("POST", "pulls/create") == 2  # the claiming PR and one revert
    assert store.claim_of(REPO, pr.number)["revert_number"] == reverts[0].number
    assert not store.jobs(state="failed"), [(j.kind, j.last_error) for j in store.jobs(state="failed")]


@pytest.mark.slow  # 15-36 s each on 2 loaded cores: worker processes, a soak, lease expiry
@pytest.mark.parametrize("which", ["claim", "revert"])
def test_a_worker_killed_while_merging_the_claim_or_its_revert_merges_once_and_loses_nothing(
    fake, app, onboarded, app_key, tmp_path, which
):
    """kill -9 while GitHub merges (the answer never comes): the claiming PR's merge still
    records its claim, the revert's still marks the claim reverted; one merge each."""
    repo, inst = onboarded
    store = app.services.store
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    if which == "claim":
        base_table, table = table_with_variant(tmp_path)
        files = {".github/aina.yml": POLICY, "kernels/variants/softmax.yaml": base_table, "specs/softmax.yaml": SPEC}
        fake.push(repo, files, "policy, table and spec", deliver=False)
        publish(app, inst, claiming_change(table))
        [pr] = repo.pulls()
        target, merges_before = pr, 0
    else:
        pr = merged_claim(fake, app, inst, repo, tmp_path)
        post_telemetry(app, inst, production(backdate(app, pr.number, 10), 1.30))
        drain(app.services, timeout=60)
        [target] = [p for p in repo.pulls() if p.number != pr.number]
        merges_before = 1
    hold = fake.hold("PUT", rf"/pulls/{target.number}/merge$")
    fake.complete_gate(repo, target.head_sha, verdict(target.head_sha))  # the merge job waits out the soak
    kill_worker_when_held(fake, app, key_file, tmp_path / "worker1.log", hold, timeout=90)
    assert target.merged_at is not None  # GitHub merged; the worker never heard
    [killed] = store.jobs(state="running")
    assert killed.kind == "merge" and killed.payload["number"] == target.number

    second = start_worker(fake, app, key_file, tmp_path / "worker2.log")
    try:
        wait_until(lambda: store.job(killed.id).state == "done", 90, "the merge job to be taken over")
        wait_until(lambda: not store.jobs(state="queued") and not store.jobs(state="running"), 90, "follow-ups")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert fake.count("PUT", "pulls/merge") == merges_before + 1, "merged twice"
    assert store.pull(REPO, target.number)["outcome"] == "merged"
    claim = store.claim_of(REPO, pr.number)
    assert claim is not None and claim["status"] == ("verifying" if which == "claim" else "reverted")
    assert claim["variant"] == VARIANT and claim["body"]["hot_shapes"] == [CASE]
    assert sum(c.startswith("Merged ") for c in comments(repo, target)) == 1
    assert not store.jobs(state="failed"), [(j.kind, j.last_error) for j in store.jobs(state="failed")]
