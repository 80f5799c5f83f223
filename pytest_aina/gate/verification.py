"""A merged change's claims, checked against production: confirmed, contradicted, or not
enough data yet.

The gate checks a bot's claim before the merge, on a CI machine; production tells whether
it held where it matters. A claim (:func:`pytest_aina.gate.claims.claims_of`, from the
change's attestation) says, per timed case (a shape and dtype) on one device, the
variant's median latency and its 95% interval. Production ships, per window (60 s by
default) and key (kernel, variant, shape, dtype, device), the call count, their total time,
exact min and max, and p50/p90/p99 read from a log histogram (within about 2%):
:mod:`pytest_aina.runtime.aggregate`. No per-call samples.

**The method.** The observation is a window's p50: the claim is a median, and a window's
mean is moved by its slowest calls (a preempted launch weighs as much as a thousand
normal ones), its p50 is not. Windows of one hour share their machines' load, so they are
not independent: the unit is the hour (:data:`BLOCK_S`), each whole hour since the merge
giving the median of its windows' p50s. Per shape, on the claimed device (GPU claims:
``cuda_event`` windows only, a wall clock on a GPU times the launch), those hourly medians
give a distribution-free interval for production's median (the sign test:
:func:`pytest_aina.gate.stats.median_ranks`, the gate's own), one-sided at level
``1 - (1 - confidence) / k`` for the ``k`` shapes of the claim (Bonferroni: the claim is
judged once over all its shapes; at the default 0.999 and 3 shapes, 12 hours are the
fewest that can decide). The threshold is the top of the claimed interval widened by the
noise margin, ``hi * (1 + noise)``:

* **contradicted** at a shape when production's median is above the threshold with that
  confidence (the interval's lower bound is above it);
* **confirmed** at a shape when it is below the threshold with that confidence (the upper
  bound is below it);
* **not enough data** otherwise, or before the shape has ``min_windows`` windows and
  ``min_calls`` calls.

The claim is contradicted when any shape is; confirmed when none is, every shape production
ran enough is confirmed, and at least one is; shapes production never ran enough do not
block a confirmation once ``max_days`` have passed since the merge (until then they may
still come). The hour blocks are an assumption about production, and the App looks again
every hour: the error rates of this procedure with its repeated looks are measured
(``benchmarks/verify_calibration.py``, ``docs/github-app.md``), not derived, and the
policy's defaults come from there.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from pytest_aina.changer.change.attestation import median
from pytest_aina.devices import lookup
from pytest_aina.gate.claims import Claim, claims_of
from pytest_aina.gate.policy import VerifyPolicy
from pytest_aina.gate.provenance import Attestation
from pytest_aina.gate.stats import median_ranks
from pytest_aina.telemetry.window import Window

CONFIRMED, CONTRADICTED, NOT_ENOUGH_DATA = "confirmed", "contradicted", "not enough data"
#: The stored state of a claim still undecided when nothing more will decide it (``max_days``
#: over, or a claim production cannot compare with): final, and neither held nor broken.
INCONCLUSIVE = "inconclusive"
#: The observation's span: windows of one hour share their machines' load (measured: taking
#: each window as independent contradicted 1% of true claims at noise 0.05, docs/github-app.md).
BLOCK_S = 3600


@dataclass(frozen=True)
class ShapeResult:
    case: str
    dims: dict
    dtype: str | None
    device: str
    status: str
    claimed_s: float | None
    claimed_ci_s: tuple[float, float] | None
    threshold_s: float | None  # the claimed interval's top widened by the noise margin
    measured_s: float | None = None  # production's median window p50
    measured_ci_s: tuple[float, float] | None = None  # at the per-shape level
    level: float = 0.0  # the interval's achieved two-sided coverage
    blocks: int = 0  # hours with windows: the sign test's observations
    windows: int = 0
    calls: int = 0
    refs: tuple[str, ...] = ()  # the windows used (Window.ref: file:line or a store's id)
    first: float | None = None  # start of the first window used, seconds since the epoch
    last: float | None = None  # end of the last one
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Production's median over the claimed median: above 1 production is slower."""
        return self.measured_s / self.claimed_s if self.measured_s and self.claimed_s else None

    def as_dict(self) -> dict:
        return {
            "case": self.case,
            "dims": dict(self.dims),
            "dtype": self.dtype,
            "device": self.device,
            "status": self.status,
            "claimed_s": self.claimed_s,
            "claimed_ci_s": list(self.claimed_ci_s) if self.claimed_ci_s else None,
            "threshold_s": self.threshold_s,
            "measured_s": self.measured_s,
            "measured_ci_s": list(self.measured_ci_s) if self.measured_ci_s else None,
            "ratio": self.ratio,
            "level": self.level,
            "blocks": self.blocks,
            "windows": self.windows,
            "calls": self.calls,
            "refs": list(self.refs),
            "first": self.first,
            "last": self.last,
            "note": self.note,
        }


