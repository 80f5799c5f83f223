"""`aina evolve --proposer llm` as a user runs it, against the OpenAI-compatible server on
loopback (real HTTP, litellm in between), with the pipeline's real code from the flags to the
record; only the evaluation of a candidate is a stand-in (a sandboxed evaluation takes
minutes on 2 cores, and what is under test here is what the loop asks, when it stops asking,
what it tells the model and what it reports).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from change_records import make_source_record, repo  # noqa: F401  (fixtures, from beside this module)
from test_llm_proposer import GOOD, KEY_ENV, WRONG, _closed_port, api_key, ctx, fenced, server  # noqa: F401

from pytest_aina import cli
from pytest_aina.changer import pipeline, sidebyside
from pytest_aina.changer.change import write_change
from pytest_aina.changer.model import Attempt, Candidate, Verdict
from pytest_aina.changer.settings import Budget, EvolutionSettings
from pytest_aina.reasoner import reason_about_file
from tests.fakes.openai_server import answer, error

ROOT = Path(__file__).resolve().parents[2]
HEURISTIC = {"BLOCK_N": 64, "ROWS_PER_PROGRAM": 4}


class StandIn:
    """In place of the sandboxed cascade: the baseline passes, a source that normalises
    (``tl.sum``) passes slower than it (no winner: no change to write), anything else fails
    with a detail naming the candidate's file by its absolute path, as a traceback does."""

    calls: list[Candidate] = []

    def __init__(self, setup):
        self.setup = setup

    def __call__(self, cand: Candidate) -> Verdict:
        StandIn.calls.append(cand)
        if cand.proposer == "baseline" or (cand.source and "tl.sum" in cand.source):
            score = 1.0 if cand.proposer == "baseline" else 0.9
            stages = ["import", "examples", "properties", "benchmarks"]
            return Verdict(cand.id, True, stages=stages, speedup=score, score=score)
        where = self.setup.workdir / "candidates" / f"cand_{cand.id}.py"
        return Verdict(
            cand.id,
            False,
            failed_stage="examples",
            reason="wrong answer",
            detail=f'softmax: reference check failed\n  File "{where}", line 14, in softmax',
        )


class TimedAgainStandIn:
    """In place of the side-by-side timing after the search: each challenger at its
    stand-in score (the baseline's is 1.0)."""

    def __init__(self, setup, rounds=sidebyside.ROUNDS):
        self.rounds = rounds

    def __call__(self, sides):
        base, *rest = sides
        return {
            "rounds": self.rounds,
            "sides": [c.id for c in sides],
            "baseline": base.id,
            "speedups": {c.id: 0.9 for c in rest},
            "failed": {},
        }


@pytest.fixture
def loop(tmp_path, monkeypatch):
    """A copy of the repository's specs, kernels and telemetry, and the loop's evaluation,
    side-by-side timing and heuristic probe (sandboxed runs) replaced by stand-ins."""
    root = tmp_path / "repo"
    for d in ("specs", "kernels"):
        shutil.copytree(ROOT / d, root / d)
    (root / "telemetry").mkdir()
    shutil.copy(ROOT / "telemetry/sample-fleet-day.jsonl", root / "telemetry/day.jsonl")
    StandIn.calls = []
    probes = []
    monkeypatch.setattr(pipeline, "Evaluation", StandIn)
    monkeypatch.setattr(pipeline, "SideBySide", TimedAgainStandIn)
    monkeypatch.setattr(pipeline, "_heuristic", lambda setup, p: probes.append(p) or dict(HEURISTIC))
    return root, probes


def _evolve(root: Path, url: str, *extra: str) -> list[str]:
    return [
        "evolve",
        "--telemetry",
        str(root / "telemetry/day.jsonl"),
        "--repo",
        str(root),
        "--proposer",
        "llm",
        "--model",
        "openai/fake-model",
        "--api-base",
        url,
        "--api-key-env",
        KEY_ENV,
        "--workers",
        "1",
        "--no-forge",
        *extra,
    ]


def test_an_unreachable_server_stops_the_run_before_the_baseline(loop, api_key, capsys):
    root, probes = loop
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    assert cli.main(_evolve(root, url)) == 2
    err = capsys.readouterr().err
    assert f"nothing answers at {url}" in err and "--api-base" in err and "search was not started" in err
    assert "no candidate beat the baseline" not in err
    assert StandIn.calls == [] and probes == []  # neither the baseline nor the heuristic probe ran
    assert api_key not in err


