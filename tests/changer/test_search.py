"""The search loop: budget, resumption from a checkpoint, determinism, parallel evaluation.

``evaluate`` here is a deterministic function of the config (a synthetic landscape), so
the loop itself is what is tested; the sandboxed evaluator has its own tests."""

import json

import pytest

from pytest_aina.changer.executors import LocalExecutor
from pytest_aina.changer.model import Candidate, Verdict
from pytest_aina.changer.proposers import MetaParamProposer, ProposalContext, make, search_space_size
from pytest_aina.changer.search import Checkpoint, best, run_search
from pytest_aina.changer.settings import Budget
from pytest_aina.reasoner import Hypothesis

TUNABLES = {"BLOCK_N": [64, 128, 256, 512, 1024, 2048], "ROWS_PER_PROGRAM": [1, 2, 4, 8]}


def landscape(c: Candidate) -> Verdict:
    cfg = c.config or {}
    if cfg.get("BLOCK_N") == 64 and cfg.get("ROWS_PER_PROGRAM") == 8:
        return Verdict(c.id, False, ["import"], "examples", "wrong answer", "synthetic failure")
    b = cfg.get("BLOCK_N", 256)
    r = cfg.get("ROWS_PER_PROGRAM", 1)
    score = 10 - abs(b - 1024) / 256 - abs(r - 2)  # best at BLOCK_N=1024, ROWS=2
    return Verdict(c.id, True, ["import", "examples", "properties", "benchmarks"], score=score, speedup=score)


def ctx(seed=0):
    return ProposalContext(
        kernel="softmax",
        spec=None,
        spec_text="",
        kernel_source="",
        function="softmax",
        hypothesis=Hypothesis.from_json({"id": "h", "kind": "hot_unspecialised", "kernel": "softmax"}),
        tunables=TUNABLES,
        seed=seed,
    )


def test_budget_counts_evaluations_and_failures_do_not_stop_the_search():
    out = run_search(ctx(), [MetaParamProposer()], landscape, Budget(evaluations=10))
    assert len(out.attempts) == 10 and out.stopped_by == "evaluations"
    assert len({a.candidate.id for a in out.attempts}) == 10  # never the same candidate twice
    assert out.attempts[0].candidate.config == {}  # the heuristic first


def test_local_search_finds_the_optimum_of_a_smooth_landscape():
    out = run_search(ctx(), [MetaParamProposer()], landscape, Budget(evaluations=16))
    assert best(out.attempts).candidate.config == {"BLOCK_N": 1024, "ROWS_PER_PROGRAM": 2}


def test_exhausting_the_space_stops_the_search():
    out = run_search(ctx(), [MetaParamProposer()], landscape, Budget(evaluations=1000))
    assert out.stopped_by == "exhausted"
    assert len(out.attempts) == search_space_size(TUNABLES) + 1  # every point, and the heuristic


def test_same_seed_same_search_different_seed_different_order():
    a = [x.candidate.id for x in run_search(ctx(1), [MetaParamProposer()], landscape, Budget(evaluations=8)).attempts]
    b = [x.candidate.id for x in run_search(ctx(1), [MetaParamProposer()], landscape, Budget(evaluations=8)).attempts]
    c = [x.candidate.id for x in run_search(ctx(2), [MetaParamProposer()], landscape, Budget(evaluations=8)).attempts]
    assert a == b and a != c


def test_resume_from_checkpoint_reruns_nothing_and_survives_a_torn_line(tmp_path):
    cp = Checkpoint(tmp_path / "cp.jsonl")
    calls = []

    def counting(c):
        calls.append(c.id)
        return landscape(c)

    first = run_search(ctx(), [MetaParamProposer()], counting, Budget(evaluations=5), checkpoint=cp)
    with open(cp.path, "a") as fh:  # a kill in the middle of writing the next line
        fh.write('{"candidate": {"kernel": "softm')
    calls.clear()
    second = run_search(ctx(), [MetaParamProposer()], counting, Budget(evaluations=9), checkpoint=cp)
    assert len(calls) == 4  # only the new ones
    assert not set(calls) & {a.candidate.id for a in first.attempts}
    assert second.used["resumed"] == 5 and len(second.attempts) == 9
    assert [json.loads(line)["candidate"]["id"] for line in cp.path.read_text().splitlines()[:5]] == [
        a.candidate.id for a in first.attempts
    ]


def test_parallel_workers_evaluate_everything_once():
    with LocalExecutor(2) as pool:
        out = run_search(ctx(), [MetaParamProposer()], landscape, Budget(evaluations=12), executor=pool)
    assert len(out.attempts) == 12 and len({a.candidate.id for a in out.attempts}) == 12


def test_unknown_proposer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown proposer 'nope'; available: .*metaparams"):
        make("nope")


def test_search_walks_from_the_heuristic_point_when_the_kernel_reports_it():
    c = ctx()
    c.heuristic = {"BLOCK_N": 512, "ROWS_PER_PROGRAM": 1, "num_warps": 4}  # num_warps: not in this space

    def scored(cand):
        return landscape(Candidate("softmax", "x", config=cand.config or c.heuristic))

    out = run_search(c, [MetaParamProposer()], scored, Budget(evaluations=5))
    explicit = [a.candidate.config for a in out.attempts[1:]]
    # every step is a neighbour walk from the heuristic's point, never a re-measure of it
    assert {"BLOCK_N": 512, "ROWS_PER_PROGRAM": 1} not in explicit
    assert explicit[0] in (
        {"BLOCK_N": 256, "ROWS_PER_PROGRAM": 1},
        {"BLOCK_N": 1024, "ROWS_PER_PROGRAM": 1},
        {"BLOCK_N": 512, "ROWS_PER_PROGRAM": 2},
    )
    assert best(out.attempts).verdict.score > out.attempts[0].verdict.score


def test_a_walk_stuck_at_a_local_optimum_backtracks_to_the_next_best_points_neighbours():
    # the heuristic's point (512, 1) beats all its neighbours; the optimum (1024, 2) is two
    # steps away, next to the second best (512, 2). A walk that jumped to random points
    # once stuck found it after 24 evaluations on a measured table (docs/evolution.md).
    table = {(512, 1): 5.0, (512, 2): 4.5, (1024, 2): 9.0}
    c = ctx()
    c.heuristic = {"BLOCK_N": 512, "ROWS_PER_PROGRAM": 1}

    def scored(cand):
        cfg = cand.config or c.heuristic
        score = table.get((cfg["BLOCK_N"], cfg["ROWS_PER_PROGRAM"]), 1.0)
        return Verdict(cand.id, True, ["import", "examples", "properties", "benchmarks"], score=score)

    for seed in range(10):
        c.seed = seed  # run_search starts the history afresh (no checkpoint)
        out = run_search(c, [MetaParamProposer()], scored, Budget(evaluations=8))
        configs = [a.candidate.config for a in out.attempts]
        # baseline, its 3 neighbours, then (512, 2)'s untried neighbours: the optimum among them
        assert {"BLOCK_N": 1024, "ROWS_PER_PROGRAM": 2} in configs[:8], (seed, configs)
        assert best(out.attempts).verdict.score == 9.0
