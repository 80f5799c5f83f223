"""Which shapes a change is for: read from the hypothesis, checked against the spec.

The variant is specialised for the hypothesis's *hot shapes* (:func:`hot_shapes`) and serves
its *domain* (:func:`variant_domain`, in the dispatch table's format); the generated tests
add the domain's corners (:func:`domain_edges`) and calls just outside it
(:func:`outside_calls`). What is read from the hypothesis is listed in ``docs/provenance.md``.
"""

from __future__ import annotations

import fnmatch
import re

from pytest_aina.changer.change.model import ChangeError
from pytest_aina.changer.change.testgen import Shape
from pytest_aina.changer.model import SearchRecord
from pytest_aina.reasoner.hypothesis import Hypothesis
from pytest_aina.spec.model import DTYPES

#: Hot shapes pinned and tested per change: the hottest few say what the variant is for;
#: more would only lengthen CI.
MAX_HOT_SHAPES = 4
_ARCH_GUESSES = ("cpu", "sm_80", "sm_90", "sm_100", "gfx942")


# ---------------------------------------------------------------------------------------
# What the hypothesis says


def hot_shapes(record: SearchRecord, spec) -> list[Shape]:
    """The shapes the variant is specialised for: the Reasoner's ``evidence.groups`` (one
    row per telemetry group: dims, dtype, arch, gpu_s) inside the hypothesis's domain, the
    most GPU time first, at most :data:`MAX_HOT_SHAPES`; a team's own reasoner may give
    ``evidence.hot_shapes``/``evidence.shapes`` instead (rows ``{dims, dtype}``). Without
    either, the benchmark cases the search timed."""
    hyp: Hypothesis = record.hypothesis
    ev = hyp.evidence
    where, raw = next(
        (
            (k, x)
            for k, x in (
                ("evidence.groups", ev.get("groups")),
                ("evidence.hot_shapes", ev.get("hot_shapes")),
                ("evidence.shapes", ev.get("shapes")),
            )
            if isinstance(x, list) and x
        ),
        ("", None),
    )
    if raw is None:
        raw = [parse_label(c) for c in record.benchmark_cases]
        where = "record.benchmark_cases"
    if not raw:
        raise ChangeError(
            f"hypothesis {hyp.id}: no hot shapes (looked for evidence.groups, evidence.hot_shapes, "
            "evidence.shapes, then the record's benchmark_cases): nothing to specialise for"
        )
    domain = hyp.domain
    rows = []
    for i, item in enumerate(raw):
        at = f"hypothesis {where}[{i}]" if where != "record.benchmark_cases" else f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ChangeError(f"{at}: expected a mapping with dims and dtype, got {item!r}")
        dims = item.get("dims") if isinstance(item.get("dims"), dict) else {k: item[k] for k in spec.dims if k in item}
        dims = _spec_dims(spec, dims, at)
        dtype = item.get("dtype")
        if dtype not in spec.dtypes:
            raise ChangeError(f"{at}: dtype {dtype!r} is not one of {spec.name}'s dtypes ({', '.join(spec.dtypes)})")
        if where == "evidence.groups" and not _in_hypothesis_domain(domain, dims, dtype, item.get("arch")):
            continue  # a far_from_limit hypothesis lists the kernel's groups; the domain is the target
        gpu_s = item.get("gpu_s")
        rows.append((-(gpu_s if isinstance(gpu_s, (int, float)) else 0.0), i, Shape(dims, dtype, "hot shape")))
    out: list[Shape] = []
    for _, _, s in sorted(rows, key=lambda r: (r[0], r[1])):
        if all((s.dims, s.dtype) != (o.dims, o.dtype) for o in out) and len(out) < MAX_HOT_SHAPES:
            out.append(s)
    if not out:
        raise ChangeError(f"hypothesis {hyp.id}: none of its {where} lies in its domain {domain}")
    return out