def test_an_unknown_model_stops_the_run_before_the_baseline(loop, server, api_key, capsys):
    root, probes = loop
    server.script(error(404, "The model `fake-model` does not exist or you do not have access to it."))
    assert cli.main(_evolve(root, server.url)) == 2
    err = capsys.readouterr().err
    assert "refused the request (404)" in err and "does not exist" in err and "--model" in err
    assert StandIn.calls == [] and probes == []
    assert len(server.requests) == 1


def test_a_requested_proposer_that_never_produced_a_candidate_exits_2(loop, server, api_key, capsys):
    root, _ = loop
    # it answers the preflight, then only prose: three answers, no candidate, nothing left to evaluate
    server.script(answer("OK"), *[answer("I would fuse the two passes; code to follow.")] * 3)
    assert cli.main(_evolve(root, server.url, "--budget-evals", "6")) == 2
    err = capsys.readouterr().err
    assert "proposer llm never produced a candidate (malformed_answers x1)" in err


def test_why_no_change_names_a_proposer_that_never_produced_a_candidate(loop, server, api_key):
    root, _ = loop
    server.script(answer("OK"), *[answer("I would fuse the two passes; code to follow.")] * 3)
    hyps = reason_about_file(root / "telemetry/day.jsonl", specs=root / "specs", variants=root / "kernels/variants")
    settings = EvolutionSettings(
        proposers=("llm",),
        proposer_config={"llm": {"model": "openai/fake-model", "api_base": server.url, "api_key_env": KEY_ENV}},
        workers=1,
        device="cpu",
    )
    done = pipeline.evolve(root, hyps.hypotheses, settings)
    assert done.change is None and done.silent_proposers == ["llm"]
    # what the App posts when no change is made
    assert done.why_no_change.endswith("; proposer llm never produced a candidate (malformed_answers x1)")
    assert [c.proposer for c in StandIn.calls] == ["baseline"]


def test_a_proposer_the_budget_never_reached_is_not_silent(loop):
    """Only a proposer that was asked and failed makes the run exit 2: with a budget of one
    evaluation (the baseline) metaparams is never asked, which is what the user asked for."""
    root, _ = loop
    hyps = reason_about_file(root / "telemetry/day.jsonl", specs=root / "specs", variants=root / "kernels/variants")
    settings = EvolutionSettings(proposers=("metaparams",), budget=Budget(evaluations=1), workers=1, device="cpu")
    done = pipeline.evolve(root, hyps.hypotheses, settings)
    assert [c.proposer for c in StandIn.calls] == ["baseline"]
    assert done.change is None and done.silent_proposers == []
    assert "never produced" not in done.why_no_change


def test_a_model_with_no_further_ideas_is_not_asked_again_and_the_prompt_says_what_is_measured(loop, server, api_key):
    root, _ = loop
    server.script(
        answer("OK"),
        answer(fenced(GOOD)),
        answer(fenced(WRONG, "skip the normalisation")),
        answer("No further ideas."),
    )
    hyps = reason_about_file(root / "telemetry/day.jsonl", specs=root / "specs", variants=root / "kernels/variants")
    settings = EvolutionSettings(
        proposers=("llm",),
        proposer_config={"llm": {"model": "openai/fake-model", "api_base": server.url, "api_key_env": KEY_ENV}},
        budget=Budget(evaluations=12),
        workers=1,
        device="cpu",
    )
    # the sample telemetry's top hypothesis, moved to softmax (the kernel GOOD and WRONG implement)
    top = next(h for h in hyps.hypotheses if h.actionable)
    done = pipeline.evolve(root, [replace(top, kernel="softmax")], settings)
    # four requests in all: the preflight, two candidates, the answer that it has no more ideas;
    # the evaluation budget (12) would have allowed nine more proposals
    assert len(server.requests) == 4 and done.change is None
    assert [c.proposer for c in StandIn.calls] == ["baseline", "llm:openai/fake-model", "llm:openai/fake-model"]
    record = done.record
    assert record.budget["stopped_by"] == "exhausted"
    assert [f["reason"] for f in record.environment["proposer_failures"]] == ["gave_up"]
    assert record.budget["tokens"] == settings.budget.tokens and settings.budget.tokens > 0  # a default budget
    assert done.silent_proposers == []

    first, last = server.requests[1].text, server.requests[3].text
    # what is measured: the device, the timed case (scaled down from the hot one), the heuristic there
    case = done.plan.bench_cases[0]
    assert "Device: a CPU, in Triton's interpreter" in first
    assert f"`{case['label']}`" in first
    if case["hot_dims"] != case["dims"]:
        assert "scaled down from the hot shape " + ",".join(f"{k}={v}" for k, v in case["hot_dims"].items()) in first
    assert "heuristic picks, at the timed case: BLOCK_N=64, ROWS_PER_PROGRAM=4" in first
    # the helpers the module imports, shown
    assert "## kernels.rowwise" in first and (root / "kernels/rowwise.py").read_text().rstrip() in first
    # the failure comes back with the candidate's file by name, and no local path anywhere
    wrong_id = StandIn.calls[2].id
    assert f'File "cand_{wrong_id}.py", line 14' in last
    for req in server.requests:
        assert str(root) not in req.text and str(ROOT) not in req.text
        assert not re.search(r"(?<![\w.:/])/(?:tmp|work|home|root)/", req.text), req.text