@dataclass(frozen=True)
class Verification:
    kernel: str
    variant: str | None
    status: str
    reason: str
    shapes: tuple[ShapeResult, ...] = ()
    final: bool = False  # nothing more will change it: decided, or max_days over
    method: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "kernel": self.kernel,
            "variant": self.variant,
            "status": self.status,
            "reason": self.reason,
            "final": self.final,
            "method": dict(self.method),
            "shapes": [s.as_dict() for s in self.shapes],
        }


@lru_cache(maxsize=1024)
def same_device(a: str, b: str) -> bool:
    """Whether two driver-reported names are one device kind (the devices table's key when
    both are known to it, the name otherwise)."""
    if a.strip().lower() == b.strip().lower():
        return True
    la, lb = lookup(a), lookup(b)
    return la is not None and lb is not None and la.key == lb.key


def verify(
    claims: list[Claim],
    windows: Iterable[Window],
    *,
    policy: VerifyPolicy,
    since: float,
    now: float,
    variant: str | None = None,
) -> Verification:
    """Judge one change's claims (one attestation's, all on one kernel and device) against
    the production ``windows`` of its variant. ``since``: when the change reached production
    (its merge), seconds since the epoch; windows starting before it are not the variant's
    doing. ``now``: the caller's clock, for ``max_days``."""
    if not claims:
        return Verification("", variant, NOT_ENOUGH_DATA, "the attestation claims nothing to verify", final=True)
    kernel = claims[0].kernel
    variant = variant or claims[0].variant
    device, kind = claims[0].device_name, claims[0].device
    method = {
        "statistic": "median over whole hours of the median of each hour's window p50s",
        "block_s": BLOCK_S,
        "interval": "sign test (order statistics), one-sided, Bonferroni over shapes",
        "noise": policy.noise,
        "confidence": policy.confidence,
        "min_windows": policy.min_windows,
        "min_calls": policy.min_calls,
        "max_days": policy.max_days,
    }
    if kind != "cuda":
        return Verification(
            kernel,
            variant,
            NOT_ENOUGH_DATA,
            f"the claim was measured on {device} (Triton's interpreter): no production latency is comparable",
            final=True,
            method=method,
        )
    if variant is None:
        return Verification(kernel, variant, NOT_ENOUGH_DATA, "the claim names no variant", final=True, method=method)
    usable = [c for c in claims if c.latency_s]
    k = max(1, len(usable))
    alpha = (1.0 - policy.confidence) / k  # one-sided, per shape
    expired = now - since >= policy.max_days * 86400
    by_shape: dict[tuple, list[Window]] = defaultdict(list)
    for w in windows:
        if w.kernel == kernel and w.variant == variant and w.start >= since and w.calls > 0 and w.latency.p50 > 0:
            by_shape[tuple(sorted(w.dims))].append(w)
    rows = [_judge(c, by_shape.get(tuple(sorted(c.dims.items())), []), device, policy, alpha, now) for c in claims]
    rows_t = tuple(rows)
    contradicted = [r for r in rows_t if r.status == CONTRADICTED]
    confirmed = [r for r in rows_t if r.status == CONFIRMED]
    # a shape with enough data but no answer, or one that may still come, keeps it open
    open_ = [r for r in rows_t if r.status == NOT_ENOUGH_DATA and r.claimed_s and (_enough(r, policy) or not expired)]
    if contradicted:
        r = contradicted[0]
        reason = (
            f"{len(contradicted)} of {len(rows_t)} shape(s) slower in production than claimed: {r.case} "
            f"measured {_us(r.measured_s)} (>= {_us(r.measured_ci_s[0])}) against {_us(r.claimed_s)} claimed "
            f"(threshold {_us(r.threshold_s)}) over {r.windows} windows"
        )
        return Verification(kernel, variant, CONTRADICTED, reason, rows_t, True, method)
    if confirmed and not open_:
        reason = f"{len(confirmed)} of {len(rows_t)} shape(s) confirmed in production within {policy.noise:.0%}"
        return Verification(kernel, variant, CONFIRMED, reason, rows_t, True, method)
    # what was seen: the shapes that keep it open, or (max_days over) every undecided one
    undecided = open_ or [r for r in rows_t if r.status == NOT_ENOUGH_DATA and r.claimed_s]
    waiting = ", ".join(f"{r.case} ({r.windows} windows, {r.calls} calls)" for r in undecided) or "no shape ran enough"
    reason = (f"not enough data after {policy.max_days:g} days: " if expired else "not decided yet: ") + waiting
    return Verification(kernel, variant, NOT_ENOUGH_DATA, reason, rows_t, expired, method)


