"""Tokens the LLM proposer spends per accepted candidate, on a scripted model.

The same script, the same search, the code of whichever checkout runs it: run it on two
commits to compare them (issue 16 asked for before and after). The model is
``tests/fakes/openai_server.py`` on loopback, reached through litellm as a real server is;
its usage figures are ~4 characters a token, the same for both runs. Evaluations are a
stand-in (a source that normalises with ``tl.sum`` passes, as does every config): what is
measured is what the search asks the model, not kernel time. ``workers=1`` keeps the order
of proposals deterministic.

Scenarios:

- ``gives_up``: two good kernels, then "No further ideas." to every later request;
- ``keeps_failing``: one good kernel, then prose without code to every later request, with
  the meta-parameter search alongside (its evaluations keep the search going, so the LLM is
  asked again after each).

Run from the repository root::

    .venv/bin/python benchmarks/bench_llm_tokens.py [--evaluations 12] [--json FILE]

Accepted: an LLM candidate that passed its (stand-in) evaluation. Tokens: everything the
proposer spent (``LLMProposer.tokens_used``), answers that gave no candidate included.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_aina.changer.model import Verdict  # noqa: E402
from pytest_aina.changer.proposers import ProposalContext, make  # noqa: E402
from pytest_aina.changer.proposers.llm import LLMProposer  # noqa: E402
from pytest_aina.changer.search import run_search  # noqa: E402
from pytest_aina.changer.settings import Budget  # noqa: E402
from pytest_aina.reasoner import Hypothesis  # noqa: E402
from pytest_aina.spec.model import load_spec  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, answer  # noqa: E402

KEY_ENV = "AINA_BENCH_LLM_KEY"
GOOD = (ROOT / "tests/changer/test_llm_proposer.py").read_text().split("GOOD = '''\\\n", 1)[1].split("'''", 1)[0]
GOOD2 = GOOD.replace("one row per program", "one row per program, exp2 with a prescaled log2(e)")


def fenced(source: str, idea: str) -> str:
    return f"Idea: {idea}\n\n```python\n{source}```\n"


SCENARIOS = {
    "gives_up": (
        ("llm",),
        [answer(fenced(GOOD, "whole row per program")), answer(fenced(GOOD2, "exp2 instead of exp"))],
        answer("No further ideas."),
    ),
    "keeps_failing": (
        ("metaparams", "llm"),
        [answer(fenced(GOOD, "whole row per program"))],
        answer("I would fuse the two passes and keep the row in registers; code to follow."),
    ),
}


def stand_in(cand) -> Verdict:
    ok = cand.config is not None or "tl.sum" in (cand.source or "")
    if ok:
        return Verdict(cand.id, True, stages=["import", "examples", "properties", "benchmarks"], score=1.0)
    return Verdict(cand.id, False, failed_stage="examples", reason="wrong answer", detail="stand-in")


def context() -> ProposalContext:
    spec_path = ROOT / "specs/softmax.yaml"
    source = (ROOT / "kernels/softmax.py").read_text()
    tunables = next(
        ast.literal_eval(n.value)
        for n in ast.parse(source).body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "TUNABLES"
    )
    return ProposalContext(
        kernel="softmax",
        spec=load_spec(spec_path),
        spec_text=spec_path.read_text(),
        kernel_source=source,
        function="softmax",
        hypothesis=Hypothesis.from_json({"id": "h-bench", "kind": "hot_unspecialised", "kernel": "softmax"}),
        tunables={k: v for k, v in tunables.items() if k not in ("num_warps", "num_stages")},
        seed=0,
    )


def run(name: str, evaluations: int, tokens: int | None) -> dict:
    proposers, script, fallback = SCENARIOS[name]
    with FakeOpenAI(*script, fallback=fallback) as server:
        llm = LLMProposer(model="openai/fake-model", api_base=server.url, api_key_env=KEY_ENV, backoff_s=0.01)
        made = [llm if p == "llm" else make(p) for p in proposers]
        out = run_search(context(), made, stand_in, Budget(evaluations=evaluations, wall_s=600, tokens=tokens))
        accepted = [a for a in out.attempts if a.candidate.proposer == llm.name and a.verdict.passed]
        return {
            "scenario": name,
            "requests": len(server.requests),
            "tokens": llm.tokens_used,
            "accepted": len(accepted),
            "tokens_per_accepted": round(llm.tokens_used / len(accepted), 1) if accepted else None,
            "evaluated": len(out.attempts),
            "stopped_by": out.stopped_by,
            "failures": [f["reason"] for f in llm.failures],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--evaluations", type=int, default=12)
    ap.add_argument("--tokens", type=int, default=None, help="the search's token budget (default: none)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    os.environ.setdefault(KEY_ENV, "sk-bench-not-a-secret")
    rows = [run(name, args.evaluations, args.tokens) for name in SCENARIOS]
    for r in rows:
        print(json.dumps(r))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