def test_the_repeat_command_names_the_model_server_and_key_variable(api_key):
    settings = EvolutionSettings(
        proposers=("metaparams", "llm"),
        proposer_config={
            "llm": {
                "model": "openai/fake-model",
                "api_base": "http://user:pw@127.0.0.1:8000/v1",
                "api_key_env": KEY_ENV,
            }
        },
        budget=Budget(evaluations=6, tokens=5000),
        seed=3,
    )
    cmd = pipeline.repeat_command(settings)
    assert cmd == (
        "aina evolve --telemetry <the same file> --seed 3 --budget-evals 6 --budget-tokens 5000 "
        f"--proposer metaparams,llm --model openai/fake-model --api-base http://127.0.0.1:8000/v1 --api-key-env {KEY_ENV}"
    )
    assert api_key not in cmd and "pw" not in cmd


def _llm_body(record, repo) -> str:  # noqa: F811
    return write_change(record, repo, spec_path="specs/softmax.yaml", now="2025-01-07T10:05:00Z").body


def test_the_pr_body_of_a_model_written_winner(make_source_record, repo):  # noqa: F811
    record = make_source_record()
    win = record.winner_attempt().candidate
    # as the LLM proposer records an unpriced local model
    win.meta.update(
        summary="one program per row, the whole row in registers",
        cost_usd=None,
        cost_note="unpriced model",
        attempts=[
            {"outcome": "provider_error", "reason": "server_error", "status": 503, "prompt_tokens": 0},
            {"outcome": "malformed", "reason": "no_code_block", "status": 200, "prompt_tokens": 900},
            {"outcome": "ok", "reason": None, "status": 200, "prompt_tokens": 1000},
        ],
    )
    hostile = Candidate("softmax", "llm:qwen2.5-coder", source="import os\n", function="softmax")
    violations = [{"kind": "write outside sandbox", "detail": f"open /etc/evil{i} for writing"} for i in range(4)] + [
        {"kind": "network attempt", "detail": "connect to 10.0.0.1:443"}
    ]
    wrong_detail = (
        "softmax: reference check failed  (softmax.yaml:31)\n"
        "  case: M=3, N=5000, dtype=float16, layout=contiguous, values=large, seed=4\n"
        "  max abs error 0.5 > atol 0.001\n"
        "  re-run just this case:\n"
        "    pytest /tmp/aina-sbx-12345/candidate/specs/softmax.yaml::example --aina --aina-impl cand_x:softmax "
        "--aina-case 'M=3,N=5000,dtype=float16,layout=contiguous,values=large,seed=4'"
    )
    record.attempts[0].verdict.detail = wrong_detail
    record.attempts.insert(
        1,
        Attempt(
            hostile,
            Verdict(
                hostile.id,
                False,
                failed_stage="examples",
                reason="write outside sandbox",
                detail="write outside sandbox: ...",
                violations=violations,
            ),
        ),
    )
    record.repeat = pipeline.repeat_command(
        EvolutionSettings(
            proposers=("llm",),
            proposer_config={"llm": {"model": "openai/qwen2.5-coder", "api_base": "http://127.0.0.1:8000/v1"}},
        )
    )
    body = _llm_body(record, repo)

    # the model's idea, and that its module is model-written code to review line by line
    assert "The model's stated idea: *one program per row, the whole row in registers*" in body
    assert "is code written by a model** (`qwen2.5-coder`): review it line by line" in body
    # an unpriced model's cost is unknown, not $0.0000; requests and answers are counted apart
    assert "cost unknown" in body and "$0.0000" not in body
    assert "LLM `qwen2.5-coder`: 3 request(s), 2 answer(s): 4 candidate(s)" in body
    # the failure, not a cut-off re-run command
    assert "(softmax: reference check failed  (softmax.yaml:31))" in body
    assert "re-run just this case" not in body and "aina-sbx-12345" not in body
    # the hostile candidate: flagged, with every violation, none summarised away
    assert f"| `{hostile.id}` |" in body and "**hostile**, failed at examples" in body
    for v in violations:
        assert f"{v['kind']}: {v['detail']}" in body
    assert "more)" not in body
    # the command that repeats the search names the model, the server and the key's variable
    assert "--model openai/qwen2.5-coder --api-base http://127.0.0.1:8000/v1" in body


