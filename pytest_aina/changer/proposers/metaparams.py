"""The meta-parameter proposer: a seeded walk over a kernel's ``TUNABLES``, no LLM."""

from __future__ import annotations

import itertools
import random

from pytest_aina.changer.model import Candidate
from pytest_aina.changer.proposers.base import ProposalContext


class MetaParamProposer:
    """Seeded search over the kernel's tunables: the heuristic defaults first; then the
    neighbours of the best point so far (one parameter moved one step), starting from the
    heuristic's own point when the kernel reports it, else after a few random points.
    When the best point has no untried neighbour left (a local optimum, or one that
    noise made look like one), the walk backtracks: the neighbours of the next best, and
    so on; random untried points only when no scored point has a neighbour left."""

    name = "metaparams"

    def __init__(self, *, explore: int = 4):
        self.explore = explore

    def propose(self, ctx: ProposalContext, n: int) -> list[Candidate]:
        space = {k: list(v) for k, v in sorted(ctx.tunables.items())}
        tried = {_key(c.config) for c, _ in ctx.history if c.config is not None}
        rng = random.Random(f"{ctx.seed}:{len(ctx.history)}")
        out: list[dict] = []

        def take(cfg: dict) -> None:
            if _key(cfg) not in tried and all(_key(cfg) != _key(o) for o in out):
                out.append(cfg)

        if not tried:
            take({})  # the launcher's heuristic: the baseline any tuning must beat
        # the heuristic ({}) is a point of the space only when the kernel says which (ctx.heuristic):
        # then the search walks from it at once; otherwise from the best explicit point after exploring
        start = {k: v for k, v in (ctx.heuristic or {}).items() if k in space}
        if start and any(c.config == {} for c, _ in ctx.history):
            tried.add(_key(start))  # measured already, as the baseline
        scored = [
            (v.score, c.config or start)
            for c, v in ctx.history
            if v.passed and v.score is not None and (c.config or start)
        ]
        if scored and (start or len(scored) >= self.explore):
            # best first; sorted() is stable, so equal scores keep the order they were measured in
            for _, point in sorted(scored, key=lambda s: -s[0]):
                if len(out) >= n:
                    break
                neighbours = list(_neighbours(point, space))
                rng.shuffle(neighbours)
                for cfg in neighbours:
                    if len(out) >= n:
                        break
                    take(cfg)
        points = _all_points(space)
        rng.shuffle(points)
        for cfg in points:
            if len(out) >= n:
                break
            take(cfg)
        return [Candidate(kernel=ctx.kernel, proposer=self.name, config=cfg) for cfg in out[:n]]


def _key(cfg: dict | None) -> tuple:
    return tuple(sorted((cfg or {}).items()))


def _all_points(space: dict[str, list]) -> list[dict]:
    names = list(space)
    return [dict(zip(names, values)) for values in itertools.product(*(space[k] for k in names))]


def _neighbours(cfg: dict, space: dict[str, list]):
    for name, values in space.items():
        if name not in cfg:
            continue
        i = values.index(cfg[name]) if cfg[name] in values else None
        if i is None:
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(values):
                yield cfg | {name: values[j]}


def search_space_size(tunables: dict[str, list]) -> int:
    n = 1
    for v in tunables.values():
        n *= len(v)
    return n


def make(config: dict) -> MetaParamProposer:
    """The ``metaparams`` entry of :data:`~pytest_aina.changer.proposers.base.BUILTIN`."""
    return MetaParamProposer(**config)
