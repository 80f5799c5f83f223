"""The measurement the loop decides on: the baseline and the search's best candidates, side by side.

The search times each candidate once, while other evaluations run beside it (``workers``
at once). On a CPU the figure is the sandbox's CPU time per call, which a neighbour on the
other hyperthread still moves: the same configuration measured 20-25 ms per call with one
evaluation at a time and 22-37 ms with two (rms_norm on 2 cores, 2026-12-03), and in CI,
where another test file runs beside the search, a configuration 1.8-3.6x faster than the
baseline once came out within 5% of it and no change was written. The search's figures
rank candidates well enough to choose which to look at again; they are not what a
decision or a PR's before/after should rest on.

So once the search is over, :func:`side_by_side` times the baseline and the top
candidates again with nothing else of the search running: one sandboxed session at a time,
in an order that alternates between rounds (baseline first in round 1, last in round 2, ...)
so that a drift over the rounds meets every side alike, and every side of a round on the
same inputs call for call (the round's seed). A candidate is a winner when the median of
its pooled samples beats the baseline's by more than the noise margin, geometric mean over
the cases. It runs on the search's executor, as one task: on a cluster every side is timed
on the same node.

Every session is the same hostile-candidate protocol as the search's benchmarks
(:func:`pytest_aina.sandbox.time_calls`: the parent's clock, fresh inputs per call, every
output checked): a candidate that fails or trips a protection here is out, with the reason.
One exception, recorded under ``retried``: a session ended by "deferred work" (CPU used
after a call returned) is discarded and run once more. That check reads CPU clocks that
advance at scheduler ticks, and on a loaded machine an honest kernel, already vetted by the
search, was seen over its allowance by 0.1 ms past the tick it forgives (8.6 ms against
4.5 ms + 4 ms, in CI with another test file's servers running); with four times the
sessions of the search, that would sink one honest loop in a few. Only clean sessions'
samples count, so a candidate gains nothing by deferring work in one; a second trip of the
same side puts it out.
"""

from __future__ import annotations

import statistics
import time

from pytest_aina import sandbox
from pytest_aina.changer.evaluate import (
    Setup,
    candidate_file,
    clock_name,
    cpu_clock,
    figures,
    geomean,
    template_for,
    timing_args,
)
from pytest_aina.changer.model import Attempt, Candidate
from pytest_aina.sandbox import result as R

#: Rounds of the side-by-side timing: each side gets ``rounds`` sessions of ``Setup.calls``
#: timed calls, pooled; an odd number puts the baseline first as often as last, plus one.
ROUNDS = 3

#: How many of the search's best candidates are timed again beside the baseline.
TOP = 3


def challengers(attempts: list[Attempt], baseline: Attempt | None) -> list[Attempt]:
    """The candidates timed again beside the baseline: the best :data:`TOP` that
    passed every stage without tripping a protection, on the search's score, whatever their
    margin there (a neighbour's load can hide a real win in the search's figures). None
    without a baseline that passed: there is nothing to compare with."""
    if baseline is None or not baseline.verdict.passed:
        return []
    passing = [
        a
        for a in attempts
        if a.candidate.id != baseline.candidate.id
        and a.verdict.passed
        and a.verdict.score is not None
        and not a.verdict.hostile
    ]
    # sorted() is stable: equal scores keep the search's order (search.best's tie rule)
    return sorted(passing, key=lambda a: -a.verdict.score)[:TOP]


def order(sides: list[Candidate], round_: int) -> list[Candidate]:
    """The sides in the order round ``round_`` (from 0) times them: as given, then reversed."""
    return list(sides) if round_ % 2 == 0 else list(reversed(sides))


