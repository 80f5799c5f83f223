"""Why a hot kernel got no hypothesis: the Reasoner's silence, explained from the data.

A kernel with a large share of the GPU time and no hypothesis looks like an oversight. It
usually is not: its hot shapes already run near the hardware limit, or a variant already
serves them, or its time is spread over shape domains none of which is worth a variant of
its own. :func:`explain` says which, for every kernel with at least
``ReasonerConfig.min_kernel_share`` of the GPU time and no hypothesis that would gain GPU
time (a ``retire`` alone does not count), and for kernels whose windows were all refused
because they have no spec.

Each of the kernel's shape domains (see :mod:`.profile`) gets one reason, the first that
holds, in this order:

==========================  ==============================================================
``few_calls``               under ``min_calls`` calls: too few to say anything
``specialised``             a variant, not ``generic``, serves most of its time (and
                            ``rollback`` found production no slower than its evidence, or
                            could not compare: the row says which)
``variant_not_deployed``    a variant of the dispatch table covers it, production still
                            calls ``generic``
``below_threshold``         under ``min_domain_share`` of all GPU time: no variant of its
                            own is worth it (its roofline gain is still given)
``at_limit``                at or above ``target_efficiency`` of its roofline: nothing to win
``no_roofline``             no bytes/FLOPs model or no device limits, and not hot enough
                            for a prior
==========================  ==============================================================

The kernel's reason is the one that covers most of its GPU time; the others follow in the
detail, each with its share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_aina.reasoner.detectors import ReasonerConfig, _Rooflines, _same_device, compare_with_evidence
from pytest_aina.reasoner.hypothesis import Hypothesis
from pytest_aina.reasoner.profile import Domain, Profile
from pytest_aina.telemetry.window import Window

REASONS = (
    "no_spec",
    "few_calls",
    "specialised",
    "variant_not_deployed",
    "below_threshold",
    "at_limit",
    "no_roofline",
)


@dataclass(frozen=True)
class LeftAlone:
    """A hot kernel the Reasoner has no hypothesis for, and why."""

    kernel: str
    reason: str  # one of REASONS: the one covering most of the kernel's time
    detail: str  # one line for a person, every reason with its share
    share: float  # of all GPU time in the telemetry
    gpu_s_per_day: float
    domains: list[dict] = field(default_factory=list)  # one row per shape domain, hottest first

    def to_json(self) -> dict:
        return {
            "kernel": self.kernel,
            "reason": self.reason,
            "detail": self.detail,
            "share_of_gpu_time": round(self.share, 5),
            "gpu_s_per_day": round(self.gpu_s_per_day, 3),
            "domains": self.domains,
        }


def explain(
    profile: Profile,
    rooflines: _Rooflines,
    tables: dict,
    cfg: ReasonerConfig,
    hypotheses: list[Hypothesis],
    unspecified: list[Window] = (),
) -> list[LeftAlone]:
    """The hot kernels without a hypothesis that gains GPU time, and why; ``unspecified`` are
    the windows refused because their kernel has no spec (they count in the shares here)."""
    gaining = {h.kernel for h in hypotheses if h.expected_gain > 0}
    missing: dict[str, list[Window]] = {}
    for w in unspecified:
        missing.setdefault(w.kernel, []).append(w)
    total = profile.total_time_s + sum(w.time_s for w in unspecified)
    if total <= 0:
        return []
    span = profile.span_s if profile.windows else _span(unspecified)
    per_day = 86400.0 / span
    out = []
    for kernel, ws in sorted(missing.items()):
        t = sum(w.time_s for w in ws)
        if t / total >= cfg.min_kernel_share:
            out.append(
                LeftAlone(
                    kernel,
                    "no_spec",
                    f"no_spec: 100% of its time; its {len(ws)} window(s) were refused, {kernel} has no spec "
                    f"(the Reasoner needs its dims, dtypes and bytes model: add specs/{kernel}.yaml)",
                    t / total,
                    t * per_day,
                )
            )
    for kernel, kagg in sorted(profile.kernels.items()):
        share = kagg.time_s / total
        if share < cfg.min_kernel_share or kernel in gaining:
            continue
        rows = [
            _classify(d, profile, rooflines, tables.get(kernel), cfg, per_day, total)
            for d in profile.domains.values()
            if d.kernel == kernel
        ]
        rows.sort(key=lambda r: (-r["gpu_s_per_day"], repr(r["domain"])))
        by_reason: dict[str, list[dict]] = {}
        for r in rows:
            by_reason.setdefault(r["reason"], []).append(r)
        order = sorted(by_reason, key=lambda k: (-sum(r["gpu_s_per_day"] for r in by_reason[k]), REASONS.index(k)))
        parts = [_summary(k, by_reason[k], kagg.time_s * per_day, cfg) for k in order]
        eff = _kernel_efficiency(rows)
        if eff is not None:
            parts.append(
                f"time-weighted it runs at {eff:.0%} of its roofline (far_from_limit needs under {cfg.far_below:.0%})"
            )
        out.append(LeftAlone(kernel, order[0], "; ".join(parts), share, kagg.time_s * per_day, rows))
    return sorted(out, key=lambda x: (-x.gpu_s_per_day, x.kernel))


def _span(windows) -> float:
    return max(max(w.end for w in windows) - min(w.start for w in windows), 1e-9)


def _classify(
    d: Domain,
    profile: Profile,
    rooflines: _Rooflines,
    table,
    cfg: ReasonerConfig,
    per_day: float,
    total: float,
) -> dict:
    row: dict = {
        "domain": d.as_dict(),
        "share_of_gpu_time": round(d.agg.time_s / total, 5),
        "gpu_s_per_day": round(d.agg.time_s * per_day, 3),
        "calls_per_day": round(d.agg.calls * profile.per_day),
        "variants": {v: round(t / d.agg.time_s, 4) for v, t in sorted(d.by_variant.items())} if d.agg.time_s else {},
    }
    weighted = covered = gain = 0.0
    device_keys, bounds = set(), set()
    for gk in d.groups:
        g = profile.groups[gk]
        roof = rooflines(gk[0], gk[2], gk[3], gk[4], g.mean_s)
        if roof is None:
            continue
        covered += g.time_s
        weighted += g.time_s * roof.efficiency
        gain += g.time_s * max(0.0, 1.0 - roof.efficiency / cfg.target_efficiency)
        device_keys.add(roof.limits.key)
        bounds.add(roof.bound)
    if covered:
        row.update(
            efficiency=round(weighted / covered, 4),
            roofline_coverage=round(covered / d.agg.time_s, 4),
            bound="/".join(sorted(bounds)),
            device_key="/".join(sorted(device_keys)),
            gain_at_target_gpu_s_per_day=round(gain * per_day, 3),
        )
    generic_t = d.by_variant.get("generic", 0.0)
    if d.agg.calls < cfg.min_calls:
        return row | {"reason": "few_calls", "note": f"{d.agg.calls} calls (under {cfg.min_calls})"}
    if generic_t < cfg.generic_share * d.agg.time_s:
        main = max((v for v in d.by_variant if v != "generic"), key=lambda v: (d.by_variant[v], v))
        note = _evidence_status(profile, d, main, table, rooflines, cfg)
        return row | {"reason": "specialised", "variant": main, "note": note}
    if table is not None:
        covering = [
            v.name
            for v in table.variants
            if not v.is_generic and all(v.applies(dict(g[2]), g[3], g[5]) for g in d.groups)
        ]
        if covering:
            return row | {
                "reason": "variant_not_deployed",
                "variant": covering[0],
                "note": f"{', '.join(covering)} in the dispatch table cover it; production still calls generic",
            }
    if d.agg.time_s / total < cfg.min_domain_share:
        return row | {"reason": "below_threshold", "note": f"under {cfg.min_domain_share:.0%} of GPU time"}
    if covered and gain <= 0:
        return row | {
            "reason": "at_limit",
            "note": f"at or above {cfg.target_efficiency:.0%} of its roofline on every shape with one",
        }
    # hot, generic, no covering variant, and something to gain: hot_unspecialised would have
    # fired, so only a domain without any roofline comes here when the prior is off
    return row | {"reason": "no_roofline", "note": "no bytes/FLOPs model or device limits for its shapes"}


def _evidence_status(profile: Profile, d: Domain, name: str, table, rooflines: _Rooflines, cfg: ReasonerConfig) -> str:
    """Why ``rollback`` is quiet about the variant serving ``d``, from the same comparison."""
    devices = rooflines.devices
    v = table.get(name) if table is not None else None
    if v is None:
        return f"served by {name}, which is not in the dispatch table: its evidence cannot be read"
    ev = v.evidence or {}
    if "latency_s" not in ev:
        return f"served by {name}; no merged evidence to compare production with"
    device = str(ev.get("device", ""))
    if "interpreter" in device.lower():
        return f"served by {name}; its evidence is interpreter timings ({device}): production cannot be compared"
    if device and not any(_same_device(gk[4], device, devices) for gk in d.groups if gk[1] == name):
        return f"served by {name}; its evidence is from {device}, production here runs elsewhere"
    found = compare_with_evidence(profile, d.kernel, v, rooflines.specs.get(d.kernel), devices)
    if found is None:
        return f"served by {name}; its evidence's shape is not in production and there is no bytes model to compare"
    ratio = found[0]
    if ratio <= 1 + cfg.rollback_tolerance:
        return (
            f"served by {name}; production {ratio:.2f}x its evidence's latency, within the rollback "
            f"tolerance of its evidence ({1 + cfg.rollback_tolerance:.2f}x)"
        )
    return (
        f"served by {name}; production {ratio:.2f}x slower than its evidence, but no slower than going "
        "back to generic would be: rollback would not gain"
    )


def _kernel_efficiency(rows: list[dict]) -> float | None:
    covered = [(r["gpu_s_per_day"] * r["roofline_coverage"], r["efficiency"]) for r in rows if "efficiency" in r]
    t = sum(c for c, _ in covered)
    return sum(c * e for c, e in covered) / t if t else None


def _summary(reason: str, rows: list[dict], kernel_per_day: float, cfg: ReasonerConfig) -> str:
    t = sum(r["gpu_s_per_day"] for r in rows)
    head = f"{reason}: {t / kernel_per_day:.0%} of its time in {len(rows)} domain(s)"
    effs = [r["efficiency"] for r in rows if "efficiency" in r]
    at = f" at {min(effs):.0%}-{max(effs):.0%} of their roofline" if effs else ""
    if reason == "at_limit":
        return f"{head}{at} (target {cfg.target_efficiency:.0%}): nothing to win"
    if reason == "below_threshold":
        gain = sum(r.get("gain_at_target_gpu_s_per_day", 0.0) for r in rows)
        biggest = max(r["share_of_gpu_time"] for r in rows)
        return (
            f"{head}, each under {cfg.min_domain_share:.0%} of GPU time (largest {biggest:.1%}, "
            f"together {sum(r['share_of_gpu_time'] for r in rows):.1%}){at}"
            + (f"; {gain:,.0f} GPU-s/day to gain at {cfg.target_efficiency:.0%} across them" if gain else "")
        )
    if reason in ("specialised", "variant_not_deployed"):
        return f"{head}: " + "; ".join(sorted({r["note"] for r in rows}))
    return f"{head}: {rows[0]['note']}"
