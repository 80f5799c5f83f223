"""The performance statistics: paired log-ratios of interleaved calls, a distribution-free
interval, a minimum effect size, and a sequential stopping rule.

Base and head run alternately in one session (A B B A A B ...); each adjacent (base, head)
couple is a *pair*, and its log-ratio ``log(head / base)`` cancels whatever drifts slower
than a pair (the machine's load, its clock, the cache state of the session). The estimate
is the median of the pairs' log-ratios; its interval is the sign test's (order statistics:
the number of pairs below the true median is Binomial(n, 1/2)), so it assumes no
distribution and a burst of noise from another process moves it by one rank, not by its
size. Ratios are head / base: above 1 the head is slower.

The decision, with ``noise`` the smallest slowdown that counts (the policy's minimum
effect size) and the interval at the policy's ``confidence``:

* **regression** when the whole interval lies above 1 *and* the estimate above 1 + noise:
  significant and material;
* **improvement** when the whole interval lies below 1 and the estimate below 1/(1 + noise);
* **no regression** when the interval's top is below 1 + noise (a slowdown that counts is
  ruled out), else **inconclusive**: more evidence is needed, never a pass.

Sequential sampling stops a case as soon as its answer is clear: the interval entirely
above 1 + noise (a regression) or entirely below it (none that counts). The error rates of
this procedure with its repeated looks were measured (benchmarks/gate_calibration.py,
docs/gate.md), not derived.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

from pytest_aina.changer.change.attestation import median, median_ci

REGRESSION, IMPROVEMENT, NO_REGRESSION, INCONCLUSIVE = "regression", "improvement", "no regression", "inconclusive"
#: Fewer pairs cannot reach a 95% sign-test interval (n=6 gives 96.9% with the extremes).
MIN_PAIRS = 6


@dataclass(frozen=True)
class Comparison:
    n: int
    ratio: float  # head / base (median of the paired ratios)
    ci: tuple[float, float]
    level: float  # the interval's achieved coverage
    outcome: str
    clear: bool  # sequential sampling may stop

    @property
    def speedup(self) -> float:
        return 1.0 / self.ratio

    @property
    def speedup_ci(self) -> tuple[float, float]:
        return 1.0 / self.ci[1], 1.0 / self.ci[0]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        d["speedup"] = self.speedup
        d["speedup_ci"] = list(self.speedup_ci)
        return d


def pair_log_ratios(base: list[float], head: list[float]) -> list[float]:
    if len(base) != len(head):
        raise ValueError(f"{len(base)} base and {len(head)} head times: pairs need equal counts")
    return [math.log(h / b) for b, h in zip(base, head)]


@lru_cache(maxsize=4096)
def median_ranks(n: int, confidence: float) -> tuple[int, int, float]:
    """The order statistics (0-based) bounding the median's interval for ``n`` values, and
    its level: median_ci's rule applied to the ranks themselves (it depends on n only)."""
    lo, hi, level = median_ci(range(n), confidence)
    return int(lo), int(hi), level


def compare(log_ratios: list[float], *, noise: float, confidence: float) -> Comparison:
    n = len(log_ratios)
    if n == 0:
        return Comparison(0, 1.0, (0.0, math.inf), 0.0, INCONCLUSIVE, False)
    s = sorted(log_ratios)
    est = median(s)
    i, j, level = median_ranks(n, confidence)
    lo, hi = s[i], s[j]
    ratio, ci = math.exp(est), (math.exp(lo), math.exp(hi))
    threshold = 1.0 + noise
    enough = n >= MIN_PAIRS and level >= confidence
    if enough and ci[0] > 1.0 and ratio > threshold:
        outcome = REGRESSION
    elif enough and ci[1] < 1.0 and ratio < 1.0 / threshold:
        outcome = IMPROVEMENT
    elif enough and ci[1] < threshold:
        outcome = NO_REGRESSION
    else:
        outcome = INCONCLUSIVE
    clear = enough and (ci[0] > threshold or ci[1] < threshold)
    return Comparison(n, ratio, ci, level, outcome, clear)