def side_by_side(
    baseline: Candidate,
    challengers: list[Candidate],
    setup: Setup,
    *,
    rounds: int = ROUNDS,
    progress=None,
) -> dict:
    """Time ``baseline`` and ``challengers`` in turn, ``rounds`` rounds per case (see the
    module's docstring) and return the record of it (JSON-able):

    * ``speedups``: {candidate id: baseline median / its median, geometric mean over the
      cases}, for every challenger that ran every session;
    * ``failed``: {candidate id: why it is out} (a failed session, a protection tripped);
    * ``retried``: {candidate id: why its one discarded session was} (deferred work, above);
    * ``cases``: per case, every side's pooled samples and median, and the clock read;
    * ``error``: set when the baseline itself could not be timed (then no speedups).
    """
    say = progress or (lambda line: None)
    start = time.monotonic()
    sides = [baseline, *challengers]
    files = {c.id: candidate_file(c, setup) for c in sides}
    template = template_for(setup)
    out: dict = {
        "rounds": rounds,
        "calls": setup.calls,
        "order": "alternating: the sides in turn, one session at a time, reversed every other round",
        "sides": [c.id for c in sides],
        "baseline": baseline.id,
        "cases": [],
        "speedups": {},
        "failed": {},
        "retried": {},
    }
    per_case: list[dict[str, list[sandbox.TimingResult]]] = []
    for i, bc in enumerate(setup.bench_cases):
        timed: dict[str, list[sandbox.TimingResult]] = {c.id: [] for c in sides}
        for r in range(rounds):
            # every side of a round gets the same inputs; each round new ones
            args = timing_args(setup, i, template=template, seed=(setup.seed * 1000 + i) * 1000 + r)
            for c in order(sides, r):
                if c.id in out["failed"]:
                    continue
                say(f"side by side {bc['label']}: round {r + 1}/{rounds}, {_who(c, baseline)}")
                t = sandbox.time_calls(f"{files[c.id]}:{setup.function}", **args)
                if t.status == R.DEFERRED and c.id not in out["retried"]:
                    out["retried"][c.id] = f"{bc['label']}, round {r + 1}: {t.reason}"
                    say(f"side by side {bc['label']}: round {r + 1}/{rounds}, {_who(c, baseline)} again ({t.status})")
                    t = sandbox.time_calls(f"{files[c.id]}:{setup.function}", **args)
                why = _why_out(t)
                if why:
                    out["failed"][c.id] = f"{bc['label']}, round {r + 1}: {why}"
                    if c.id == baseline.id:
                        out["error"] = f"the baseline could not be timed side by side: {out['failed'][c.id]}"
                        out["wall_s"] = round(time.monotonic() - start, 3)
                        return out
                    continue
                timed[c.id].append(t)
        per_case.append(timed)
    ratios: dict[str, list[float]] = {c.id: [] for c in challengers if c.id not in out["failed"]}
    for bc, timed in zip(setup.bench_cases, per_case):
        alive = {cid: ts for cid, ts in timed.items() if cid not in out["failed"]}
        cpu = cpu_clock(setup, *(t for ts in alive.values() for t in ts))
        samples = {cid: [x for t in ts for x in figures(t, cpu)[0]] for cid, ts in alive.items()}
        medians = {cid: statistics.median(xs) for cid, xs in samples.items()}
        out["cases"].append(
            {
                "case": bc["label"],
                "clock": clock_name(setup.device, cpu),
                "samples_s": samples,
                "median_s": medians,
            }
        )
        for cid in ratios:
            ratios[cid].append(medians[baseline.id] / medians[cid])
    out["speedups"] = {cid: geomean(xs) for cid, xs in ratios.items()}
    out["wall_s"] = round(time.monotonic() - start, 3)
    return out


def winner(confirmation: dict | None, margin: float) -> str | None:
    """The challenger with the best side-by-side speedup, when it exceeds ``1 + margin``."""
    if not confirmation or confirmation.get("error"):
        return None
    speedups = confirmation.get("speedups") or {}
    # ties go to the side timed first (the search's better-ranked), as the search's do
    best = max(speedups, key=lambda cid: speedups[cid], default=None)
    return best if best is not None and speedups[best] > 1 + margin else None


def _who(c: Candidate, baseline: Candidate) -> str:
    return "the baseline" if c.id == baseline.id else f"{c.id} ({c.describe()[:40]})"


def _why_out(t: sandbox.TimingResult) -> str | None:
    if not t.ok:
        return f"{t.status}: {t.reason}"
    if t.violations:
        return "protections tripped: " + ", ".join(sorted({str(v.get("kind") or v) for v in t.violations}))
    return None