def _enough(r: ShapeResult, policy: VerifyPolicy) -> bool:
    return r.windows >= policy.min_windows and r.calls >= policy.min_calls


def _judge(c: Claim, windows: list[Window], device: str, policy: VerifyPolicy, alpha: float, now: float) -> ShapeResult:
    base = {"case": c.label, "dims": dict(c.dims), "dtype": c.dtype, "device": device}
    if not c.latency_s:
        return ShapeResult(**base, status=NOT_ENOUGH_DATA, claimed_s=None, claimed_ci_s=None, threshold_s=None,
                           note="the attestation states no latency for this case")  # fmt: skip
    top = c.latency_ci[1] if c.latency_ci else c.latency_s
    threshold = top * (1.0 + policy.noise)
    claimed = {"claimed_s": c.latency_s, "claimed_ci_s": c.latency_ci, "threshold_s": threshold}
    here, elsewhere, wall = [], 0, 0
    for w in windows:
        if c.dtype is not None and w.dtype != c.dtype:
            continue
        if not same_device(w.device, device):
            elsewhere += 1
        elif w.timing != "cuda_event":
            wall += 1
        else:
            here.append(w)
    notes = []
    if elsewhere:
        notes.append(f"{elsewhere} window(s) on other devices not compared")
    if wall:
        notes.append(f"{wall} window(s) timed by the wall clock (launch time on a GPU) not compared")
    # only hours that are over: a block's median must not move between two looks
    here = [w for w in here if (w.start // BLOCK_S + 1) * BLOCK_S <= now]
    here.sort(key=lambda w: (w.start, w.ref))
    calls = sum(w.calls for w in here)
    seen = {
        "windows": len(here),
        "calls": calls,
        "refs": tuple(w.ref for w in here),
        "first": here[0].start if here else None,
        "last": max(w.end for w in here) if here else None,
    }
    if len(here) < policy.min_windows or calls < policy.min_calls:
        notes.insert(0, f"needs {policy.min_windows} windows and {policy.min_calls} calls")
        return ShapeResult(**base, status=NOT_ENOUGH_DATA, **claimed, **seen, note="; ".join(notes))
    blocks: dict[int, list[float]] = defaultdict(list)
    for w in here:
        blocks[int(w.start // BLOCK_S)].append(w.latency.p50)
    p50 = sorted(median(b) for b in blocks.values())
    n = len(p50)
    # the two-sided interval at 1 - 2 alpha has each one-sided bound at >= 1 - alpha
    i, j, level = median_ranks(n, 1.0 - 2.0 * alpha)
    lo, hi = p50[i], p50[j]
    mid = p50[n // 2] if n % 2 else 0.5 * (p50[n // 2 - 1] + p50[n // 2])
    reached = 1.0 - (1.0 - level) / 2.0 >= 1.0 - alpha
    if reached and lo > threshold:
        status = CONTRADICTED
    elif reached and hi <= threshold:
        status = CONFIRMED
    else:
        status = NOT_ENOUGH_DATA
        notes.insert(0, "the interval straddles the threshold" if reached else f"{n} hour(s) reach no useful level")
    return ShapeResult(
        **base, status=status, **claimed, measured_s=mid, measured_ci_s=(lo, hi), level=level, blocks=n, **seen,
        note="; ".join(notes),
    )  # fmt: skip


def _us(s: float | None) -> str:
    return "?" if s is None or not math.isfinite(s) else f"{s * 1e6:.3g} us"


def claims_in(statement: dict, path: str = "") -> list[Claim]:
    """The claims of an in-toto statement (a parsed ``provenance/**.intoto.json``)."""
    return claims_of(Attestation(path, "", statement))


# ---------------------------------------------------------------------------------------
# Track record: how the claims of a kernel (or of a proposer) fared in production

HELD = (CONFIRMED,)
BROKEN = (CONTRADICTED, "reverted")


@dataclass(frozen=True)
class TrackRecord:
    claims: int = 0  # merged claims, decided or not
    confirmed: int = 0
    contradicted: int = 0  # contradicted, reverted or not
    inconclusive: int = 0  # undecided when verify.max_days were over: not counted as held
    median_ratio: float | None = None  # production's median over the claimed, over decided claims
    streak: int = 0  # confirmed claims since the last contradicted one: what automerge.track_record counts

    @property
    def decided(self) -> int:
        return self.confirmed + self.contradicted

    def sentence(self, subject: str) -> str:
        """``"3 of 3 earlier claims for softmax held in production"``, and what is pending."""
        if not self.claims:
            return f"no earlier claim for {subject} has been verified in production yet"
        text = (
            f"{self.confirmed} of {self.decided} earlier claims for {subject} held in production"
            if self.decided
            else f"no earlier claim for {subject} has been decided in production"
        )
        if self.median_ratio is not None:
            text += f" (median measured/claimed {self.median_ratio:.2f})"
        if self.inconclusive:
            text += f"; {self.inconclusive} inconclusive (not enough data)"
        pending = self.claims - self.decided - self.inconclusive
        return text + (f"; {pending} still verifying" if pending else "")

    def as_dict(self) -> dict:
        return {
            "claims": self.claims,
            "confirmed": self.confirmed,
            "contradicted": self.contradicted,
            "inconclusive": self.inconclusive,
            "median_ratio": self.median_ratio,
            "streak": self.streak,
        }


def claim_ratio(verification: dict | None) -> float | None:
    """One claim's measured/claimed: the median over its shapes that production measured."""
    ratios = [s["ratio"] for s in (verification or {}).get("shapes") or () if isinstance(s.get("ratio"), (int, float))]
    return median(ratios) if ratios else None


def track_record(rows: Iterable[dict]) -> TrackRecord:
    """The record of claims ``rows`` (the App's stored claims: ``status``, ``verification``,
    ``merged_at``), in merge order."""
    rows = sorted(rows, key=lambda r: r.get("merged_at") or 0.0)
    confirmed = sum(r["status"] in HELD for r in rows)
    contradicted = sum(r["status"] in BROKEN for r in rows)
    inconclusive = sum(r["status"] == INCONCLUSIVE for r in rows)
    ratios = [x for r in rows if r["status"] in HELD + BROKEN and (x := claim_ratio(r.get("verification"))) is not None]
    streak = 0
    for r in rows:
        if r["status"] in BROKEN:
            streak = 0
        elif r["status"] in HELD:
            streak += 1
    return TrackRecord(len(rows), confirmed, contradicted, inconclusive, median(ratios) if ratios else None, streak)
