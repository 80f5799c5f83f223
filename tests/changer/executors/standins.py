"""Cheap stand-ins for the sandboxed evaluation, importable on the cluster's nodes (the
local cluster puts this folder on their path): the executors are what is tested here, the
real cascade has its own tests (and one real candidate runs on the cluster too)."""

from __future__ import annotations

import os
import random
import time
from itertools import product
from pathlib import Path

from pytest_aina.changer.model import Candidate, Verdict
from pytest_aina.changer.proposers import ProposalContext
from pytest_aina.reasoner import Hypothesis

TUNABLES = {"BLOCK_N": [64, 128, 256, 512, 1024, 2048], "ROWS_PER_PROGRAM": [1, 2, 4, 8]}


def landscape(c: Candidate) -> Verdict:
    """A deterministic function of the config (tests/changer/test_search.py's landscape)."""
    cfg = c.config or {}
    if cfg.get("BLOCK_N") == 64 and cfg.get("ROWS_PER_PROGRAM") == 8:
        return Verdict(c.id, False, ["import"], "examples", "wrong answer", "synthetic failure")
    b = cfg.get("BLOCK_N", 256)
    r = cfg.get("ROWS_PER_PROGRAM", 1)
    score = 10 - abs(b - 1024) / 256 - abs(r - 2)
    return Verdict(c.id, True, ["import", "examples", "properties", "benchmarks"], score=score, speedup=score)


class Slow:
    """``landscape`` taking ``seconds``; with ``marks``, it first leaves a file named
    ``<candidate>@<node ip>`` there, so a test can see where an evaluation is running."""

    def __init__(self, seconds: float, marks: str | None = None):
        self.seconds = seconds
        self.marks = marks

    def __call__(self, c: Candidate) -> Verdict:
        if self.marks:
            import ray

            Path(self.marks, f"{c.id}@{ray.util.get_node_ip_address()}").write_text(str(os.getpid()))
        start = time.monotonic()
        time.sleep(self.seconds)
        v = landscape(c)
        v.wall_s = time.monotonic() - start
        return v


class FixedOrder:
    """Proposes the whole space in a seeded order, whatever the history says: the set of
    candidates a run evaluates is then the same however its evaluations interleave."""

    name = "fixed"

    def __init__(self):
        self.given: set[str] = set()  # proposed and maybe still being evaluated

    def propose(self, ctx: ProposalContext, n: int) -> list[Candidate]:
        names = sorted(ctx.tunables)
        space = [dict(zip(names, vals)) for vals in product(*(ctx.tunables[k] for k in names))]
        random.Random(ctx.seed).shuffle(space)
        seen = self.given | {c.id for c, _ in ctx.history}
        out = [c for c in (Candidate(ctx.kernel, self.name, config=cfg) for cfg in space) if c.id not in seen][:n]
        self.given |= {c.id for c in out}
        return out


def ctx(seed: int = 0) -> ProposalContext:
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


def comparable(v: Verdict, measured: bool = False) -> dict:
    """A verdict without what depends on the machine and the moment: its wall time, the
    time of each phase of its sandboxes, and its placement; with ``measured``, also the
    timings and what derives from them."""
    d = v.to_json()
    for k in ("wall_s", "phases", "ran_on") + (
        ("stage_s", "checks_items_s", "timings", "score", "speedup", "detail", "sandbox") if measured else ()
    ):
        d.pop(k)
    return d
