"""The loop's decision: the baseline and the search's best, timed again side by side.

The pipeline's part (who is timed again, what is decided, what the record and the CLI say)
runs with the sandboxed stages replaced by stand-ins that record what they were handed; the
timing itself runs through the real sandbox on a small softmax case (seconds on 2 cores)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hostile_candidates import _UNDER_TEST, HOSTILE

from pytest_aina import sandbox
from pytest_aina.changer import pipeline, sidebyside
from pytest_aina.changer.evaluate import Setup, workdir_for
from pytest_aina.changer.model import Attempt, Candidate, Verdict
from pytest_aina.changer.settings import Budget, EvolutionSettings
from pytest_aina.changer.sidebyside import order, side_by_side, winner
from pytest_aina.reasoner import reason_about_file
from pytest_aina.sandbox import result as R

ROOT = Path(__file__).resolve().parents[2]
PASSED = ["import", "examples", "properties", "benchmarks"]


def test_the_order_alternates_between_rounds():
    a, b, c = (Candidate(kernel="k", proposer="p", config={"X": i}) for i in range(3))
    assert order([a, b, c], 0) == [a, b, c]
    assert order([a, b, c], 1) == [c, b, a]
    assert order([a, b, c], 2) == [a, b, c]


def test_the_winner_is_the_best_past_the_margin_and_none_otherwise():
    assert winner({"speedups": {"x": 1.04, "y": 1.30, "z": 1.10}}, 0.05) == "y"
    assert winner({"speedups": {"x": 1.04, "y": 0.90}}, 0.05) is None  # within the margin: no change
    assert winner({"speedups": {"y": 1.30}, "error": "the baseline could not be timed"}, 0.05) is None
    assert winner({"speedups": {}}, 0.05) is None and winner(None, 0.05) is None


def _attempt(cid_config: int, score, *, passed=True, hostile=False) -> Attempt:
    c = Candidate(kernel="rms_norm", proposer="metaparams", config={"BLOCK_N": cid_config})
    v = Verdict(c.id, passed, stages=PASSED if passed else ["import"], score=score if passed else None)
    if hostile:
        v.violations = [{"kind": "write_outside_folder", "detail": "/etc/x"}]
    return Attempt(c, v)


def test_the_best_three_that_passed_cleanly_are_timed_again_whatever_their_margin():
    base = Attempt(Candidate(kernel="rms_norm", proposer="baseline", config={}), Verdict("b", True, score=1.0))
    base.verdict.candidate = base.candidate.id
    tried = [
        base,
        _attempt(1, 0.97),  # below the baseline in the search: still timed again
        _attempt(2, None, passed=False),
        _attempt(3, 5.0, hostile=True),  # tripped a protection: never a winner
        _attempt(4, 1.2),
        _attempt(5, 0.5),
        _attempt(6, 0.99),
    ]
    picked = sidebyside.challengers(tried, base)
    assert [a.verdict.score for a in picked] == [1.2, 0.99, 0.97]
    assert sidebyside.challengers(tried, None) == []
    failed = Attempt(base.candidate, Verdict(base.candidate.id, False))
    assert sidebyside.challengers(tried, failed) == []  # nothing to compare with


# -- the pipeline's decision, with stand-ins for the sandboxed stages ------------------------

SEARCH = {"score": lambda cand: 1.0}  # the stand-in evaluation's score of a candidate (baseline: 1.0)
TOGETHER = {"speedups": lambda challengers: {c.id: 1.0 for c in challengers}}  # the stand-in side by side's


class Evaluated:
    """In place of the sandboxed cascade: every candidate passes at its scripted score."""

    def __init__(self, setup):
        self.setup = setup

    def __call__(self, cand: Candidate) -> Verdict:
        score = 1.0 if cand.proposer == "baseline" else SEARCH["score"](cand)
        timing = {"case": self.setup.bench_cases[0]["label"], "samples_s": [1 / score] * 3, "clock": "stand-in"}
        return Verdict(cand.id, True, stages=PASSED, speedup=score, score=score, timings=[timing])


class TimedAgain:
    """In place of the side-by-side timing: records the sides it is handed, answers the
    scripted speedups."""

    handed: list[tuple[Candidate, ...]] = []

    def __init__(self, setup, rounds=sidebyside.ROUNDS):
        self.setup, self.rounds = setup, rounds

    def __call__(self, sides):
        TimedAgain.handed.append(sides)
        base, *rest = sides
        return {
            "rounds": self.rounds,
            "calls": 7,
            "baseline": base.id,
            "sides": [c.id for c in sides],
            "cases": [],
            "speedups": TOGETHER["speedups"](rest),
            "failed": {},
        }


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    for d in ("specs", "kernels"):
        shutil.copytree(ROOT / d, root / d)
    monkeypatch.setattr(pipeline, "Evaluation", Evaluated)
    monkeypatch.setattr(pipeline, "SideBySide", TimedAgain)
    monkeypatch.setattr(pipeline, "_heuristic", lambda setup, p: {"BLOCK_N": 256, "ROWS_PER_PROGRAM": 1})
    TimedAgain.handed = []
    return root


def _search(root: Path, evaluations: int = 5):
    hyps = reason_about_file(
        ROOT / "telemetry/sample-fleet-day.jsonl", specs=root / "specs", variants=root / "kernels/variants"
    )
    p = pipeline.plan(root, hyps.hypotheses, device="cpu")
    assert p.kernel == "rms_norm"
    settings = EvolutionSettings(budget=Budget(evaluations=evaluations), workers=1, device="cpu")
    told = []
    record = pipeline.search(
        root, p, settings, device="cpu", resume=False, confirming=lambda ch, rounds: told.append((len(ch), rounds))
    )
    return record, told


def test_a_win_the_search_missed_is_found_side_by_side(repo):
    # the search sees every candidate within the margin (1.00x to 1.04x the baseline), in
    # the order they come; side by side, the one it ranked last of the three is 1.8x
    scores = iter([1.04, 1.03, 1.02, 1.01])
    SEARCH["score"] = lambda cand: next(scores)
    TOGETHER["speedups"] = lambda rest: {c.id: 1.8 if c is rest[-1] else 1.0 for c in rest}
    record, told = _search(repo)
    [sides] = TimedAgain.handed
    assert sides[0].id == record.baseline.candidate.id  # the baseline first, then by the search's score
    by_id = {a.candidate.id: a for a in record.attempts}
    assert [by_id[c.id].verdict.score for c in sides[1:]] == [1.04, 1.03, 1.02]
    assert told == [(3, sidebyside.ROUNDS)]
    assert record.winner == sides[-1].id and record.side_by_side["speedups"][record.winner] == 1.8
    assert "1.02x the baseline, 1.80x side by side" in pipeline.summarize_attempts(record)


def test_a_win_in_the_search_that_side_by_side_does_not_confirm_is_no_change(repo):
    SEARCH["score"] = lambda cand: 2.0  # every one "2x" in the search
    TOGETHER["speedups"] = lambda rest: {c.id: 1.04 for c in rest}  # within the margin, side by side
    record, _ = _search(repo, evaluations=3)
    assert len(TimedAgain.handed) == 1 and len(TimedAgain.handed[0]) == 3 and record.winner is None
    assert "2.00x the baseline, 1.04x side by side" in pipeline.summarize_attempts(record)


def test_without_a_challenger_nothing_is_timed_again(repo):
    record, told = _search(repo, evaluations=1)  # the baseline only
    assert TimedAgain.handed == [] and told == [] and record.side_by_side is None and record.winner is None


# -- the timing itself, through the real sandbox --------------------------------------------

DOUBLE_WORK = """
from kernels.softmax import softmax_generic


