"""Hostile candidates through the real sandbox and cascade: each is a recorded failure with
its specific reason, the search goes on, and a good candidate after them still passes."""

import json
import os
import socket
import statistics
import threading
from pathlib import Path

import pytest
from hostile_candidates import GOOD, HOSTILE

from pytest_aina.changer.evaluate import Setup, evaluate, workdir_for
from pytest_aina.changer.executors import LocalExecutor
from pytest_aina.changer.model import Candidate
from pytest_aina.changer.proposers import ProposalContext
from pytest_aina.changer.search import run_search
from pytest_aina.changer.settings import Budget
from pytest_aina.reasoner import Hypothesis

# every hostile candidate through the real sandboxed cascade: the module's evaluations take
# over three minutes on 2 cores, so they run with the slow tests (the whole suite, CI)
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECRET = "ghs_fake_installation_token_0123456789"


class Scripted:
    name = "scripted"

    def __init__(self, sources):
        self.queue = list(sources)

    def propose(self, ctx, n):
        out = []
        while self.queue and len(out) < n:
            label, src = self.queue.pop(0)
            out.append(
                Candidate(kernel="softmax", proposer="scripted", source=src, function="softmax", meta={"label": label})
            )
        return out


@pytest.fixture(scope="module")
def listener():
    """A loopback server the network-hostile candidate tries to reach."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    accepted = []
    srv.settimeout(0.5)

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                accepted.append(conn)
            except OSError:
                pass

    stop = threading.Event()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    srv.close()


@pytest.fixture(scope="module")
def search_result(listener, tmp_path_factory):
    port, _ = listener
    os.environ["AINA_FAKE_TOKEN"] = SECRET  # in the parent's environment: must not reach a candidate
    spy = (
        "import os\nfrom kernels.softmax import softmax_generic\n\n"
        "def softmax(x):\n    leaked = [v for v in os.environ.values() if 'ghs_' in v]\n"
        "    if leaked:\n        raise RuntimeError('saw ' + leaked[0])\n    return softmax_generic(x)\n"
    )
    sources = [(k, v.replace("PORT", str(port)).replace("REPO_ROOT", repr(str(REPO)))) for k, v in HOSTILE.items()] + [
        ("secret spy", spy),
        ("good", GOOD),
    ]
    setup = Setup(
        spec_path=REPO / "specs" / "softmax.yaml",
        repo=REPO,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[{"dims": {"M": 8, "N": 256}, "dtype": "float32", "label": "M=8,N=256,float32"}],
        workdir=workdir_for(REPO, "test-hostile"),
        calls=5,
        # the checks now include the profile's budget-edge cases in every dtype, under the
        # faithful interpreter and its sanitizer: 30 s left no room on a 2-core machine
        check_wall_s=120,
        bench_wall_s=60,
        memory_bytes=4 << 30,
    )
    ctx = ProposalContext(
        kernel="softmax",
        spec=setup.spec,
        spec_text="",
        kernel_source="",
        function="softmax",
        hypothesis=Hypothesis.from_json({"id": "h", "kind": "hot_unspecialised", "kernel": "softmax"}),
        tunables={},
    )
    try:
        with LocalExecutor(2) as pool:
            out = run_search(
                ctx, [Scripted(sources)], lambda c: evaluate(c, setup), Budget(evaluations=len(sources)), executor=pool
            )
    finally:
        del os.environ["AINA_FAKE_TOKEN"]
    return {a.candidate.meta["label"]: a for a in out.attempts}


@pytest.mark.parametrize("label", list(HOSTILE))
def test_hostile_candidate_is_a_failure_with_its_reason(search_result, label):
    v = search_result[label].verdict
    assert not v.passed
    assert v.reason == label, f"{label}: got {v.reason}: {v.detail[:600]}"


def test_the_search_goes_on_and_a_good_candidate_passes(search_result):
    assert len(search_result) == len(HOSTILE) + 2
    good = search_result["good"].verdict
    assert good.passed, good.detail
    assert good.stages == ["import", "examples", "properties", "benchmarks"] and good.speedup > 0
    # where its time went: the plugin's checks, then the timed stage, inside the whole
    assert set(good.stage_s) == {"checks", "benchmarks"} and all(t > 0 for t in good.stage_s.values())
    # stages are disjoint intervals inside the whole (1 µs: the float sum's last bit)
    assert sum(good.stage_s.values()) <= good.wall_s + 1e-6
    wrong = search_result["wrong answer"].verdict  # stopped by the checks: no timed stage
    assert set(wrong.stage_s) == {"checks"} and search_result["syntax error"].verdict.stage_s == {}
    # of the checks' time, what their own test items took (the rest is the sandbox's cost)
    assert 0 < good.checks_items_s < good.stage_s["checks"]
    # and phase by phase, per sandboxed run
    assert {"checks", "candidate"} <= set(good.phases)
    assert {"spawned", "child.confined", "pytest.ran", "cleaned"} <= set(good.phases["checks"])
    assert {"floor", "loaded", "calls", "cleaned"} <= set(good.phases["candidate"])
    # the spec's reference was timed once in the run (by one of the two candidates that
    # reached the timed stage, or earlier in this process), and reused (the same samples)
    timed = [v.timings[0] for v in (good, search_result["secret spy"].verdict)]
    assert sum(t["reference_timed_here"] for t in timed) <= 1
    assert timed[0]["reference_samples_s"] == timed[1]["reference_samples_s"]
    # on a CPU the figures are the sandbox's CPU time per call, the wall clock kept beside
    t = timed[0]
    assert "CPU time" in t["clock"] and len(t["wall_samples_s"]) == len(t["samples_s"]) > 0
    assert t["median_s"] == statistics.median(t["samples_s"]) and t["samples_s"] != t["wall_samples_s"]
    assert t["speedup"] == t["reference_median_s"] / t["median_s"]
    assert good.score == pytest.approx(1.0 / t["median_s"])  # the search ranks on the CPU time


def test_hostile_and_honest_candidates_share_one_warm_template(search_result):
    """Every stage was forked from the same template, the hostile candidates' before and
    beside the good one's: what they patched, cached or left running did not reach it."""
    starts = {label: a.verdict.sandbox.get("start", "") for label, a in search_result.items() if a.verdict.sandbox}
    assert len(starts) == len(search_result) - 1  # all but the syntax error reached the sandbox
    assert all(s.startswith("warm: forked from the template") for s in starts.values()), starts
    assert len(set(starts.values())) == 1  # one template (its pid is in the note)


def test_no_secret_reaches_a_candidate_or_a_record(search_result):
    spy = search_result["secret spy"].verdict
    assert spy.passed, spy.detail  # it saw no token, so it ran normally
    blob = json.dumps({k: a.to_json() for k, a in search_result.items()})
    assert SECRET not in blob


def test_nothing_was_written_outside_the_sandbox(search_result, listener):
    assert not (REPO / "PWNED").exists()
    _, accepted = listener
    assert accepted == []
