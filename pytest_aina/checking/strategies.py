"""Hypothesis strategies that send a kernel where kernels break.

Sizes favour what masks and block loops get wrong: 1, the domain's edges, one off a power
of two, primes, a wide row at the budget's edge, leading batch dims (including a batch of
1); layouts and value kinds come from what the spec allows. ``edge_cases`` lists the
cases every property item runs before Hypothesis starts drawing, so each layout and value
kind is covered even in the smallest profile, and so is every alternative of ``args`` and
of an input's ``dtypes``, sentinels none and all, and the largest inputs the profile's budget
allows (the most rows, the most elements): a kernel right on small inputs and wrong past
a size threshold fails every time, in every dtype.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from pytest_aina.checking.profiles import Profile
from pytest_aina.spec.model import Case, Input, Spec

_SPECIAL = (
    1,
    2,
    3,
    5,
    7,
    8,
    15,
    16,
    17,
    31,
    33,
    63,
    64,
    65,
    127,
    129,
    255,
    256,
    257,
    511,
    1000,
    1023,
    1024,
    1025,
    2047,
    2049,
    4095,
    4097,
    8191,
    8193,
    16383,
    16385,
    32767,
    32769,
    65535,
    65537,
)


def primary(spec: Spec) -> Input:
    """The input whose shape spans the most dims (``x``, not ``weight``)."""
    return max(spec.inputs, key=lambda i: len(i.shape))


def dim_sizes(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Sizes in [lo, hi], weighted towards edges and sizes that break masks."""
    if hi < lo:
        hi = lo
    specials = sorted({v for v in (lo, lo + 1, hi - 1, hi, *_SPECIAL) if lo <= v <= hi})
    return st.one_of(st.sampled_from(specials), st.integers(lo, hi))


def _budget(profile: Profile, n_last: int) -> int:
    return max(1, min(profile.max_rows, profile.max_numel // max(n_last, 1)))


def _batch_splits(m: int) -> list[tuple[int, ...] | None]:
    splits: list[tuple[int, ...] | None] = [None, (1, m)]
    divisors = [d for d in range(2, int(math.isqrt(m)) + 1) if m % d == 0]
    for d in divisors[:3]:
        splits.append((d, m // d))
        rest = m // d
        for e in range(2, int(math.isqrt(rest)) + 1):
            if rest % e == 0:
                splits.append((d, e, rest // e))
                break
    return splits


@st.composite
def cases(draw, spec: Spec, *, dtype: str, profile: Profile) -> Case:
    """Any case in the spec's domain, within the profile's budget."""
    x = primary(spec)
    dims: dict[str, int] = {}
    last = x.shape[-1]
    lo, hi = spec.dims[last].min, spec.dims[last].max
    dims[last] = draw(dim_sizes(lo, min(hi, max(lo, profile.max_numel))), label=last)
    budget = _budget(profile, dims[last])
    for name in reversed(x.shape[:-1]):
        d = spec.dims[name]
        dims[name] = draw(dim_sizes(d.min, min(d.max, max(d.min, budget))), label=name)
        budget = max(1, budget // dims[name])
    for name, d in spec.dims.items():  # dims only other inputs use
        if name not in dims:
            dims[name] = draw(dim_sizes(d.min, min(d.max, max(d.min, profile.max_rows))), label=name)
    batch = None
    if x.batch_dims and len(x.shape) >= 2:
        batch = draw(st.sampled_from(_batch_splits(dims[x.shape[0]])), label="batch")
    layout = draw(st.sampled_from(spec.layouts), label="layout")
    values = draw(st.sampled_from(x.values), label="values")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    ordered = tuple((n, dims[n]) for n in spec.dims)
    args = tuple(
        (k, v)
        for k, alts in spec.arg_alternatives.items()
        if (v := draw(st.sampled_from(alts), label=f"args.{k}")) != alts[0]
    )
    input_dtypes = []
    for inp in spec.inputs:
        if len(inp.dtypes) > 1:
            choice = draw(st.sampled_from(inp.dtypes), label=f"dtype.{inp.name}")
            if choice != inp.dtypes[0]:
                input_dtypes.append((inp.name, choice or dtype))
    sentinels = "some"
    if any(inp.sentinel for inp in spec.inputs):
        sentinels = draw(st.sampled_from(("some", "some", "none", "all")), label="sentinels")
    return Case(
        dims=ordered,
        dtype=dtype,
        layout=layout,
        values=values,
        batch=batch,
        seed=seed,
        args=args,
        input_dtypes=tuple(input_dtypes),
        sentinels=sentinels,
    )


def edge_cases(spec: Spec, *, dtype: str, profile: Profile) -> list[Case]:
    """Deterministic cases run before any random draw: domain minimum, a wide row at the
    budget edge, an odd size, each non-contiguous layout and each value kind."""
    x = primary(spec)
    last = x.shape[-1]
    d_last = spec.dims[last]

    def shape(n_last: int, rows: int) -> tuple:
        dims = {n: d.min for n, d in spec.dims.items()}
        dims[last] = max(d_last.min, min(d_last.max, n_last))
        budget = rows
        for name in reversed(x.shape[:-1]):
            d = spec.dims[name]
            dims[name] = max(d.min, min(d.max, budget))
            budget = max(1, budget // dims[name])
        return tuple((n, dims[n]) for n in spec.dims)

    wide = min(d_last.max, profile.max_numel)
    odd = min(d_last.max, 1000)
    rows = min(profile.max_rows, max(1, profile.max_numel // max(odd, 1)), 6)
    most_rows = profile.max_rows
    out = [
        Case(shape(d_last.min, 1), dtype),
        Case(shape(wide, 1), dtype, seed=1),
        Case(shape(odd, rows), dtype, seed=2),
        # the budget's edges: the most rows it allows, at the most elements, and with an odd row
        Case(shape(max(1, profile.max_numel // most_rows), most_rows), dtype, seed=3),
        Case(shape(min(odd, max(1, profile.max_numel // most_rows) - 1), most_rows), dtype, seed=4),
    ]
    for i, layout in enumerate(lay for lay in spec.layouts if lay != "contiguous"):
        out.append(Case(shape(odd, rows), dtype, layout=layout, seed=10 + i))
    for i, kind in enumerate(v for v in x.values if v != "normal"):
        out.append(Case(shape(odd, rows), dtype, values=kind, seed=20 + i))
    if x.batch_dims and len(x.shape) >= 2:
        dims = dict(shape(odd, 6))
        m = dims[x.shape[0]]
        split = next((s for s in _batch_splits(m) if s and len(s) == 2 and s[0] > 1), (1, m))
        out.append(Case(tuple(dims.items()), dtype, batch=split, seed=30))
    # every alternative of args and of input dtypes, and sentinels none and all
    for i, (k, alts) in enumerate(spec.arg_alternatives.items()):
        for j, v in enumerate(alts[1:]):
            out.append(Case(shape(odd, rows), dtype, seed=40 + 10 * i + j, args=((k, v),)))
    for i, inp in enumerate(spec.inputs):
        for j, choice in enumerate(inp.dtypes[1:]):
            out.append(Case(shape(odd, rows), dtype, seed=60 + 10 * i + j, input_dtypes=((inp.name, choice or dtype),)))
    if any(inp.sentinel for inp in spec.inputs):
        out += [
            Case(shape(odd, rows), dtype, seed=80, sentinels="none"),
            Case(shape(odd, rows), dtype, seed=81, sentinels="all"),
        ]
    # unique, in order
    seen, unique = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique
