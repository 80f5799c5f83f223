"""What the parent concludes from a timing session: answers, clocks and figures judged.

Everything here runs in the parent, on what the child sent and on the parent's own
measurements, never on the candidate's word. A conclusion that ends the session is a
:class:`Stop` with its status and reason: a wrong, stale or partial answer, clocks that
disagree (tampered clock), a figure faster than possible (measurement error).
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from pytest_aina.sandbox import result as R
from pytest_aina.sandbox.result import Call, TimingResult

#: how much faster than the no-op round trip a call may seem before it is impossible
FLOOR_SLACK = 0.8


class Stop(Exception):
    """The harness's verdict ends the session: ``status`` and ``reason`` are the result's
    (unless what the sandbox saw, a kill or a violation, outranks them)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _describe(problem: Any) -> str | None:
    if problem is None:
        return None
    if isinstance(problem, str):
        return problem
    if hasattr(problem, "describe"):
        return str(problem.describe())
    if isinstance(problem, dict):
        return json.dumps(problem, default=str)
    return str(problem)


def run_check(check, out, expected, params) -> str | None:
    """``check(out, expected, **params)`` as a problem description, or None when acceptable;
    an ``AssertionError`` or a check that cannot compare is a problem too."""
    try:
        return _describe(check(out, expected, **params))
    except AssertionError as e:
        return str(e) or "check failed"
    except Exception as e:  # a malformed output can make a check trip: still a wrong answer
        return f"the check could not compare the output: {type(e).__name__}: {e}"


def wrong(chk, out, expected, params, history, i, s, problem) -> tuple[str, str]:
    """Tell a stale or partial result from a plain wrong answer."""
    for j, earlier in reversed(history):
        if run_check(chk, out, earlier, params) is None:
            return R.STALE, (
                f"stale result: call {i} (seed {s}) returned the answer to call {j}'s inputs "
                "(an answer cached between calls)"
            )
    rows = _partial_rows(chk, out, expected, params)
    if rows is not None:
        bad, total = rows
        shown = ", ".join(f"{a}..{b - 1}" if b - a > 1 else str(a) for a, b in bad[:6])
        return R.PARTIAL, (
            f"partial result: call {i} (seed {s}): rows {shown} of {total} are wrong, the others right\n{problem}"
        )
    return R.WRONG, f"wrong answer: call {i} (seed {s}):\n{problem}"


def _partial_rows(chk, out, expected, params):
    """Row blocks (at most 64) that fail when some others pass, or None."""
    try:
        n, m = len(out), len(expected)
        if n != m or n < 2 or tuple(getattr(out, "shape", ())) != tuple(getattr(expected, "shape", ())):
            return None
    except TypeError:
        return None
    blocks = min(n, 64)
    edges = [round(k * n / blocks) for k in range(blocks + 1)]
    bad = []
    for a, b in zip(edges, edges[1:]):
        if run_check(chk, out[a:b], expected[a:b], params) is not None:
            bad.append((a, b))
    if not bad or len(bad) == blocks:
        return None
    merged = [bad[0]]
    for a, b in bad[1:]:
        if a == merged[-1][1]:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged, n


def judge_clocks(res: TimingResult, timed: list[Call]) -> None:
    """The child's own measurements against each other and against the parent's."""
    for c in timed:
        if c.child_s > c.parent_s + 1e-3:
            raise Stop(
                R.TAMPERED_CLOCK,
                f"tampered clock: call {c.index} measured {c.child_s * 1e3:.3f} ms inside "
                f"the child but only {c.parent_s * 1e3:.3f} ms from the parent",
            )
    child = statistics.median(c.child_s for c in timed)
    live_gap = statistics.median(abs(c.live_s - c.child_s) if c.live_s == c.live_s else float("inf") for c in timed)
    if live_gap > max(0.25 * child, 2e-4):
        live = statistics.median(c.live_s for c in timed)
        raise Stop(
            R.TAMPERED_CLOCK,
            f"tampered clock: time.perf_counter in the child says a call takes "
            f"{live * 1e3:.3f} ms, the real clock {child * 1e3:.3f} ms",
        )
    parent_net = statistics.median(c.parent_s for c in timed) - res.floor["median_s"]
    if child < 0.1 * parent_net and parent_net - child > 0.05:
        raise Stop(
            R.TAMPERED_CLOCK,
            f"tampered clock: the child's clock says {child * 1e3:.3f} ms per call, the "
            f"parent's {parent_net * 1e3:.3f} ms",
        )


def judge_plausibility(res: TimingResult, timed: list[Call], min_plausible_s: float | None) -> None:
    """A call faster than the protocol's own no-op, or a net median below what physics
    allows (``min_plausible_s``), is a measurement error, never a win."""
    fastest = min(timed, key=lambda c: c.parent_s)
    if fastest.parent_s < FLOOR_SLACK * res.floor["min_s"]:
        raise Stop(
            R.MEASUREMENT,
            f"measurement error: call {fastest.index} took {fastest.parent_s * 1e6:.1f} us, "
            f"less than the protocol's own no-op round trip ({res.floor['min_s'] * 1e6:.1f} us):"
            " faster than physically possible, not a win",
        )
    if min_plausible_s is not None and res.net_median_s < min_plausible_s:
        raise Stop(
            R.MEASUREMENT,
            f"measurement error: median {res.net_median_s * 1e6:.1f} us (after the protocol "
            f"floor) is below the physically plausible {min_plausible_s * 1e6:.1f} us",
        )
