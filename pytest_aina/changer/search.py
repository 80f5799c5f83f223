"""The search: propose, evaluate, keep the best, within a budget; resumable.

Every evaluated candidate is appended to a checkpoint (JSON lines, flushed and fsynced)
before the next one starts, so an interrupted search (Ctrl-C, kill -9) resumes without
re-running anything it measured: a candidate already in the checkpoint is not evaluated
again. The proposers are seeded and the record says how to repeat the run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path

from pytest_aina.changer.executors import Executor, LocalExecutor
from pytest_aina.changer.model import Attempt, Candidate, Verdict
from pytest_aina.changer.proposers.base import ProposalContext, Proposer
from pytest_aina.changer.settings import Budget


@dataclass
class Outcome:
    attempts: list[Attempt]
    used: dict = field(default_factory=dict)  # evaluations, wall_s, tokens actually spent
    stopped_by: str = ""  # "evaluations", "wall_s", "tokens" or "exhausted"


class Checkpoint:
    """Append-only JSON lines of attempts; a torn last line (killed mid-write) is ignored."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> list[Attempt]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(Attempt.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill: that candidate is simply evaluated again
        return out

    def append(self, attempt: Attempt) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(attempt.to_json(), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _tokens(c: Candidate) -> int:
    return int(c.meta.get("prompt_tokens") or 0) + int(c.meta.get("completion_tokens") or 0)


def _spent_by(proposer) -> int:
    return int(getattr(proposer, "tokens_used", 0) or 0)


def run_search(
    ctx: ProposalContext,
    proposers: list[Proposer],
    evaluate: Callable[[Candidate], Verdict],
    budget: Budget,
    *,
    checkpoint: Checkpoint | None = None,
    executor: Executor | None = None,
    progress: Callable[[Attempt, int, int], None] | None = None,
) -> Outcome:
    """Search until the budget is spent or the proposers have nothing new.

    ``evaluate`` runs one candidate (in a sandbox) and never raises for what the candidate
    does. It runs on ``executor`` (:mod:`pytest_aina.changer.executors`; default: one at a
    time on this machine), up to its ``slots`` at once; proposers take turns. Each verdict is
    checkpointed here, once, when its evaluation completes, wherever it ran.
    """
    start = time.monotonic()
    done: list[Attempt] = checkpoint.load() if checkpoint else []
    ctx.history = [(a.candidate, a.verdict) for a in done]
    seen = {a.candidate.id for a in done}
    resumed = len(done)
    tokens = sum(_tokens(a.candidate) for a in done)
    stopped_by = "exhausted"
    pending: dict[Future, Candidate] = {}
    turn = 0
    idle_rounds = 0

    def spent() -> str | None:
        if len(done) + len(pending) >= budget.evaluations:
            return "evaluations"
        if time.monotonic() - start >= budget.wall_s:
            return "wall_s"
        if budget.tokens is not None and tokens >= budget.tokens:
            return "tokens"
        return None

    pool = executor or LocalExecutor(1)
    slots = max(1, pool.slots)
    try:
        try:
            while True:
                reason = spent()
                while reason is None and len(pending) < slots and idle_rounds < len(proposers):
                    proposer = proposers[turn % len(proposers)]
                    turn += 1
                    if getattr(proposer, "exhausted", False):  # it said it has nothing more: not asked
                        idle_rounds += 1
                        continue
                    if budget.tokens is not None:
                        ctx.token_budget = budget.tokens - tokens
                    before = _spent_by(proposer)
                    fresh = [c for c in proposer.propose(ctx, 1) if c.id not in seen]
                    # tokens of answers that gave no candidate count against the budget too
                    tokens += max(0, _spent_by(proposer) - before - sum(_tokens(c) for c in fresh))
                    if not fresh:
                        idle_rounds += 1
                        continue
                    idle_rounds = 0
                    cand = fresh[0]
                    seen.add(cand.id)
                    tokens += _tokens(cand)
                    pending[pool.submit(evaluate, cand)] = cand
                    reason = spent()
                if not pending:
                    stopped_by = reason or "exhausted"
                    break
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in finished:
                    cand = pending.pop(fut)
                    attempt = Attempt(cand, fut.result())
                    done.append(attempt)
                    ctx.history.append((cand, attempt.verdict))
                    if checkpoint:
                        checkpoint.append(attempt)
                    if progress:
                        progress(attempt, len(done), budget.evaluations)
                    idle_rounds = 0  # new results can give proposers new ideas
        except KeyboardInterrupt:  # what was evaluated is in the checkpoint already
            for fut in pending:
                fut.cancel()
            raise
    finally:
        if executor is None:  # ours: closed here; a caller's executor is the caller's to close
            pool.close()
    return Outcome(
        done,
        {"evaluations": len(done), "resumed": resumed, "wall_s": round(time.monotonic() - start, 3), "tokens": tokens},
        stopped_by,
    )


def best(attempts: list[Attempt]) -> Attempt | None:
    """The passing attempt with the highest score; ties go to the earliest (deterministic)."""
    passing = [a for a in attempts if a.verdict.passed and a.verdict.score is not None]
    return max(passing, key=lambda a: a.verdict.score, default=None)
