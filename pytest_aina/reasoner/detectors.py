"""The five ways the Reasoner finds an improvement worth having.

Each detector reads the profile (and the specs, device limits and dispatch tables) and
returns hypotheses with their evidence and an expected gain in GPU-seconds per day. The
gain is an estimate and says how it was made (``gain_basis``):

* roofline: a call cannot take less than max(bytes / bandwidth, flops / peak, launch
  floor) on its device; a kernel at efficiency e (that bound over its mean latency) that reaches the
  target efficiency (0.8 by default: what a well-tuned memory-bound kernel sustains)
  saves time * (1 - e / target);
* prior: where no roofline is known (no bytes model, unknown device), a specialisation is
  assumed to save 10% of the time it covers, and says so;
* rollback: what the variant costs in production against what the generic variant costs
  there (measured) or in the evidence it was merged with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_aina.devices import DeviceLimits, DeviceTable
from pytest_aina.reasoner.hypothesis import Hypothesis
from pytest_aina.reasoner.profile import Agg, Profile, domain_dict, domain_label, octave
from pytest_aina.spec.model import Spec
from pytest_aina.telemetry.window import format_time


@dataclass(frozen=True)
class ReasonerConfig:
    min_kernel_share: float = 0.05  # far_from_limit: kernels with at least this share of GPU time...
    far_below: float = 0.5  # ...whose time-weighted efficiency is below this
    target_efficiency: float = 0.8  # gains are counted up to this fraction of the roofline
    min_domain_share: float = 0.05  # hot_unspecialised: domains with at least this share of all GPU time...
    generic_share: float = 0.9  # ...served at least this much by the generic variant
    prior_gain: float = 0.10  # gain assumed for a specialisation where no roofline is known
    min_shift: float = 0.25  # shape_shift: total-variation distance between the mixes before and after
    min_side: float = 0.2  # ...with each side at least this fraction of the span
    min_shift_share: float = 0.05  # ...for kernels with at least this share of GPU time
    rollback_tolerance: float = 0.15  # rollback: production this much slower than the evidence
    # The least time a kernel takes between CUDA events on a current data-centre GPU
    # (launch, ramp-up and tail), whatever its size: rooflines never go below it, so a tiny
    # kernel is not called "far from the limit" for time only fusion could remove.
    launch_floor_s: float = 2e-6
    retire_idle_s: float = 6 * 3600  # retire: no call for this long (half the span if shorter)...
    # ...unless strict: then no retire hypothesis for a kernel whose telemetry does not reach
    # back retire_idle_s (the App, whose policy's retire.unused_days is the idle time: a week
    # of telemetry cannot say "unused for 14 days")
    retire_strict: bool = False
    # Fewer calls than this in a shape domain over the telemetry say nothing about it (left
    # alone as few_calls): a handful of calls is noise next to the millions a hot domain has.
    min_calls: int = 100
    top_groups: int = 5  # rows of evidence per hypothesis
    top_refs: int = 10  # window references per hypothesis


# ---------------------------------------------------------------------------------------
# Rooflines


@dataclass(frozen=True)
class Roofline:
    limits: DeviceLimits
    dtype: str
    bytes: float | None
    flops: float | None
    min_time_s: float
    mean_s: float

    @property
    def efficiency(self) -> float:
        # above 1 happens for working sets that stay in L2; it counts as "at the limit"
        return min(1.0, self.min_time_s / self.mean_s) if self.mean_s > 0 else 1.0

    @property
    def bound(self) -> str:
        """What sets the roofline: memory bandwidth, compute, or the launch floor."""
        mem = self.bytes / self.limits.hbm_bytes_per_s if self.bytes else 0.0
        peak = self.limits.flops_for(self.dtype) if self.flops else None
        comp = self.flops / peak if peak else 0.0
        if max(mem, comp) < self.min_time_s * 0.999:
            return "launch"
        return "memory" if mem >= comp else "compute"

    def row(self) -> dict:
        out = {
            "mean_latency_s": self.mean_s,
            "roofline_s": self.min_time_s,
            "efficiency": round(self.efficiency, 4),
            "bound": self.bound,
            "device_key": self.limits.key,
        }
        if self.bytes:
            bw = self.bytes / self.mean_s
            out.update(
                achieved_bytes_per_s=bw,
                limit_bytes_per_s=self.limits.hbm_bytes_per_s,
                pct_of_bandwidth=round(self.limits.pct_of_bandwidth(bw), 2),
            )
        return out


class _Rooflines:
    """Rooflines per (kernel, dims, dtype, device), computed once."""

    def __init__(self, specs: dict[str, Spec], devices: DeviceTable | None, floor_s: float = 0.0):
        self.specs, self.devices, self.floor_s, self.cache = specs, devices, floor_s, {}

    def __call__(self, kernel: str, dims: tuple, dtype: str, device: str, mean_s: float) -> Roofline | None:
        key = (kernel, dims, dtype, device)
        base = self.cache.get(key, False)
        if base is False:
            base = self.cache[key] = self._bound(*key)
        if base is None:
            return None
        limits, b, f, t = base
        return Roofline(limits, dtype, b, f, t, mean_s)

    def _bound(self, kernel, dims, dtype, device):
        spec = self.specs.get(kernel)
        limits = self.devices.lookup(device) if self.devices is not None else None
        if spec is None or limits is None:
            return None
        d = dict(dims)
        try:
            b, f = spec.bytes_for(d, dtype), spec.flops_for(d, dtype)
        except (ValueError, ZeroDivisionError, KeyError):
            return None
        t = limits.min_time_s(bytes=b, flops=f, dtype=dtype)
        return None if not t else (limits, b, f, max(t, self.floor_s))


def _group_row(gkey: tuple, g: Agg, roof: Roofline | None, profile: Profile) -> dict:
    kernel, variant, dims, dtype, device, arch = gkey
    row = {
        "variant": variant,
        "dims": dict(dims),
        "dtype": dtype,
        "device": device,
        "arch": arch,
        "calls": g.calls,
        "gpu_s": round(g.time_s, 6),
        "share": round(profile.share(g.time_s), 5),
        "windows": g.windows,
    }
    if roof is not None:
        row.update(roof.row())
    else:
        row["mean_latency_s"] = g.mean_s
    return row


def _windows(aggs: list[Agg], n: int) -> dict:
    merged = Agg()
    for a in aggs:
        merged.merge(a)
    return {
        "count": merged.windows,
        "from": format_time(merged.first),
        "to": format_time(merged.last),
        "refs": merged.top_refs(n),
    }


def _domain_key(gkey: tuple) -> tuple:
    kernel, _, dims, dtype, _, arch = gkey
    return (kernel, tuple((k, octave(v)) for k, v in dims), dtype, arch)


def _gain_over(groups: list[tuple], roof_of, cfg: ReasonerConfig) -> tuple[float, float, bool]:
    """(roofline gain, time covered by a roofline, any roofline) over (gkey, agg) pairs."""
    gain = covered = 0.0
    for gkey, g in groups:
        roof = roof_of(gkey, g)
        if roof is not None:
            covered += g.time_s
            gain += g.time_s * max(0.0, 1.0 - roof.efficiency / cfg.target_efficiency)
    return gain, covered, covered > 0


# ---------------------------------------------------------------------------------------
# The detectors


def far_from_limit(profile: Profile, rooflines: _Rooflines, cfg: ReasonerConfig) -> list[Hypothesis]:
    out = []
    for kernel, kagg in sorted(profile.kernels.items()):
        share = profile.share(kagg.time_s)
        if share < cfg.min_kernel_share or kagg.calls < cfg.min_calls:
            continue
        rows, weighted, covered, gain_by_domain = [], 0.0, 0.0, {}
        for gkey, g in profile.groups.items():
            if gkey[0] != kernel:
                continue
            roof = rooflines(kernel, gkey[2], gkey[3], gkey[4], g.mean_s)
            if roof is None:
                continue
            covered += g.time_s
            weighted += g.time_s * roof.efficiency
            gain = g.time_s * max(0.0, 1.0 - roof.efficiency / cfg.target_efficiency)
            dk = _domain_key(gkey)
            gain_by_domain[dk] = gain_by_domain.get(dk, 0.0) + gain
            rows.append((gain, gkey, g, roof))
        if not covered:
            continue
        eff = weighted / covered
        if eff >= cfg.far_below:
            continue
        total_gain = sum(r[0] for r in rows) * profile.per_day
        top_domain = max(gain_by_domain, key=lambda k: (gain_by_domain[k], repr(k)))
        rows.sort(key=lambda r: (-r[0], repr(r[1])))
        top_rows = [
            _group_row(gk, g, roof, profile) | {"gain_gpu_s_per_day": round(gain * profile.per_day, 3)}
            for gain, gk, g, roof in rows[: cfg.top_groups]
        ]
        main = rows[0][3]
        out.append(
            Hypothesis(
                kind="far_from_limit",
                kernel=kernel,
                domain=domain_dict(top_domain),
                title=(
                    f"{kernel}: {share:.0%} of GPU time at {eff:.0%} of its roofline "
                    f"(time-weighted); most to gain at {domain_label(top_domain)}"
                ),
                expected_gain=total_gain,
                gain_basis=(
                    f"roofline: every shape brought to {cfg.target_efficiency:.0%} of max(bytes/bandwidth, "
                    f"flops/peak, {cfg.launch_floor_s * 1e6:g} us launch floor) on its device; the spec's bytes/FLOPs "
                    f"model, device limits from the table"
                ),
                evidence={
                    "share_of_gpu_time": round(share, 5),
                    "efficiency": round(eff, 4),
                    "roofline_coverage": round(covered / kagg.time_s, 4),
                    "gpu_s_per_day": round(kagg.time_s * profile.per_day, 3),
                    "top_domain_gain_gpu_s_per_day": round(gain_by_domain[top_domain] * profile.per_day, 3),
                    "groups": top_rows,
                    "limits_source": main.limits.source,
                    "windows": _windows([r[2] for r in rows], cfg.top_refs),
                },
            )
        )
    return out


def hot_unspecialised(profile: Profile, rooflines: _Rooflines, tables: dict, cfg: ReasonerConfig) -> list[Hypothesis]:
    out = []
    for _dkey, d in sorted(profile.domains.items(), key=lambda kv: repr(kv[0])):
        share = profile.share(d.agg.time_s)
        if share < cfg.min_domain_share or d.agg.calls < cfg.min_calls:
            continue
        generic_t = d.by_variant.get("generic", 0.0)
        if generic_t < cfg.generic_share * d.agg.time_s:
            continue
        table = tables.get(d.kernel)
        if table is not None:
            covering = [
                v.name
                for v in table.variants
                if not v.is_generic and all(v.applies(dict(g[2]), g[3], g[5]) for g in d.groups)
            ]
            if covering:
                continue  # a variant exists for these shapes; production has not picked it up yet
        groups = sorted(((g, profile.groups[g]) for g in d.groups), key=lambda x: (-x[1].time_s, repr(x[0])))
        roof_of = lambda gk, g: rooflines(gk[0], gk[2], gk[3], gk[4], g.mean_s)
        gain, covered, known = _gain_over(groups, roof_of, cfg)
        if known:
            # the part without a roofline gets the prior, so coverage gaps do not hide time
            gain += (d.agg.time_s - covered) * cfg.prior_gain
            if gain <= 0:
                continue  # hot, but already at the roofline: nothing to win
            basis = (
                f"roofline on {covered / d.agg.time_s:.0%} of the domain's time (to {cfg.target_efficiency:.0%} "
                f"of the limit), a {cfg.prior_gain:.0%} prior on the rest"
            )
        else:
            gain = d.agg.time_s * cfg.prior_gain
            basis = f"prior: a specialised variant saves {cfg.prior_gain:.0%} (no bytes model or device limits here)"
        out.append(
            Hypothesis(
                kind="hot_unspecialised",
                kernel=d.kernel,
                domain=d.as_dict(),
                title=f"{d.kernel} {d.label()}: {share:.0%} of GPU time, no variant specialised for it",
                expected_gain=gain * profile.per_day,
                gain_basis=basis,
                evidence={
                    "share_of_gpu_time": round(share, 5),
                    "gpu_s_per_day": round(d.agg.time_s * profile.per_day, 3),
                    "calls_per_day": round(d.agg.calls * profile.per_day),
                    "generic_share": round(generic_t / d.agg.time_s, 4),
                    "observed_dims": {k: list(v) for k, v in sorted(d.hull.items())},
                    "variants_in_table": [v.name for v in table.variants] if table is not None else [],
                    "groups": [_group_row(gk, g, roof_of(gk, g), profile) for gk, g in groups[: cfg.top_groups]],
                    "windows": _windows([g for _, g in groups], cfg.top_refs),
                },
            )
        )
    return out


def shape_shift(profile: Profile, rooflines: _Rooflines, cfg: ReasonerConfig) -> list[Hypothesis]:
    out = []
    nb = profile.nbins
    lo_split = max(1, round(nb * cfg.min_side))
    for kernel, mix in sorted(profile.mix.items()):
        if profile.share(profile.kernels[kernel].time_s) < cfg.min_shift_share or nb < 2 * lo_split:
            continue
        keys = sorted(mix, key=repr)
        prefix = {k: [0.0] for k in keys}
        for k in keys:
            acc = prefix[k]
            for t in mix[k]:
                acc.append(acc[-1] + t)
        totals = {k: prefix[k][-1] for k in keys}
        best = None
        for split in range(lo_split, nb - lo_split + 1):
            before = {k: prefix[k][split] for k in keys}
            b_sum = sum(before.values())
            a_sum = sum(totals.values()) - b_sum
            if b_sum <= 0 or a_sum <= 0:
                continue
            tv = 0.5 * sum(abs(before[k] / b_sum - (totals[k] - before[k]) / a_sum) for k in keys)
            if best is None or tv > best[0] + 1e-12:
                best = (tv, split, before, b_sum, a_sum)
        if best is None or best[0] < cfg.min_shift:
            continue
        tv, split, before, b_sum, a_sum = best
        at = profile.t0 + split * profile.bin_s
        moves = sorted(
            ((k, before[k] / b_sum, (totals[k] - before[k]) / a_sum) for k in keys),
            key=lambda m: (-(m[2] - m[1]), repr(m[0])),
        )
        grown_key, share_before, share_after = moves[0]
        dkey = (kernel, *grown_key)
        after_span = max(profile.t1 - at, 1e-9)
        grown_after_s = totals[grown_key] - before[grown_key]
        # the grown domain's time per day at the new mix, and what specialising for it could save
        d = profile.domains.get(dkey)
        groups = [(g, profile.groups[g]) for g in d.groups] if d else []
        roof_of = lambda gk, g: rooflines(gk[0], gk[2], gk[3], gk[4], g.mean_s)
        gain, covered, known = _gain_over(groups, roof_of, cfg)
        fraction = (gain / covered) if known else cfg.prior_gain
        per_day_after = grown_after_s * 86400.0 / after_span
        out.append(
            Hypothesis(
                kind="shape_shift",
                kernel=kernel,
                domain=domain_dict(dkey),
                title=(
                    f"{kernel}: shape mix shifted around {format_time(at)} (distance {tv:.2f}); "
                    f"{domain_label(dkey)} went from {share_before:.0%} to {share_after:.0%} of its time"
                ),
                expected_gain=per_day_after * fraction,
                gain_basis=(
                    ("roofline" if known else f"prior ({cfg.prior_gain:.0%})")
                    + f": specialising for the domain that grew, at its GPU time per day since the shift "
                    f"({fraction:.0%} of it)"
                ),
                evidence={
                    "changed_at": format_time(at),
                    "total_variation": round(tv, 4),
                    "before": {"from": format_time(profile.t0), "to": format_time(at), "gpu_s": round(b_sum, 6)},
                    "after": {"from": format_time(at), "to": format_time(profile.t1), "gpu_s": round(a_sum, 6)},
                    "grew": [_mover(kernel, m) for m in moves if m[2] > m[1]][: cfg.top_groups],
                    "shrank": [_mover(kernel, m) for m in reversed(moves) if m[2] < m[1]][: cfg.top_groups],
                    "gpu_s_per_day_after": round(per_day_after, 3),
                    "groups": [
                        _group_row(gk, g, roof_of(gk, g), profile)
                        for gk, g in sorted(groups, key=lambda x: (-x[1].time_s, repr(x[0])))[: cfg.top_groups]
                    ],
                    "windows": _windows([g for _, g in groups], cfg.top_refs) if groups else {"count": 0},
                },
            )
        )
    return out


def _mover(kernel: str, move: tuple) -> dict:
    key, before, after = move
    return {"domain": domain_dict((kernel, *key)), "share_before": round(before, 4), "share_after": round(after, 4)}


def _same_device(a: str, b: str, devices: DeviceTable | None) -> bool:
    if a == b:
        return True
    if devices is None:
        return False
    la, lb = devices.lookup(a), devices.lookup(b)
    return la is not None and lb is not None and la.key == lb.key


def _variant_domain(v) -> dict:
    return {
        "dims": {k: [lo, hi] for k, (lo, hi) in v.dims.items()},
        "dtype": v.dtypes[0] if v.dtypes and len(v.dtypes) == 1 else None,
        "arch": v.arch[0] if v.arch and len(v.arch) == 1 else None,
    }


def compare_with_evidence(profile: Profile, kernel: str, v, spec: Spec | None, devices: DeviceTable | None):
    """Production against the evidence variant ``v`` was merged with: (slowdown, the comparison
    in words, the measured figures, the variant's (group key, agg) pairs it covers), or None
    when they cannot be compared (no evidence, no calls on the evidence's device and dtype, or
    neither its shape in production nor a bytes model to compare bandwidth with)."""
    ev = v.evidence or {}
    if v.is_generic or "latency_s" not in ev:
        return None
    mine = [
        (gk, g)
        for gk, g in profile.groups.items()
        if gk[0] == kernel
        and gk[1] == v.name
        and ("dtype" not in ev or gk[3] == ev["dtype"])
        and ("device" not in ev or _same_device(gk[4], ev["device"], devices))
    ]
    if not mine:
        return None
    ev_dims = tuple(sorted((ev.get("dims") or {}).items()))
    exact = [(gk, g) for gk, g in mine if tuple(sorted(gk[2])) == ev_dims]
    if exact:
        calls = sum(g.calls for _, g in exact)
        prod = sum(g.time_s for _, g in exact) / calls
        how = f"mean latency at the evidence's own shape {dict(ev_dims)}: {prod:.4g} s vs {ev['latency_s']:.4g} s"
        measured = {"method": "same_shape", "dims": dict(ev_dims), "latency_s": prod, "calls": calls}
        return prod / ev["latency_s"], how, measured, mine
    if spec is not None and spec.bytes_expr and ev_dims:
        dtype = ev.get("dtype") or mine[0][0][3]
        ev_bw = spec.bytes_for(dict(ev_dims), dtype) / ev["latency_s"]
        moved = sum(spec.bytes_for(dict(gk[2]), gk[3]) * g.calls for gk, g in mine)
        prod_bw = moved / sum(g.time_s for _, g in mine)
        how = (
            f"achieved bandwidth over its production shapes {prod_bw / 1e9:.4g} GB/s vs "
            f"{ev_bw / 1e9:.4g} GB/s in the evidence"
        )
        measured = {
            "method": "bandwidth",
            "achieved_bytes_per_s": prod_bw,
            "claimed_bytes_per_s": ev_bw,
            "calls": sum(g.calls for _, g in mine),
        }
        return ev_bw / prod_bw, how, measured, mine
    return None


def rollback(
    profile: Profile, specs: dict, tables: dict, devices: DeviceTable | None, cfg: ReasonerConfig
) -> list[Hypothesis]:
    out = []
    for kernel, table in sorted(tables.items()):
        spec = specs.get(kernel)
        for v in table.variants:
            ev = v.evidence or {}
            if v.is_generic or "latency_s" not in ev:
                continue
            found = compare_with_evidence(profile, kernel, v, spec, devices)
            if found is None:
                continue
            ratio, how, measured, mine = found
            if ratio <= 1 + cfg.rollback_tolerance:
                continue
            time_s = sum(g.time_s for _, g in mine)
            generic = {
                (gk[2], gk[3], gk[4]): g for gk, g in profile.groups.items() if gk[0] == kernel and gk[1] == "generic"
            }
            pairs = [(g, generic[(gk[2], gk[3], gk[4])]) for gk, g in mine if (gk[2], gk[3], gk[4]) in generic]
            if pairs:
                paired_s = sum(g.time_s for g, _ in pairs)
                gain = sum(g.calls * (g.mean_s - gg.mean_s) for g, gg in pairs) * time_s / paired_s
                basis = (
                    f"measured: the generic variant's production latency at the same shapes "
                    f"({paired_s / time_s:.0%} of the variant's time), extrapolated to the rest"
                )
            elif "baseline_latency_s" in ev:
                claimed = ev["baseline_latency_s"] / ev["latency_s"]
                gain = time_s * (1 - claimed / ratio)
                basis = (
                    f"evidence: the generic variant assumed as fast as in the evidence "
                    f"({claimed:.2f}x the variant's claimed latency)"
                )
            else:
                gain = time_s * (1 - 1 / ratio)
                basis = "the gap between production and the evidence; the generic variant's production speed is unknown"
            if gain <= 0:
                continue  # slower than claimed, but still better than going back
            out.append(
                Hypothesis(
                    kind="rollback",
                    kernel=kernel,
                    variant=v.name,
                    domain=_variant_domain(v),
                    title=f"{kernel}/{v.name}: {ratio:.2f}x slower in production than the evidence it was merged with",
                    expected_gain=gain * profile.per_day,
                    gain_basis=basis,
                    evidence={
                        "slowdown": round(ratio, 4),
                        "tolerance": cfg.rollback_tolerance,
                        "comparison": how,
                        # what a revert needs to show claimed vs measured: the claim as the table
                        # holds it (its pr and commit when the change recorded them) and production
                        "claimed": {
                            k: ev[k] for k in ("latency_s", "dims", "dtype", "device", "pr", "commit") if k in ev
                        },
                        "measured": measured
                        | {"from": format_time(min(g.first for _, g in mine)), "to": format_time(profile.t1)},
                        "merged_evidence": ev,
                        "variant_domain": v.domain(),
                        "gpu_s_per_day": round(time_s * profile.per_day, 3),
                        "groups": [
                            _group_row(gk, g, None, profile)
                            for gk, g in sorted(mine, key=lambda x: (-x[1].time_s, repr(x[0])))[: cfg.top_groups]
                        ],
                        "windows": _windows([g for _, g in mine], cfg.top_refs),
                    },
                )
            )
    return out


def _kernel_refs_since(profile: Profile, kernel: str, since: float, n: int) -> dict:
    merged = Agg()
    for gkey, g in profile.groups.items():
        if gkey[0] == kernel and g.last > since:
            merged.merge(g)
    refs = merged.top_refs(n, since=since)
    return {"count": sum(1 for tr in merged.refs if tr[2] >= since), "refs": refs}


#: A window's worth of slack when asking whether telemetry reaches back to the idle stretch's
#: start (the first window of the stretch need not start exactly there).
REACH_SLACK_S = 3600.0


def retire(
    profile: Profile, tables: dict, cfg: ReasonerConfig, merged_at: Mapping[tuple[str, str], float] | None = None
) -> list[Hypothesis]:
    """Variants of ``tables`` no call used for ``cfg.retire_idle_s`` while their kernel ran.
    ``merged_at``: (kernel, variant) -> when it reached production, where known (the App's
    recorded claims): a variant younger than the idle stretch has not had its chance."""
    out = []
    merged_at = merged_at or {}
    if cfg.retire_strict:
        idle = cfg.retire_idle_s
    else:
        idle = cfg.retire_idle_s if profile.span_s >= 2 * cfg.retire_idle_s else profile.span_s / 2
    cutoff = profile.t1 - idle
    for kernel, table in sorted(tables.items()):
        kagg = profile.kernels.get(kernel)
        if kagg is None:
            continue  # no telemetry for the kernel at all: silence says nothing
        if cfg.retire_strict and kagg.first > cutoff + REACH_SLACK_S:
            continue  # telemetry does not reach back that far: no one can say "unused"
        recent = profile.kernel_time_between(kernel, cutoff, profile.t1)
        if recent <= 0:
            continue  # the kernel itself was idle: not this variant's fault
        for v in table.variants:
            if v.is_generic:
                continue
            agg = profile.variants.get((kernel, v.name))
            if agg is not None and agg.last > cutoff:
                continue
            if merged_at.get((kernel, v.name), -math.inf) > cutoff:
                continue  # merged during the stretch: it has not had its chance
            last = format_time(agg.last) if agg is not None else None
            out.append(
                Hypothesis(
                    kind="retire",
                    kernel=kernel,
                    variant=v.name,
                    domain=_variant_domain(v),
                    title=(
                        f"{kernel}/{v.name}: no call "
                        + (f"since {last}" if last else "in this telemetry")
                        + f" ({idle / 3600:.1f} h without one while {kernel} ran)"
                    ),
                    expected_gain=0.0,
                    gain_basis="none in GPU time: retiring a variant removes code to maintain, test and dispatch over",
                    evidence={
                        "last_call": last,
                        "idle_s": round(idle),
                        # the stretch the variant was silent in, and the kernel's windows in it that
                        # show the kernel ran meanwhile (what a retire PR cites)
                        "idle_from": format_time(cutoff),
                        "idle_to": format_time(profile.t1),
                        "telemetry_from": format_time(profile.t0),
                        "kernel_windows_while_idle": _kernel_refs_since(profile, kernel, cutoff, cfg.top_refs),
                        "calls_before": agg.calls if agg else 0,
                        "kernel_gpu_s_while_idle": round(recent, 6),
                        "variant_domain": v.domain(),
                        "windows": _windows([agg], cfg.top_refs) if agg else {"count": 0},
                    },
                )
            )
    return out