def softmax(x):
    softmax_generic(x)
    return softmax_generic(x)
"""

# right while pytest checks it, wrong when timed: the side-by-side timing checks every output too
RIGHT_ONLY_UNDER_TEST = (
    _UNDER_TEST
    + "\nfrom kernels.softmax import softmax_generic\n\n\n"
    + "def softmax(x):\n    return softmax_generic(x) if UNDER_TEST else x.clone()\n"
)


def _softmax_setup() -> Setup:
    return Setup(
        spec_path=ROOT / "specs" / "softmax.yaml",
        repo=ROOT,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[{"dims": {"M": 8, "N": 256}, "dtype": "float32", "label": "M=8,N=256,float32"}],
        workdir=workdir_for(ROOT, "test-side-by-side"),
        calls=3,
        bench_wall_s=60,
        memory_bytes=4 << 30,
    )


def test_every_side_is_timed_each_round_and_a_candidate_wrong_when_timed_is_out():
    setup = _softmax_setup()
    base = Candidate(kernel="softmax", proposer="baseline", config={})
    slower = Candidate(kernel="softmax", proposer="scripted", source=DOUBLE_WORK, function="softmax")
    wrong = Candidate(kernel="softmax", proposer="scripted", source=RIGHT_ONLY_UNDER_TEST, function="softmax")
    said = []
    out = side_by_side(base, [slower, wrong], setup, rounds=2, progress=said.append)
    assert out["sides"] == [base.id, slower.id, wrong.id] and out["baseline"] == base.id
    assert list(out["failed"]) == [wrong.id] and "wrong" in out["failed"][wrong.id].lower(), out["failed"]
    assert "error" not in out
    [case] = out["cases"]
    assert set(case["samples_s"]) == {base.id, slower.id}
    assert all(len(xs) == 2 * 3 for xs in case["samples_s"].values())  # rounds x calls, pooled
    assert "CPU time" in case["clock"]
    # twice the work: well below the baseline, never "faster"
    assert out["speedups"][slower.id] < 0.9, out["speedups"]
    assert winner(out, pipeline.NOISE_MARGIN) is None
    # round 2 in reverse order: the slower one before the baseline
    rounds = [line for line in said if "round 2/2" in line]
    assert rounds[0].endswith(f"{slower.id} ({slower.describe()[:40]})") and rounds[-1].endswith("the baseline")


def test_a_session_ended_by_deferred_work_is_discarded_and_run_once_more(monkeypatch):
    """The off-call check's clock advances at ticks: the baseline's first session is made to
    end as a loaded machine once ended an honest one; it is run again, and only clean
    sessions count."""
    setup = _softmax_setup()
    base = Candidate(kernel="softmax", proposer="baseline", config={})
    twice = Candidate(kernel="softmax", proposer="scripted", source=DOUBLE_WORK, function="softmax")
    real, calls = sandbox.time_calls, []

    def first_deferred(entry, **kw):
        calls.append(entry)
        if len(calls) == 1:
            return sandbox.TimingResult(R.DEFERRED, "deferred work: 8.6 ms of CPU between call 7 and the next")
        return real(entry, **kw)

    monkeypatch.setattr(sidebyside.sandbox, "time_calls", first_deferred)
    out = side_by_side(base, [twice], setup, rounds=2)
    assert out["failed"] == {} and "error" not in out
    assert list(out["retried"]) == [base.id] and "8.6 ms" in out["retried"][base.id]
    assert len(calls) == 1 + 2 * 2  # the discarded session, then two rounds of both sides
    [case] = out["cases"]
    assert {cid: len(xs) for cid, xs in case["samples_s"].items()} == {base.id: 6, twice.id: 6}


def test_a_candidate_that_defers_work_when_timed_is_out_after_its_one_retry():
    setup = _softmax_setup()
    base = Candidate(kernel="softmax", proposer="baseline", config={})
    deferring = Candidate(kernel="softmax", proposer="scripted", source=HOSTILE["deferred work"], function="softmax")
    out = side_by_side(base, [deferring], setup, rounds=2)
    assert list(out["failed"]) == [deferring.id] and R.DEFERRED in out["failed"][deferring.id]
    assert list(out["retried"]) == [deferring.id]
    assert out["speedups"] == {} and winner(out, pipeline.NOISE_MARGIN) is None