def _in_hypothesis_domain(domain: dict, dims: dict, dtype: str, arch) -> bool:
    for k, r in (domain.get("dims") or {}).items():
        lo, hi = (r.get("min"), r.get("max")) if isinstance(r, dict) else (r[0], r[1])
        if k in dims and (dims[k] < lo or (hi is not None and dims[k] > hi)):
            return False
    dt = domain.get("dtypes") or ([domain["dtype"]] if domain.get("dtype") else None)
    if dt and dtype not in dt:
        return False
    want = domain.get("arch")
    want = [want] if isinstance(want, str) else want
    return not (want and isinstance(arch, str) and not any(fnmatch.fnmatchcase(arch, p) for p in want))


def variant_domain(hyp: Hypothesis, spec, hot: list[Shape]) -> dict:
    """The dispatch domain: the hypothesis's ``domain`` (dispatch format, or dim ranges at
    its top; else ``evidence.domain``), dtypes from it or else the hot shapes' (only what
    was measured), arch from it, else the hot shapes' or ``evidence.arch``."""
    ev = hyp.evidence
    raw = hyp.domain or ev.get("domain")
    dims: dict = {}
    dtypes = arch = None
    if isinstance(raw, dict):
        ranges = (
            raw.get("dims") if isinstance(raw.get("dims"), dict) else {k: v for k, v in raw.items() if k in spec.dims}
        )
        for k, r in ranges.items():
            if k not in spec.dims:
                raise ChangeError(f"hypothesis domain: {k!r} is not a dim of {spec.name} ({', '.join(spec.dims)})")
            if isinstance(r, dict):
                lo, hi = r.get("min"), r.get("max")
            elif isinstance(r, (list, tuple)) and len(r) == 2:
                lo, hi = r
            else:
                lo = hi = None
            if not isinstance(lo, int) or not (hi is None or isinstance(hi, int)):
                raise ChangeError(f"hypothesis domain.{k}: expected [lo, hi] (hi may be null), got {r!r}")
            d = spec.dims[k]
            lo, hi = max(lo, d.min), (None if hi is None or hi >= d.max else hi)
            if hi is not None and hi < lo:
                raise ChangeError(f"hypothesis domain.{k}: {r!r} does not meet the spec's range [{d.min}, {d.max}]")
            if lo > d.min or hi is not None:
                dims[k] = [lo, hi]
        dt = raw.get("dtypes", [raw["dtype"]] if raw.get("dtype") else None)
        dtypes = list(dt) if dt else None
        a = raw.get("arch")
        arch = [a] if isinstance(a, str) else list(a) if a else None
    else:
        for k in spec.dims:
            values = [s.dims[k] for s in hot]
            lo, hi = min(values), max(values)
            dims[k] = [lo, hi]
    if dtypes is None:
        dtypes = [d for d in spec.dtypes if any(s.dtype == d for s in hot)]
    for d in dtypes:
        if d not in spec.dtypes:
            raise ChangeError(f"hypothesis domain: dtype {d!r} is not one of {spec.name}'s ({', '.join(spec.dtypes)})")
    if arch is None:
        found = [ev["arch"]] if isinstance(ev.get("arch"), str) and ev["arch"] else []
        rows = ev.get("groups") or ev.get("hot_shapes") or ev.get("shapes") or []
        found += [
            r["arch"]
            for r in rows
            if isinstance(r, dict)
            and isinstance(r.get("arch"), str)
            and any(r.get("dims") == h.dims and r.get("dtype") == h.dtype for h in hot)
        ]
        arch = sorted(set(found)) or None
    out: dict = {}
    if dims:
        out["dims"] = dims
    out["dtypes"] = dtypes
    if arch:
        out["arch"] = arch
    return out


def concrete_arch(domain: dict) -> str:
    """An architecture inside the domain, to check routing with (its arch may be patterns)."""
    patterns = domain.get("arch")
    if not patterns:
        return "cpu"
    tries = [p for p in patterns if not any(c in p for c in "*?[")] + [
        re.sub(r"[*?]|\[.*?\]", "0", p) for p in patterns
    ]
    for a in tries + list(_ARCH_GUESSES):
        if any(fnmatch.fnmatchcase(a, p) for p in patterns):
            return a
    raise ChangeError(f"domain arch {patterns}: cannot find an architecture name that matches")


