"""Dispatch on toy kernels: most specific wins, ties are deterministic, generic is always reachable."""

from __future__ import annotations

import textwrap

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pytest_aina.runtime import Recorder, dispatch
from pytest_aina.runtime.dispatch import DispatchTableError, Table, Variant, dispatcher, load_table
from pytest_aina.telemetry.validate import read_file

HERE = __name__


# --- toy kernels: each says who served the call ------------------------------------------


def toy_generic(x, scale=1.0, **config):
    return ("generic", config)


def toy_variant(x, scale=1.0, **config):
    return ("variant", config)


def toy_dims(x, scale=1.0):
    return {"M": x.shape[0], "N": x.shape[1]}


def write_table(path, variants_yaml: str, kernel: str = "toy"):
    path.write_text(
        textwrap.dedent(f"""\
        # the toy kernel's dispatch table
        aina_dispatch: 1
        kernel: {kernel}
        variants:
          - name: generic
            function: {HERE}:toy_generic
        """)
        + textwrap.indent(textwrap.dedent(variants_yaml), "  ")
    )
    return path


def make(tmp_path, variants_yaml: str):
    path = write_table(tmp_path / "toy.yaml", variants_yaml)
    return dispatcher("toy", toy_dims, toy_generic, table=path)


def served(d, m, n, dtype=torch.float32):
    name, config = d(torch.empty(m, n, dtype=dtype))
    return config.get("tag", name)


VARIANTS = f"""\
- name: wide
  function: {HERE}:toy_variant
  config: {{tag: wide}}
  domain: {{dims: {{N: [1024, null]}}}}
- name: wide_half
  function: {HERE}:toy_variant
  config: {{tag: wide_half}}
  domain: {{dims: {{N: [1024, null]}}, dtypes: [float16, bfloat16]}}
- name: wide_band
  function: {HERE}:toy_variant
  config: {{tag: wide_band}}
  domain: {{dims: {{N: [1024, 8191]}}}}
- name: cpu_square
  function: {HERE}:toy_variant
  config: {{tag: cpu_square}}
  domain: {{dims: {{M: [4096, 4096], N: [4096, 4096]}}, arch: [cpu]}}
- name: gpu_only
  function: {HERE}:toy_variant
  config: {{tag: gpu_only}}
  domain: {{dims: {{N: [1, null]}}, arch: ["sm_9*"]}}
"""


def test_most_specific_applicable_variant_wins(tmp_path):
    d = make(tmp_path, VARIANTS)
    assert served(d, 4, 512) == "generic"  # nothing else applies
    assert served(d, 4, 100_000) == "wide"  # only 'wide' applies
    assert served(d, 4, 100_000, torch.float16) == "wide_half"  # more axes beat fewer
    assert served(d, 4, 2048) == "wide_band"  # same axes: the narrower range wins
    assert served(d, 4, 2048, torch.bfloat16) == "wide_half"  # 2 axes beat 1, however narrow
    assert served(d, 4096, 4096, torch.bfloat16) == "cpu_square"  # 3 axes
    # gpu_only would win everywhere on an sm_90 device; on the CPU it never applies
    assert "gpu_only" not in {served(d, m, n) for m in (1, 4096) for n in (1, 4096, 131072)}


def test_selection_on_other_architectures(tmp_path):
    table = load_table(write_table(tmp_path / "toy.yaml", VARIANTS))
    assert table.select({"M": 1, "N": 5}, "float16", "sm_90").name == "gpu_only"
    assert table.select({"M": 1, "N": 5}, "float16", "sm_80").name == "generic"
    # wide_half and gpu_only: two axes each, equally wide N ranges; two dtypes beat any dtype
    assert table.select({"M": 1, "N": 5000}, "float16", "sm_90").name == "wide_half"
    assert table.select({"M": 4096, "N": 4096}, "float16", "gfx942").name == "wide_half"


def test_ties_go_to_the_variant_listed_first(tmp_path):
    a = f"""\
- name: low
  function: {HERE}:toy_variant
  config: {{tag: low}}
  domain: {{dims: {{N: [0, 100]}}}}
"""
    b = f"""\
- name: high
  function: {HERE}:toy_variant
  config: {{tag: high}}
  domain: {{dims: {{N: [50, 150]}}}}
"""
    first = make(tmp_path, a + b)
    assert [served(first, 1, n) for n in (10, 75, 75, 120)] == ["low", "low", "low", "high"]
    (tmp_path / "toy.yaml").unlink()
    second = make(tmp_path, b + a)
    assert [served(second, 1, n) for n in (10, 75, 120)] == ["low", "high", "high"]


def test_generic_is_always_reachable(tmp_path, monkeypatch):
    d = make(tmp_path, VARIANTS)
    assert d.variant("generic") is toy_generic
    assert served(d, 4, 100_000) == "wide"
    d.pin("generic")
    assert served(d, 4, 100_000) == "generic" and served(d, 4096, 4096) == "generic"
    d.pin(None)
    assert served(d, 4, 100_000) == "wide"
    with pytest.raises(ValueError, match="no variant 'nope'"):
        d.pin("nope")

    # the rollback switch in the environment, read when the table is loaded
    monkeypatch.setenv("AINA_DISPATCH_PIN", "other=wide,toy=generic")
    d.reload()
    assert served(d, 4, 100_000) == "generic"
    monkeypatch.setenv("AINA_DISPATCH_PIN", "generic")
    d.reload()
    assert served(d, 4096, 4096) == "generic"

    # no table at all: the module's generic function serves everything
    monkeypatch.delenv("AINA_DISPATCH_PIN")
    bare = dispatcher("toy", toy_dims, toy_generic, table=tmp_path / "absent.yaml")
    assert served(bare, 4096, 4096) == "generic"


def test_routes_are_cached_per_dims_dtype_device(tmp_path):
    d = make(tmp_path, VARIANTS)
    for _ in range(3):
        served(d, 4, 2048)
    assert d.resolutions == 1
    served(d, 4, 2048, torch.float16)
    served(d, 5, 2048)
    assert d.resolutions == 3
    served(d, 4, 2048)
    assert d.resolutions == 3


def test_a_table_edit_takes_effect_on_reload(tmp_path):
    d = make(tmp_path, "")
    assert served(d, 4, 2048) == "generic"
    dispatch.add_variant(
        tmp_path / "toy.yaml",
        {
            "name": "mid",
            "function": f"{HERE}:toy_variant",
            "config": {"tag": "mid"},
            "domain": {"dims": {"N": [1024, 4096]}},
        },
    )
    assert served(d, 4, 2048) == "generic"  # cached until told
    d.reload()
    assert served(d, 4, 2048) == "mid"


def test_the_recorder_reports_the_variant_that_served(tmp_path):
    d = make(tmp_path, VARIANTS)
    with Recorder("svc", path=tmp_path / "t.jsonl", window_s=3600):
        served(d, 4, 2048)
        served(d, 4, 2048)
        served(d, 4, 100_000, torch.float16)
        served(d, 4, 512)
    served(d, 4, 512)  # after the recorder is gone: not recorded, still served
    windows, issues = read_file(tmp_path / "t.jsonl")
    assert issues == []
    got = sorted((w.variant, w.dim_map["N"], w.dtype, w.calls, w.device, w.arch, w.timing) for w in windows)
    assert got == [
        ("generic", 512, "float32", 1, "cpu", "cpu", "wall"),
        ("wide_band", 2048, "float32", 2, "cpu", "cpu", "wall"),
        ("wide_half", 100_000, "float16", 1, "cpu", "cpu", "wall"),
    ]


def test_the_generic_in_the_table_must_be_the_modules(tmp_path):
    path = write_table(tmp_path / "toy.yaml", "")
    d = dispatcher("toy", toy_dims, toy_variant, table=path)
    with pytest.raises(
        DispatchTableError, match="'generic' is .*toy_generic.* but the kernel module dispatches to .*toy_variant"
    ):
        served(d, 1, 1)


# --- the specificity rule as a property ----------------------------------------------------

AXES = ("M", "N")


@st.composite
def domains(draw):
    dims = {}
    for name in AXES:
        if draw(st.booleans()):
            lo = draw(st.integers(1, 5000))
            dims[name] = (lo, draw(st.one_of(st.none(), st.integers(lo, 10000))))
    dtypes = draw(st.one_of(st.none(), st.lists(st.sampled_from(dispatch.DTYPES), min_size=1, max_size=3, unique=True)))
    arch = draw(st.one_of(st.none(), st.just(["cpu"]), st.just(["cpu", "sm_90"])))
    return dims, dtypes and tuple(dtypes), arch and tuple(arch)


