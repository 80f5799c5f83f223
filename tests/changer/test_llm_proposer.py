"""The LLM proposer through litellm, against a real OpenAI-compatible server on loopback.

litellm talks HTTP to ``tests/fakes/openai_server.py`` exactly as it would to vLLM or a
hosted provider (``model="openai/fake-model", api_base=http://127.0.0.1:PORT/v1``): nothing
stands in for litellm. Each test scripts the server's answers (a good Triton kernel, a wrong
one, garbage, HTTP errors) and checks what the proposer returned, what it recorded, and what
the server received.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_aina.changer.model import Candidate, Verdict, digest
from pytest_aina.changer.proposers import ProposalContext, make, prompts
from pytest_aina.changer.proposers.llm import LLMConfigError, LLMProposer, _estimate_tokens, _parse_answer
from pytest_aina.reasoner import Hypothesis
from pytest_aina.spec.model import load_spec
from tests.fakes.openai_server import FakeOpenAI, answer, error

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "AINA_TEST_LLM_KEY"

GOOD = '''\
"""Softmax over the last dim, one row per program, the whole row in one block."""
import torch
import triton
import triton.language as tl


@triton.jit
def _softmax_row(x_ptr, y_ptr, stride_row, stride_col, N, BLOCK_N: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    ok = cols < N
    x = tl.load(x_ptr + row * stride_row + cols * stride_col, mask=ok, other=-float("inf")).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=0))
    y = e / tl.sum(e, axis=0)
    tl.store(y_ptr + row * N + cols, y.to(y_ptr.dtype.element_ty), mask=ok)


def softmax(x: torch.Tensor) -> torch.Tensor:
    N = x.shape[-1]
    if x.numel() == 0:
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    rows = x.reshape(-1, N)
    y = torch.empty((rows.shape[0], N), dtype=x.dtype, device=x.device)
    _softmax_row[(rows.shape[0],)](rows, y, rows.stride(0), rows.stride(1), N,
                                   BLOCK_N=triton.next_power_of_2(N))
    return y.reshape(x.shape)
'''

# Compiles, defines softmax with a Triton kernel, and forgets to normalise: wrong values.
WRONG = GOOD.replace("y = e / tl.sum(e, axis=0)", "y = e").replace("one row per program", "no division")


def fenced(source: str, idea: str = "one program per row, the whole row in registers") -> str:
    return f"Idea: {idea}\n\n```python\n{source}```\n"


@pytest.fixture
def api_key(monkeypatch) -> str:
    key = "sk-test-" + secrets.token_hex(12)
    monkeypatch.setenv(KEY_ENV, key)
    return key


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv
        assert srv.unexpected == [], f"requests the test did not script: {srv.unexpected}"
        assert srv.pending == 0, f"{srv.pending} scripted replies were never requested"


@pytest.fixture
def ctx() -> ProposalContext:
    spec_path = ROOT / "specs" / "softmax.yaml"
    source = (ROOT / "kernels" / "softmax.py").read_text()
    tunables = next(
        ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "TUNABLES"
    )
    tuned = Candidate(
        kernel="softmax",
        proposer="metaparams",
        config={"BLOCK_N": 1024, "ROWS_PER_PROGRAM": 4, "num_warps": 4, "num_stages": 2},
    )
    broken = Candidate(
        kernel="softmax",
        proposer="llm:openai/fake-model",
        source="# an earlier try\n",
        function="softmax",
        meta={"summary": "skip the max subtraction to save a pass"},
    )
    history = [
        (
            tuned,
            Verdict(
                candidate=tuned.id,
                passed=True,
                stages=["import", "examples", "properties", "benchmarks"],
                speedup=1.31,
                score=0.27,
            ),
        ),
        (
            broken,
            Verdict(
                candidate=broken.id,
                passed=False,
                stages=["import"],
                failed_stage="examples",
                reason="wrong_answer",
                detail="inf in output at M=3, N=5000 float16 values=large",
            ),
        ),
    ]
    return ProposalContext(
        kernel="softmax",
        spec=load_spec(spec_path),
        spec_text=spec_path.read_text(),
        kernel_source=source,
        function="softmax",
        hypothesis=Hypothesis.from_json(
            {
                "id": "hyp-0123456789abcdef",
                "kind": "unspecialised_hot_shape",
                "kernel": "softmax",
                "domain": {"M": 4096, "N": 50304, "dtype": "bfloat16"},
                "expected_gain": 0.18,
                "evidence": {"share_of_gpu_time": 0.41, "calls": 1200000, "achieved_bandwidth_fraction": 0.38},
            }
        ),
        tunables=tunables,
        history=history,
        seed=7,
    )


def proposer(server, **kw) -> LLMProposer:
    kw.setdefault("backoff_s", 0.01)
    return LLMProposer(model="openai/fake-model", api_base=server.url, api_key_env=KEY_ENV, **kw)


def test_good_kernel_over_http(server, ctx, api_key):
    server.script(answer(fenced(GOOD)))
    llm = proposer(server)
    [cand] = llm.propose(ctx, 1)

    assert (cand.kernel, cand.proposer, cand.function) == ("softmax", "llm:openai/fake-model", "softmax")
    assert cand.source == GOOD and cand.config is None
    assert cand.meta["summary"] == "one program per row, the whole row in registers"

    [req] = server.requests
    assert req.headers["authorization"] == f"Bearer {api_key}"
    assert req.body["model"] == "fake-model" and req.body["temperature"] == 0.2
    sent = req.text
    assert ctx.kernel_source.rstrip() in sent  # the kernel module, verbatim
    assert ctx.spec_text.rstrip() in sent  # the spec, verbatim
    assert '"achieved_bandwidth_fraction": 0.38' in sent  # the hypothesis' evidence
    assert '"ROWS_PER_PROGRAM": [1, 2, 4, 8, 16]' in sent  # the tunables
    # the scored history: each attempt's description and outcome
    assert "BLOCK_N=1024, ROWS_PER_PROGRAM=4, num_stages=2, num_warps=4" in sent
    assert "speedup 1.31x" in sent and "score 0.27" in sent
    assert "skip the max subtraction to save a pass" in sent
    assert "FAILED at stage examples: wrong_answer (inf in output at M=3, N=5000 float16" in sent
    assert "define `softmax(x: torch.Tensor) -> torch.Tensor` at module top level" in sent

    # the recorded digest is the digest of the messages the server received
    assert cand.meta["prompt_digest"] == digest(req.body["messages"])
    assert cand.meta["template_digest"] == prompts.TEMPLATE_DIGEST
    assert cand.meta["model"] == "openai/fake-model"
    # tokens are the server's usage figures, cost is unknown for an unpriced model
    usage = server.completion(req, answer(fenced(GOOD)))["usage"]
    assert cand.meta["tokens"] == {
        "prompt": usage["prompt_tokens"],
        "completion": usage["completion_tokens"],
        "total": usage["total_tokens"],
    }
    assert (cand.meta["prompt_tokens"], cand.meta["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert cand.meta["cost_usd"] is None and cand.meta["cost_note"] == "unpriced model"
    [call] = cand.meta["attempts"]
    assert call["outcome"] == "ok" and call["status"] == 200 and call["finish_reason"] == "stop"
    assert llm.failures == [] and llm.tokens_used == usage["total_tokens"]

    # the key went to the server and nowhere else
    for text in (repr(cand), json.dumps(cand.to_json()), repr(llm), json.dumps(llm.failures)):
        assert api_key not in text


def test_good_and_wrong_kernels_are_both_candidates_and_the_text_runs(server, ctx, api_key, tmp_path):
    server.script(answer(fenced(GOOD)), answer(fenced(WRONG, "skip the normalisation")))
    good, wrong = proposer(server).propose(ctx, 2)
    # judging is the evaluator's job: the proposer returns what is well-formed
    assert good.source == GOOD and wrong.source == WRONG and good.id != wrong.id

    # the second prompt of the round lists the first idea, so the model diversifies
    assert "Already proposed in this round" not in server.requests[0].text
    assert "- one program per row, the whole row in registers" in server.requests[1].text

    # the text that came over HTTP is a working Triton kernel (and the wrong one is wrong)
    for name, cand in (("good", good), ("wrong", wrong)):
        (tmp_path / f"{name}.py").write_text(cand.source)
    check = textwrap.dedent("""
        import importlib, sys, torch
        sys.path.insert(0, sys.argv[1])
        x = torch.randn(5, 37, generator=torch.Generator().manual_seed(0)) * 4
        for name in ("good", "wrong"):
            y = importlib.import_module(name).softmax(x.t().contiguous().t())
            print(name, torch.allclose(y, torch.softmax(x, dim=-1), atol=1e-6, rtol=1e-5))
    """)
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV} | {"TRITON_INTERPRET": "1"}
    out = subprocess.run(
        [sys.executable, "-c", check, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["good", "True", "wrong", "False"]


def test_garbage_is_retried_with_a_correction_and_every_attempt_recorded(server, ctx, api_key):
    server.script(
        answer("I would fuse the two passes and keep the row in shared memory."),
        answer(fenced("import triton\n\ndef softmax(x):\n    return (x +\n")),
        answer(fenced(GOOD)),
    )
    [cand] = proposer(server, max_attempts=3).propose(ctx, 1)
    assert cand.source == GOOD
    calls = cand.meta["attempts"]
    assert [(c["outcome"], c["reason"]) for c in calls] == [
        ("malformed", "no_code_block"),
        ("malformed", "syntax_error"),
        ("ok", None),
    ]
    assert "line 4" in calls[1]["detail"]
    # the conversation grows: each retry carries the bad answer and what was wrong with it
    second, third = server.requests[1].body["messages"], server.requests[2].body["messages"]
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert second[2]["content"].startswith("I would fuse")
    assert "it has no fenced ```python code block" in second[3]["content"]
    assert "the module does not compile: line 4" in third[5]["content"]
    # tokens and the prompt digest cover the whole conversation's first message
    assert cand.meta["tokens"]["total"] == sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls)
    assert cand.meta["prompt_digest"] == digest(server.requests[0].body["messages"])


def test_always_garbage_gives_no_candidate_and_a_recorded_failure(server, ctx, api_key):
    no_triton = "import torch\n\ndef softmax(x: torch.Tensor) -> torch.Tensor:\n    return torch.softmax(x, -1)\n"
    server.script(
        answer("I'm sorry, I can't help with that."),
        answer(fenced("import triton\n\ndef soft_max(x):\n    return x\n")),
        answer(fenced(no_triton)),
    )
    llm = proposer(server, max_attempts=3)
    assert llm.propose(ctx, 1) == []
    [failure] = llm.failures
    assert failure["reason"] == "malformed_answers"
    assert [c["reason"] for c in failure["attempts"]] == ["refusal", "missing_function", "no_triton_kernel"]
    assert failure["detail"] == "3 unusable answer(s): refusal, missing_function, no_triton_kernel"
    assert failure["tokens"]["total"] > 0 and llm.tokens_used == failure["tokens"]["total"]
    assert failure["model"] == "openai/fake-model" and failure["round"] == 1
    assert len(server.requests) == 3


def test_server_error_then_success(server, ctx, api_key):
    server.script(error(500, "upstream overloaded"), answer(fenced(GOOD)))
    [cand] = proposer(server).propose(ctx, 1)
    first, second = cand.meta["attempts"]
    assert (first["outcome"], first["reason"], first["status"]) == ("provider_error", "server_error", 500)
    assert "upstream overloaded" in first["detail"] and first["waited_s"] == 0.01
    assert second["outcome"] == "ok"
    # a provider retry re-sends the same conversation
    assert server.requests[0].body["messages"] == server.requests[1].body["messages"]


def test_rate_limit_waits_for_retry_after(server, ctx, api_key):
    server.script(error(429, "rate limit reached", headers={"Retry-After": "1"}), answer(fenced(GOOD)))
    [cand] = proposer(server, backoff_s=0.01).propose(ctx, 1)
    first = cand.meta["attempts"][0]
    assert (first["reason"], first["status"], first["waited_s"]) == ("rate_limited", 429, 1.0)
    assert server.requests[1].at - server.requests[0].at >= 0.95


def test_timeout_is_retried(server, ctx, api_key):
    server.script(answer(fenced(GOOD), delay_s=1.5), answer(fenced(GOOD)))
    [cand] = proposer(server, timeout_s=0.3).propose(ctx, 1)
    assert [c["reason"] for c in cand.meta["attempts"]] == ["timeout", None]


def test_provider_down_is_recorded_and_ends_the_round(server, ctx, api_key):
    server.script(*[error(503, "maintenance")] * 3)
    llm = proposer(server, provider_retries=2)
    assert llm.propose(ctx, 4) == []  # one slot's retries, then the round stops
    [failure] = llm.failures
    assert failure["reason"] == "provider_error" and failure["detail"].startswith("server_error: ")
    assert [c["status"] for c in failure["attempts"]] == [503, 503, 503]
    assert [c["waited_s"] for c in failure["attempts"]] == [0.01, 0.02, 0.0]


def test_the_key_is_redacted_from_prompts_and_echoed_errors(server, ctx, api_key, caplog):
    caplog.set_level(logging.DEBUG)
    # a context should never hold the key; if one does, the prompt still does not carry it
    ctx.hypothesis.evidence["note"] = f"collected with {api_key}"
    server.script(error(500, f"invalid header Authorization: Bearer {api_key}"), answer(fenced(GOOD)))
    [cand] = proposer(server).propose(ctx, 1)
    assert "Bearer [redacted]" in cand.meta["attempts"][0]["detail"]
    assert all(api_key not in json.dumps(r.body) for r in server.requests)
    assert "collected with [redacted]" in server.requests[0].text
    assert api_key not in json.dumps(cand.to_json())
    assert api_key not in caplog.text


def test_a_duplicate_of_history_is_refused(server, ctx, api_key):
    seen = Candidate(kernel="softmax", proposer="llm:openai/fake-model", source=GOOD, function="softmax")
    ctx.history.append((seen, Verdict(candidate=seen.id, passed=True, speedup=1.1, score=0.1)))
    better = GOOD.replace("one row per program", "one row per program, divide once")
    server.script(answer(fenced(GOOD + "\n\n")), answer(fenced(better)))
    [cand] = proposer(server).propose(ctx, 1)
    assert cand.source == better
    assert cand.meta["attempts"][0]["reason"] == "duplicate"
    # the passing source candidate is shown to the model as the one to beat
    assert f"# The best candidate so far (id {seen.id}, score 0.1)" in server.requests[0].text


def test_token_budget(server, ctx, api_key):
    llm = proposer(server, max_tokens=4096)
    ctx.token_budget = 100  # less than the prompt: nothing is sent
    assert llm.propose(ctx, 2) == []
    assert llm.failures[-1]["reason"] == "token_budget_exhausted" and server.requests == []

    # room for one conversation: the answer is capped to what is left, then the round stops
    prompt_estimate = _estimate_tokens(
        [
            {"role": "system", "content": prompts.SYSTEM},
            {"role": "user", "content": prompts.render_task(ctx, proposed=[], history_limit=20)},
        ]
    )
    ctx.token_budget = prompt_estimate + 1000
    server.script(answer(fenced(GOOD)))
    [cand] = llm.propose(ctx, 2)
    assert server.requests[0].body["max_tokens"] == 1000
    assert llm.failures[-1]["reason"] == "token_budget_exhausted" and len(server.requests) == 1
    assert cand.meta["tokens"]["total"] <= ctx.token_budget


def test_priced_model_cost_comes_from_litellm(server, ctx, api_key):
    import litellm  # already imported by the proposer's first call; here to read its prices

    server.script(answer(fenced(GOOD)))
    llm = LLMProposer(model="openai/gpt-4o-mini", api_base=server.url, api_key_env=KEY_ENV)
    [cand] = llm.propose(ctx, 1)
    price = litellm.model_cost["gpt-4o-mini"]
    expected = (
        cand.meta["prompt_tokens"] * price["input_cost_per_token"]
        + cand.meta["completion_tokens"] * price["output_cost_per_token"]
    )
    assert cand.meta["cost_usd"] == pytest.approx(expected) and cand.meta["cost_usd"] > 0
    assert cand.meta["cost_note"] is None and llm.cost_usd == pytest.approx(expected)


def test_configuration_errors_are_raised_clearly(server, ctx, api_key, monkeypatch):
    with pytest.raises(LLMConfigError, match=r"cannot route model 'nosuchprovider/x' \(config key 'model'\)"):
        make("llm", {"model": "nosuchprovider/x", "api_base": server.url}).propose(ctx, 1)
    with pytest.raises(LLMConfigError, match="'max_attempts' is 0; expected an integer >= 1"):
        make("llm", {"model": "openai/fake-model", "max_attempts": 0})
    with pytest.raises(LLMConfigError, match="'api_key_env' is 'sk-abc-123'; expected the \\*name\\*"):
        LLMProposer(model="openai/fake-model", api_key_env="sk-abc-123")
    with pytest.raises(LLMConfigError, match="completion_kwargs"):
        LLMProposer(model="openai/fake-model", completion_kwargs={"api_key": "x"})
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(LLMConfigError, match=f"environment variable {KEY_ENV} .* is not set"):
        proposer(server).propose(ctx, 1)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="needs OPENAI_API_KEY in the environment"):
        LLMProposer(model="openai/gpt-4o").propose(ctx, 1)
    assert server.requests == []  # none of these reached the network
    # a key the server rejects is configuration too: retrying cannot fix it
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    server.script(error(401, "invalid api key"))
    with pytest.raises(LLMConfigError, match=r"refused the request \(401\).*invalid api key"):
        proposer(server).propose(ctx, 1)


def test_a_local_server_needs_no_key(server, ctx, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.script(answer(fenced(GOOD)))
    [cand] = LLMProposer(model="openai/fake-model", api_base=server.url).propose(ctx, 1)
    assert cand.source == GOOD


@pytest.mark.parametrize(
    "text, finish, reason",
    [
        ("", "stop", "empty"),
        ("   \n", "stop", "empty"),
        ("Idea: x\n```python\nimport triton\n@triton.jit\ndef k(): pass\n", "length", "truncated"),
        ("Idea: x\n```python\nimport triton\n", "stop", "unterminated_code_block"),
        ("I cannot help with writing that kernel.", "stop", "refusal"),
        ("Here is the plan, in words only.", "stop", "no_code_block"),
        ("```python\n```\n", "stop", "empty"),
        (fenced(GOOD) + fenced(WRONG), "stop", "several_code_blocks"),
        (
            fenced(GOOD.replace("def softmax(x: torch.Tensor)", "def softmax(inp: torch.Tensor)")),
            "stop",
            "signature_mismatch",
        ),
        (
            fenced(GOOD.replace("def softmax(x: torch.Tensor)", "def softmax(x: torch.Tensor, dim)")),
            "stop",
            "signature_mismatch",
        ),
        (fenced(GOOD.replace("@triton.jit\n", "")), "stop", "no_triton_kernel"),
        (fenced(GOOD.replace("\ndef softmax(", "\nclass Wrapper:\n  def softmax(")), "stop", "missing_function"),
        (fenced("import triton\n\ndef softmax(x):\n    return (\n"), "stop", "syntax_error"),
    ],
)
def test_unusable_answers_are_named(text, finish, reason):
    reference = prompts.top_level_function((ROOT / "kernels" / "softmax.py").read_text(), "softmax")
    parsed = _parse_answer(text, finish, "softmax", reference, set())
    assert (parsed.source, parsed.reason) == (None, reason)


@pytest.mark.parametrize(
    "text",
    [
        fenced(GOOD),
        "**Idea:** one program per row\n```py\n" + GOOD + "```",
        "Idea: one program per row\n```\n" + GOOD + "```\nThis should be faster.",
        fenced(GOOD.replace("def softmax(x: torch.Tensor)", "def softmax(x: torch.Tensor, block: int = 0)")),
        "Idea: one program per row\n```python\nprint('a sketch')\n```\n" + fenced(GOOD),
    ],
)
def test_usable_answer_shapes(text):
    reference = prompts.top_level_function((ROOT / "kernels" / "softmax.py").read_text(), "softmax")
    parsed = _parse_answer(text, "stop", "softmax", reference, set())
    assert parsed.reason is None and "def softmax(x: torch.Tensor" in parsed.source
    assert parsed.summary.startswith("one program per row")


def test_litellm_is_imported_lazily_and_reaches_only_the_configured_server(server, ctx, api_key, tmp_path):
    """In a fresh interpreter: importing the proposer does not import litellm, and a whole
    proposal opens connections to the configured server only: no price list download, no
    telemetry, no tokenizer fetch (Python's audit hooks see every socket connect and DNS lookup)."""
    server.script(answer(fenced(GOOD)))
    (tmp_path / "ctx.json").write_text(
        json.dumps(
            {
                "spec_text": ctx.spec_text,
                "kernel_source": ctx.kernel_source,
                "tunables": ctx.tunables,
                "hypothesis": ctx.hypothesis.to_json(),
            }
        )
    )
    script = textwrap.dedent(
        """
        import json, sys
        seen = []
        sys.addaudithook(lambda event, args: seen.append((event, repr(args[1] if event == "socket.connect"
                         else args[:2]))) if event in ("socket.connect", "socket.getaddrinfo") else None)
        from pytest_aina.changer.proposers.llm import LLMProposer
        from pytest_aina.changer.proposers import ProposalContext
        from pytest_aina.reasoner import Hypothesis
        lazy = "litellm" not in sys.modules
        d = json.load(open(sys.argv[2]))
        d["hypothesis"] = Hypothesis.from_json(d["hypothesis"])
        ctx = ProposalContext(kernel="softmax", spec=None, function="softmax", **d)
        cands = LLMProposer(model="openai/fake-model", api_base=sys.argv[1], api_key_env="%s").propose(ctx, 1)
        print(json.dumps({"lazy": lazy, "candidates": len(cands), "network": seen}))
    """
        % KEY_ENV
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    out = subprocess.run(
        [sys.executable, "-c", script, server.url, str(tmp_path / "ctx.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["lazy"] and result["candidates"] == 1
    assert result["network"], "the audit hook saw no connection at all"
    port = str(server.port)
    for event, args in result["network"]:
        assert "127.0.0.1" in args and port in args, f"unexpected network use: {event} {args}"


# -- issue 16: a search worth its tokens ---------------------------------------------------


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_preflight_names_an_unreachable_server_at_once(ctx, api_key):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    llm = LLMProposer(model="openai/fake-model", api_base=url, api_key_env=KEY_ENV, backoff_s=0.01)
    with pytest.raises(LLMConfigError, match=r"nothing answers at http://127\.0\.0\.1:\d+/v1.*--api-base"):
        llm.preflight()


def test_connection_refused_is_not_a_server_error(ctx, api_key):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    llm = LLMProposer(model="openai/fake-model", api_base=url, api_key_env=KEY_ENV, backoff_s=0.01, provider_retries=0)
    assert llm.propose(ctx, 1) == []
    [call] = llm.failures[0]["attempts"]
    assert call["reason"] == "connection_error" and call["status"] != 500


def test_preflight_reports_an_unknown_model_and_a_missing_key_before_anything_else(server, ctx, api_key, monkeypatch):
    server.script(error(404, "The model `fake-model` does not exist"))
    with pytest.raises(LLMConfigError, match=r"refused the request \(404\).*does not exist.*--model"):
        proposer(server).preflight()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(LLMConfigError, match=f"environment variable {KEY_ENV} .* is not set"):
        proposer(server).preflight()
    # a server that answers: one short request, its tokens counted
    monkeypatch.setenv(KEY_ENV, api_key)
    server.script(answer("OK"))
    llm = proposer(server)
    llm.preflight()
    assert server.requests[-1].body["max_tokens"] <= 16 and llm.tokens_used > 0


def test_a_model_that_has_no_further_ideas_is_not_asked_again(server, ctx, api_key):
    server.script(answer(fenced(GOOD)), answer("I have no further ideas: every variant I know was tried."))
    llm = proposer(server, max_attempts=3)
    assert len(llm.propose(ctx, 1)) == 1
    assert llm.propose(ctx, 1) == []  # one answer, no corrective re-asking
    assert llm.failures[-1]["reason"] == "gave_up" and llm.exhausted
    assert llm.propose(ctx, 1) == [] and len(server.requests) == 2  # never asked again
    # the prompt told the model how to say so
    assert "No further ideas." in server.requests[0].text


def test_a_proposer_that_keeps_failing_is_retired(server, ctx, api_key):
    server.script(*[answer("Here is the plan, in words only.")] * 4)
    llm = proposer(server, max_attempts=2, max_failed_proposals=2)
    assert llm.propose(ctx, 1) == [] and not llm.exhausted
    assert llm.propose(ctx, 1) == [] and llm.exhausted
    assert llm.propose(ctx, 1) == [] and len(server.requests) == 4
    assert [f["reason"] for f in llm.failures] == ["malformed_answers", "malformed_answers"]


def test_the_model_is_told_a_candidate_was_hostile_with_every_attempt(server, ctx, api_key):
    bad = Candidate(kernel="softmax", proposer="llm:openai/fake-model", source="# hostile\n", function="softmax")
    violations = [{"kind": "write outside sandbox", "detail": f"/home/me/repo/out{i}.txt"} for i in range(4)]
    violations.append({"kind": "network attempt", "detail": "connect 127.0.0.1:9"})
    verdict = Verdict(
        candidate=bad.id,
        passed=False,
        failed_stage="examples",
        reason="write outside sandbox",
        detail="...",
        violations=violations,
    )
    assert verdict.hostile and Verdict.from_json(verdict.to_json()) == verdict
    ctx.history.append((bad, verdict))
    server.script(answer(fenced(GOOD)))
    proposer(server).propose(ctx, 1)
    sent = server.requests[0].text
    line = next(ln for ln in sent.splitlines() if "REJECTED AS HOSTILE" in ln)
    assert all(f"out{i}.txt" in line for i in range(4)) and "network attempt (connect 127.0.0.1:9)" in line
    assert "/home/me" not in sent