# ---------------------------------------------------------------------------------------
# Test shapes


def domain_edges(spec, domain: dict, hot: list[Shape], dtypes: list[str]) -> list[Shape]:
    """The two corners of the domain (every constrained dim at its low end, then at its
    high end; an open end at the spec's limit), other dims as in the first hot shape."""
    ranges = domain.get("dims") or {}
    if not ranges:
        return []
    base = dict(hot[0].dims)
    low = {k: (ranges[k][0] if k in ranges else v) for k, v in base.items()}
    high = {
        k: ((spec.dims[k].max if ranges[k][1] is None else ranges[k][1]) if k in ranges else v) for k, v in base.items()
    }
    out = []
    for dims, why in ((low, "domain corner, low"), (high, "domain corner, high")):
        for dt in dtypes:
            out.append(Shape(dims, dt, why))
    return out


def outside_calls(spec, domain: dict, hot: list[Shape], arch: str) -> list[tuple[dict, str, str]]:
    """Calls just outside the domain, one per bound: (dims, dtype, arch)."""
    base, dt = dict(hot[0].dims), hot[0].dtype
    out = []
    for k, (lo, hi) in (domain.get("dims") or {}).items():
        if lo > spec.dims[k].min:
            out.append((dict(base, **{k: lo - 1}), dt, arch))
        if hi is not None and hi < spec.dims[k].max:
            out.append((dict(base, **{k: hi + 1}), dt, arch))
    other = [d for d in spec.dtypes if d not in (domain.get("dtypes") or spec.dtypes)]
    if other:
        out.append((base, other[0], arch))
    if domain.get("arch"):
        away = next((a for a in _ARCH_GUESSES if not any(fnmatch.fnmatchcase(a, p) for p in domain["arch"])), None)
        if away:
            out.append((base, dt, away))
    return out


def unique_shapes(shapes: list[Shape]) -> list[Shape]:
    seen, out = set(), []
    for s in shapes:
        key = (tuple(s.dims.items()), s.dtype)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------
# Small helpers


def parse_label(label: str) -> dict:
    """``M=4096,N=50304,bfloat16`` (or ``dtype=bfloat16``) -> {dims, dtype}."""
    dims, dtype = {}, None
    for part in str(label).split(","):
        part = part.strip()
        k, eq, v = part.partition("=")
        if not eq and part in DTYPES:
            dtype = part
        elif k == "dtype" and v in DTYPES:
            dtype = v
        elif eq and v.lstrip("-").isdigit():
            dims[k] = int(v)
    if not dims or dtype is None:
        raise ChangeError(f"benchmark case {label!r}: expected 'M=..,N=..,<dtype>'")
    return {"dims": dims, "dtype": dtype}


def _spec_dims(spec, dims: dict, at: str) -> dict:
    if set(dims) != set(spec.dims):
        raise ChangeError(f"{at}: dims {sorted(dims)} are not {spec.name}'s dims {list(spec.dims)}")
    out = {}
    for k in spec.dims:
        v = dims[k]
        d = spec.dims[k]
        if isinstance(v, bool) or not isinstance(v, int) or not d.min <= v <= d.max:
            raise ChangeError(f"{at}: {k}={v!r} is outside {spec.name}'s domain [{d.min}, {d.max}]")
        out[k] = v
    return out


def order(spec, dims: dict) -> dict:
    return {k: dims[k] for k in spec.dims if k in dims}


def inside(domain: dict, dims: dict, dtype: str) -> bool:
    for k, (lo, hi) in (domain.get("dims") or {}).items():
        if dims[k] < lo or (hi is not None and dims[k] > hi):
            return False
    return dtype in (domain.get("dtypes") or [dtype])


def label(dims: dict, dtype: str) -> str:
    return ",".join([f"{k}={v}" for k, v in dims.items()] + [dtype])