@st.composite
def refinement(draw, domain):
    """A domain strictly inside ``domain`` that constrains at least its axes."""
    dims, dtypes, arch = domain
    dims = dict(dims)
    changed = False
    for name in AXES:
        if name in dims:
            lo, hi = dims[name]
            top = hi if hi is not None else 20000
            new_lo = draw(st.integers(lo, top))
            new_hi = draw(st.integers(new_lo, top))
            changed |= (new_lo, new_hi) != (lo, hi)
            dims[name] = (new_lo, new_hi)
        elif draw(st.booleans()):
            lo = draw(st.integers(1, 5000))
            dims[name] = (lo, lo + draw(st.integers(0, 5000)))
            changed = True
    if dtypes is None and draw(st.booleans()):
        dtypes, changed = ("float16",), True
    if arch is None and draw(st.booleans()):
        arch, changed = ("cpu",), True
    if not changed:
        dtypes, arch = dtypes or ("float16",), arch or ("cpu",)
        if domain == (dims, dtypes, arch):
            dims = {**dims, "M": (1, 1)} if "M" not in dims else dims
    return dims, dtypes, arch


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_refined_domain_wins_wherever_it_applies(data):
    outer = data.draw(domains())
    inner = data.draw(refinement(outer))
    first_inner = data.draw(st.booleans())  # the file order must not matter here
    a = Variant("outer", "m:f", dims=outer[0], dtypes=outer[1], arch=outer[2], index=1 if first_inner else 0)
    b = Variant("inner", "m:f", dims=inner[0], dtypes=inner[1], arch=inner[2], index=0 if first_inner else 1)
    if (a.dims, a.dtypes, a.arch) == (b.dims, b.dtypes, b.arch) or a.is_generic and b.is_generic:
        return
    table = Table("toy", (Variant("generic", "m:f", index=2), a, b))
    call_dims = {name: data.draw(st.integers(1, 20000)) for name in AXES}
    dtype = data.draw(st.sampled_from(dispatch.DTYPES))
    arch = data.draw(st.sampled_from(["cpu", "sm_90"]))
    chosen = table.select(call_dims, dtype, arch)
    assert chosen.applies(call_dims, dtype, arch)
    if b.applies(call_dims, dtype, arch):
        assert chosen.name == "inner"
    elif not a.applies(call_dims, dtype, arch):
        assert chosen.name == "generic"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(domains(), min_size=1, max_size=5),
    st.lists(
        st.tuples(st.integers(1, 20000), st.integers(1, 20000), st.sampled_from([torch.float32, torch.float16])),
        min_size=1,
        max_size=12,
    ),
)
# found by Hypothesis: the same dtypes in another order are one domain, not two
@example(
    doms=[({}, ("float32", "float16", "bfloat16"), None), ({}, ("float32", "bfloat16", "float16"), None)],
    calls=[(1, 1, torch.float32)],
)
def test_cached_dispatch_agrees_with_a_fresh_choice(tmp_path_factory, doms, calls):
    """Whatever order calls come in, the cached route is the table's choice for that call."""
    entries = []
    for i, (dims, dtypes, arch) in enumerate(doms):
        dom = {}
        if dims:
            dom["dims"] = {k: [lo, hi] for k, (lo, hi) in dims.items()}
        # sorted: the table compares domains as sets, and refuses a second one with the
        # same dtypes in another order (it would never be chosen)
        if dtypes:
            dom["dtypes"] = sorted(dtypes)
        if arch:
            dom["arch"] = sorted(arch)
        if dom and dom not in [e["domain"] for e in entries]:
            entries.append(
                {"name": f"v{i}", "function": f"{HERE}:toy_variant", "config": {"tag": f"v{i}"}, "domain": dom}
            )
    path = write_table(tmp_path_factory.mktemp("t") / "toy.yaml", "")
    for e in entries:
        dispatch.add_variant(path, e)
    d = dispatcher("toy", toy_dims, toy_generic, table=path)
    table = load_table(path)
    for m, n, dtype in calls + calls[::-1]:
        expected = table.select({"M": m, "N": n}, str(dtype).removeprefix("torch."), "cpu").name
        assert served(d, m, n, dtype) == expected
