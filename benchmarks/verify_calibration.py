"""Error rates of production verification (pytest_aina.gate.verification), measured on
telemetry with a known truth.

A claim of three shapes (a hot one, a middling one, a rare one) is verified against
simulated production windows whose per-call latencies are drawn around ``truth x claimed
median``; every window goes through the recorder's own histogram and quantile code
(pytest_aina.runtime.aggregate), so its p50 carries the same ~2% quantisation production's
does. The noise is meant to be realistic rather than kind:

* per call: lognormal jitter (sigma 0.06) and 1% spikes of 2-8x (preemption, a cold cache);
* per window: lognormal (sigma 0.04), and 2% of windows 1.3x slower (a noisy neighbour);
* per hour: one lognormal factor (sigma 0.03) shared by every window of that hour on every
  instance: windows are *not* independent, which the sign test assumes;
* traffic: two instances, 60 s windows, calls per window Poisson around each shape's rate
  with a daily cycle, the rare shape absent from most windows.

Verification looks every ``--look-min`` minutes (an hour: it counts whole hours only, so
looking more often changes nothing) and stops at its first final answer (confirmed or contradicted) or at the horizon. Reported per
truth and per noise margin: how often each answer came, and when (hours, windows, calls).

    .venv/bin/python benchmarks/verify_calibration.py --trials 80 --horizon-h 24 \
        --json benchmarks/verify-calibration.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pytest_aina.gate.claims import Claim  # noqa: E402
from pytest_aina.gate.policy import VerifyPolicy  # noqa: E402
from pytest_aina.gate.verification import CONFIRMED, CONTRADICTED, verify  # noqa: E402
from pytest_aina.runtime.aggregate import SUB, _quantile  # noqa: E402
from pytest_aina.telemetry.window import Latency, Window  # noqa: E402

DEVICE = "NVIDIA H100 80GB HBM3"
# (dims, claimed median s, mean calls per instance-window, share of windows it appears in)
SHAPES = [
    ({"M": 16, "N": 4096}, 20e-6, 400, 1.0),
    ({"M": 64, "N": 8192}, 45e-6, 60, 0.8),
    ({"M": 256, "N": 32768}, 160e-6, 6, 0.4),
]
CLAIM_HALF_WIDTH = 0.015  # the claimed 95% interval: median +- 1.5% (a benchmark's typical)
INSTANCES = 2
WINDOW_S = 60


def claims() -> list[Claim]:
    out = []
    for dims, med, _, _ in SHAPES:
        label = ",".join(f"{k}={v}" for k, v in dims.items()) + ",bfloat16"
        out.append(
            Claim(
                "provenance/rms_norm/v.intoto.json",
                "rms_norm",
                label,
                dims,
                "bfloat16",
                "cuda",
                DEVICE,
                1.3,
                (1.25, 1.35),
                med,
                (med * (1 - CLAIM_HALF_WIDTH), med * (1 + CLAIM_HALF_WIDTH)),
                "rms_norm_v",
            )
        )
    return out


def window(t0: float, dims: dict, calls: int, total: float, lo: float, p50: float, p90: float, p99: float,
           hi: float, inst: int, ref: str) -> Window:  # fmt: skip
    return Window(
        start=t0,
        end=t0 + WINDOW_S,
        service="sim",
        kernel="rms_norm",
        variant="rms_norm_v",
        dims=tuple(dims.items()),
        dtype="bfloat16",
        device=DEVICE,
        arch="sm_90",
        calls=calls,
        time_s=total,
        latency=Latency(lo, p50, p90, p99, hi),
        timing="cuda_event",
        instance=f"node-{inst}",
        ref=ref,
    )


def quantiles_of_windows(np, lat, wid, nwin):
    """Per window: count, sum, min, max and p50/p90/p99 as the recorder reads them from its
    log histogram (aggregate.SUB buckets per octave, the bucket's middle clamped to
    [min, max], rank ceil(q n)): vectorised over one hour's calls, checked against
    aggregate._quantile itself on the first windows."""
    b = np.floor(np.log2(lat) * SUB).astype(np.int64)
    order = np.lexsort((b, wid))
    b, wid_s = b[order], wid[order]
    counts = np.bincount(wid, minlength=nwin)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sums = np.bincount(wid, weights=lat, minlength=nwin)
    lo = np.full(nwin, np.inf)
    hi = np.zeros(nwin)
    np.minimum.at(lo, wid, lat)
    np.maximum.at(hi, wid, lat)
    qs = []
    for q in (0.5, 0.9, 0.99):
        rank = np.maximum(1, np.ceil(q * counts)).astype(np.int64)
        idx = np.minimum(offsets + rank - 1, len(b) - 1)
        qs.append(np.clip(2.0 ** ((b[idx] + 0.5) / SUB), lo, hi))
    for w in range(min(3, nwin)):  # the recorder's own code agrees
        if counts[w]:
            mine = b[offsets[w] : offsets[w] + counts[w]]
            hist = sorted(zip(*np.unique(mine, return_counts=True)))
            want = _quantile([(int(x), int(c)) for x, c in hist], int(counts[w]), 0.5, lo[w], hi[w])
            assert abs(want - qs[0][w]) <= 1e-12 * want, (want, qs[0][w])
    del wid_s
    return counts, sums, lo, hi, qs


def hour_of_windows(np, rng, hour: int, truth: float, trial: int) -> list[Window]:
    shared = math.exp(rng.normal(0, 0.03))  # this hour's load, on every instance
    load = 0.6 + 0.4 * math.sin(2 * math.pi * hour / 24)  # the daily cycle of traffic
    out = []
    slots = [(m, i) for m in range(60) for i in range(INSTANCES)]
    for s, (dims, med, rate, share) in enumerate(SHAPES):
        present = rng.random(len(slots)) < share
        n = np.where(present, rng.poisson(rate * load, len(slots)), 0)
        factor = np.exp(rng.normal(0, 0.04, len(slots))) * np.where(rng.random(len(slots)) < 0.02, 1.3, 1.0)
        wid = np.repeat(np.arange(len(slots)), n)
        if wid.size == 0:
            continue
        lat = med * truth * shared * factor[wid] * np.exp(rng.normal(0, 0.06, wid.size))
        spikes = rng.random(wid.size) < 0.01
        lat[spikes] *= rng.uniform(2, 8, int(spikes.sum()))
        counts, sums, lo, hi, (p50, p90, p99) = quantiles_of_windows(np, lat, wid, len(slots))
        for k, (minute, inst) in enumerate(slots):
            if counts[k]:
                out.append(
                    window(
                        float(hour * 3600 + minute * WINDOW_S),
                        dims,
                        int(counts[k]),
                        float(sums[k]),
                        float(lo[k]),
                        float(p50[k]),
                        float(p90[k]),
                        float(p99[k]),
                        float(hi[k]),
                        inst,
                        f"sim:{trial}:{hour}:{minute}:{inst}:{s}",
                    )  # fmt: skip
                )
    return out


def trial(np, seed: int, truth: float, policies: dict, horizon_h: int, look_min: int) -> dict:
    rng = np.random.default_rng(seed)
    cl = claims()
    windows: list[Window] = []
    answers: dict = {}
    for hour in range(horizon_h):
        windows += hour_of_windows(np, rng, hour, truth, seed)
        for minute in range(look_min, 61, look_min):
            now = hour * 3600 + minute * 60
            seen = [w for w in windows if w.end <= now]
            for name, pol in policies.items():
                if name in answers:
                    continue
                v = verify(cl, seen, policy=pol, since=0.0, now=float(now), variant="rms_norm_v")
                if v.status in (CONFIRMED, CONTRADICTED):
                    decided = [s for s in v.shapes if s.status == v.status]
                    answers[name] = {
                        "status": v.status,
                        "hours": now / 3600,
                        "windows": sum(s.windows for s in v.shapes),
                        "calls": sum(s.calls for s in v.shapes),
                        "shape_windows": max(s.windows for s in decided),
                    }
            if len(answers) == len(policies):
                return answers
    for name in policies:
        answers.setdefault(name, {"status": "undecided", "hours": float(horizon_h)})
    return answers


def quantiles(xs: list[float]) -> dict | None:
    if not xs:
        return None
    s = sorted(xs)
    return {"median": s[len(s) // 2], "p90": s[min(len(s) - 1, int(0.9 * len(s)))], "max": s[-1]}


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    """The upper end of the 95% Wilson interval of a rate k/n (0 seen is not 0 true)."""
    if n == 0:
        return 1.0
    p = k / n
    return (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200, help="trials per truth (true claims get 2x)")
    ap.add_argument("--horizon-h", type=int, default=24, help="hours of production per trial at most")
    ap.add_argument(
        "--look-min", type=int, default=60, help="minutes between looks (verification uses whole hours only)"
    )
    ap.add_argument("--noise", type=float, nargs="+", default=[0.05, 0.10])
    ap.add_argument("--confidence", type=float, default=VerifyPolicy().confidence)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--truths",
        type=float,
        nargs="+",
        default=[1.0, 1.05, 1.10, 1.25],
        help="production/claim ratios to simulate (e.g. --truths 1.0: only the false-contradiction rate)",
    )
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    import numpy as np

    base = VerifyPolicy()
    policies = {
        f"noise={n:g}": VerifyPolicy(
            min_calls=base.min_calls,
            min_windows=base.min_windows,
            max_days=args.horizon_h / 24,
            noise=n,
            confidence=args.confidence,
        )
        for n in args.noise
    }
    per_truth = {1.0: 2 * args.trials, 1.05: args.trials // 2}  # true claims matter most; 1.05 is in between
    truths = [(t, per_truth.get(t, args.trials)) for t in args.truths]
    started = time.time()
    results = []
    for truth, n in truths:
        t0 = time.time()
        runs = [trial(np, args.seed * 1_000_003 + int(truth * 1000) * 7919 + i, truth, policies, args.horizon_h,
                      args.look_min) for i in range(n)]  # fmt: skip
        for name in policies:
            got = [r[name] for r in runs]
            row = {"truth": truth, "setting": name, "trials": n}
            for status in (CONTRADICTED, CONFIRMED, "undecided"):
                k = sum(1 for g in got if g["status"] == status)
                row[status.replace(" ", "_")] = k / n
                row[status.replace(" ", "_") + "_upper95"] = round(wilson_upper(k, n), 4)
                when = [g for g in got if g["status"] == status and status != "undecided"]
                if when:
                    row[f"{status}_after"] = {
                        "hours": quantiles([g["hours"] for g in when]),
                        "windows": quantiles([g["windows"] for g in when]),
                        "calls": quantiles([g["calls"] for g in when]),
                        "windows_of_the_deciding_shape": quantiles([g["shape_windows"] for g in when]),
                    }
            results.append(row)
            print(
                f"truth {truth:.2f}x {name:11s} n={n:4d}: contradicted {row['contradicted']:.3f} "
                f"(<= {row['contradicted_upper95']:.3f}), confirmed {row['confirmed']:.3f}, "
                f"undecided {row['undecided']:.3f}"
                + (
                    f"; contradicted after {row['contradicted_after']['hours']['median']:.2f} h median "
                    f"({row['contradicted_after']['windows_of_the_deciding_shape']['median']} windows of the shape, "
                    f"{row['contradicted_after']['calls']['median']} calls in all)"
                    if "contradicted_after" in row
                    else ""
                ),
                flush=True,
            )
        print(f"  ({time.time() - t0:.0f} s)", flush=True)
    out = {
        "benchmark": "verify_calibration",
        "command": " ".join(["benchmarks/verify_calibration.py", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "setup": {
            "shapes": [
                {"dims": d, "claimed_median_s": m, "calls_per_window": r, "presence": p} for d, m, r, p in SHAPES
            ],
            "claim_half_width": CLAIM_HALF_WIDTH,
            "instances": INSTANCES,
            "window_s": WINDOW_S,
            "look_every_min": args.look_min,
            "horizon_h": args.horizon_h,
            "confidence": args.confidence,
            "min_calls": base.min_calls,
            "min_windows": base.min_windows,
            "seed": args.seed,
        },
        "results": results,
        "wall_s": round(time.time() - started, 1),
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
            fh.write("\n")
    print(f"{out['wall_s']} s")


if __name__ == "__main__":
    main()