HOSTILE_SOURCE = """
import socket
from kernels.softmax import softmax_generic

for _i in range(4):  # each refused, each swallowed: the module still imports and computes right
    try:
        open(OUTSIDE + f"/stolen-{_i}.txt", "w").write("x")
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=1)
except OSError:
    pass


def softmax(x):
    return softmax_generic(x)
"""


@pytest.mark.slow  # the plugin's checks in the real sandbox: ~1 min on 2 cores
def test_a_hostile_candidate_is_recorded_with_every_violation_and_the_model_is_told(tmp_path, ctx):  # noqa: F811
    from pytest_aina.changer.evaluate import Setup, evaluate, workdir_for
    from pytest_aina.changer.proposers import prompts

    outside = tmp_path / "outside"
    outside.mkdir()
    source = HOSTILE_SOURCE.replace("OUTSIDE", repr(str(outside))).replace("PORT", str(_closed_port()))
    cand = Candidate("softmax", "llm:openai/fake-model", source=source, function="softmax")
    setup = Setup(
        spec_path=ROOT / "specs" / "softmax.yaml",
        repo=ROOT,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[{"dims": {"M": 8, "N": 256}, "dtype": "float32", "label": "M=8,N=256,float32"}],
        workdir=workdir_for(tmp_path, "hostile"),
        check_wall_s=240,
    )
    v = evaluate(cand, setup)
    assert not v.passed and v.hostile and list(outside.iterdir()) == []
    kinds = [x["kind"] for x in v.violations]
    assert kinds.count("write outside sandbox") == 4 and kinds.count("network attempt") == 1, v.violations
    for i in range(4):
        assert any(f"stolen-{i}.txt" in x["detail"] for x in v.violations)
        assert f"stolen-{i}.txt" in v.detail  # the reason lists them all too
    assert "more)" not in v.detail

    # the model is told, in the next prompt's history, with every attempt and no local path
    ctx.history.append((cand, v))
    text = prompts.render_task(ctx, proposed=[], history_limit=20)
    assert "REJECTED AS HOSTILE: it tried to write outside sandbox" in text and "network attempt" in text
    assert str(outside) not in text and "stolen-3.txt" in text


def test_budget_tokens_flag_takes_a_number_or_none():
    from pytest_aina.cli import build_parser

    parse = build_parser().parse_args
    base = ["evolve", "--telemetry", "t.jsonl"]
    assert parse(base).budget_tokens is None  # the settings' default applies
    assert parse([*base, "--budget-tokens", "5000"]).budget_tokens == 5000
    assert parse([*base, "--budget-tokens", "none"]).budget_tokens == "none"
    with pytest.raises(SystemExit):
        parse([*base, "--budget-tokens", "-1"])
    unlimited = EvolutionSettings(budget=Budget(tokens=None))
    assert "--budget-tokens none" in pipeline.repeat_command(unlimited)
    assert f"--budget-tokens {Budget().tokens}" in pipeline.repeat_command(EvolutionSettings())
