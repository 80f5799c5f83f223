"""The ratchet: every boundary change classified, through the API and `aina spec diff`."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spec_samples import VALID, variant

from pytest_aina.cli import main
from pytest_aina.spec.model import parse_spec
from pytest_aina.spec.ratchet import (
    ADDED,
    CHANGED,
    REMOVED,
    TIGHTENED,
    WEAKENED,
    diff_specs,
    format_changes,
    load_spec_set,
    summary,
)


def spec(text, file="head.yaml"):
    s = parse_spec(text, file)
    return {s.name: s}


def kinds(before: str, after: str) -> set:
    return {(c.kind, c.path) for c in diff_specs(spec(before, "base.yaml"), spec(after, "head.yaml"))}


SUMS = "sums_to: {value: 1, dim: -1, atol: 1e-3}"
BOUNDED = "bounded: {min: 0, max: 1}"
# Only bfloat16 removed: the float16 example and benchmark may stay.
NO_BF16 = variant(
    "  bfloat16: {atol: 1e-2, rtol: 1e-2}\n",
    "",
    variant("dtypes: [float32, float16, bfloat16]", "dtypes: [float32, float16]"),
)
WITH_W = variant(
    "  x: {shape: [M, N], batch_dims: true, layouts: [contiguous, sliced, transposed]}\n",
    "  x: {shape: [M, N], batch_dims: true, layouts: [contiguous, sliced, transposed]}\n  w: {shape: [N]}\n",
)

CASES = [
    ("identical", VALID, VALID, set()),
    (
        "only-comments-and-notes-moved",
        VALID,
        VALID.replace("\ndims:", "\n# the domain\ndims:").replace(
            "description: Row-wise softmax over the last dim.", "description: Softmax."
        ),
        set(),
    ),
    # invariants
    ("invariant-dropped", VALID, variant("  - non_negative\n", ""), {(REMOVED, "invariants[non_negative]")}),
    (
        "invariant-added",
        VALID,
        variant("  - non_negative\n", "  - non_negative\n  - finite\n"),
        {(ADDED, "invariants[finite]")},
    ),
    (
        "sums_to-atol-raised",
        VALID,
        variant(SUMS, "sums_to: {value: 1, dim: -1, atol: 1e-2}"),
        {(WEAKENED, "invariants[sums_to(dim=-1)].atol")},
    ),
    (
        "sums_to-atol-lowered",
        VALID,
        variant(SUMS, "sums_to: {value: 1, dim: -1, atol: 1e-4}"),
        {(TIGHTENED, "invariants[sums_to(dim=-1)].atol")},
    ),
    ("sums_to-atol-default-equal", VALID, variant(SUMS, "sums_to: {value: 1, dim: -1}"), set()),
    (
        "sums_to-atol-to-default-is-looser",
        variant(SUMS, "sums_to: {value: 1, atol: 1e-5}"),
        variant(SUMS, "sums_to: {value: 1}"),
        {(WEAKENED, "invariants[sums_to(dim=-1)].atol")},
    ),
    (
        "sums_to-value-changed",
        VALID,
        variant(SUMS, "sums_to: {value: 2, dim: -1, atol: 1e-3}"),
        {(WEAKENED, "invariants[sums_to(dim=-1)].value")},
    ),
    (
        "sums_to-other-dim",
        VALID,
        variant(SUMS, "sums_to: {value: 1, dim: 0, atol: 1e-3}"),
        {(REMOVED, "invariants[sums_to(dim=-1)]"), (ADDED, "invariants[sums_to(dim=0)]")},
    ),
    (
        "mean_zero-atol-raised",
        variant(SUMS, "mean_zero: {atol: 1e-4}"),
        variant(SUMS, "mean_zero: {}"),
        {(WEAKENED, "invariants[mean_zero(dim=-1)].atol")},
    ),
    (
        "bounded-max-raised",
        VALID,
        variant(BOUNDED, "bounded: {min: 0, max: 2}"),
        {(WEAKENED, "invariants[bounded].max")},
    ),
    (
        "bounded-min-lowered",
        VALID,
        variant(BOUNDED, "bounded: {min: -1, max: 1}"),
        {(WEAKENED, "invariants[bounded].min")},
    ),
    ("bounded-min-removed", VALID, variant(BOUNDED, "bounded: {max: 1}"), {(WEAKENED, "invariants[bounded].min")}),
    (
        "bounded-narrowed",
        VALID,
        variant(BOUNDED, "bounded: {min: 0.1, max: 0.9}"),
        {(TIGHTENED, "invariants[bounded].min"), (TIGHTENED, "invariants[bounded].max")},
    ),
    ("bounded-bound-added", variant(BOUNDED, "bounded: {min: 0}"), VALID, {(TIGHTENED, "invariants[bounded].max")}),
    (
        "python-check-moved",
        variant(BOUNDED, "python: {check: 'checks:a', name: rows}"),
        variant(BOUNDED, "python: {check: 'checks:b', name: rows}"),
        {(CHANGED, "invariants[python:rows].check")},
    ),
    (
        "python-unnamed-replaced",
        variant(BOUNDED, "python: {check: 'checks:a'}"),
        variant(BOUNDED, "python: {check: 'checks:b'}"),
        {(REMOVED, "invariants[python:checks:a]"), (ADDED, "invariants[python:checks:b]")},
    ),
    # tolerances and dtypes
    (
        "atol-loosened",
        VALID,
        variant("float16: {atol: 1e-3,", "float16: {atol: 2e-3,"),
        {(WEAKENED, "tolerance.float16.atol")},
    ),
    (
        "rtol-loosened",
        VALID,
        variant("bfloat16: {atol: 1e-2, rtol: 1e-2}", "bfloat16: {atol: 1e-2, rtol: 5e-2}"),
        {(WEAKENED, "tolerance.bfloat16.rtol")},
    ),
    (
        "tolerance-tightened",
        VALID,
        variant("float32: {atol: 1e-6, rtol: 1e-5}", "float32: {atol: 1e-7, rtol: 1e-6}"),
        {(TIGHTENED, "tolerance.float32.atol"), (TIGHTENED, "tolerance.float32.rtol")},
    ),
    ("dtype-removed", VALID, NO_BF16, {(REMOVED, "dtypes")}),
    ("dtype-added", NO_BF16, VALID, {(ADDED, "dtypes"), (ADDED, "examples[M=3,N=1000,bfloat16]")}),
    # the domain
    ("domain-max-lowered", VALID, variant("max: 131072", "max: 65536"), {(WEAKENED, "dims.N.max")}),
    ("domain-min-raised", VALID, variant("M: {min: 1,", "M: {min: 2,"), {(WEAKENED, "dims.M.min")}),
    ("domain-widened", variant("max: 131072", "max: 65536"), VALID, {(TIGHTENED, "dims.N.max")}),
    (
        "batch-dims-dropped",
        VALID,
        variant("batch_dims: true", "batch_dims: false"),
        {(WEAKENED, "inputs.x.batch_dims")},
    ),
    (
        "layout-removed",
        VALID,
        variant("[contiguous, sliced, transposed]", "[contiguous, sliced]"),
        {(REMOVED, "inputs.x.layouts")},
    ),
    ("layout-added", variant("[contiguous, sliced, transposed]", "[contiguous]"), VALID, {(ADDED, "inputs.x.layouts")}),
    (
        "value-kinds-narrowed-from-default",
        VALID,
        variant("transposed]}", "transposed], values: [normal, large, small, ties, mixed]}"),
        {(REMOVED, "inputs.x.values")},
    ),
    # pinned examples
    (
        "example-deleted",
        VALID,
        variant("  - {dims: {M: 3, N: 1000}}\n", ""),
        {
            (REMOVED, "examples[M=3,N=1000,float32]"),
            (REMOVED, "examples[M=3,N=1000,float16]"),
            (REMOVED, "examples[M=3,N=1000,bfloat16]"),
        },
    ),
    (
        "example-narrowed-to-one-dtype",
        VALID,
        variant("{dims: {M: 3, N: 1000}}", "{dims: {M: 3, N: 1000}, dtype: float16}"),
        {(REMOVED, "examples[M=3,N=1000,float32]"), (REMOVED, "examples[M=3,N=1000,bfloat16]")},
    ),
    (
        "example-added",
        VALID,
        variant("examples:\n", "examples:\n  - {dims: {M: 7, N: 7}, dtype: float32, seed: 3}\n"),
        {(ADDED, "examples[M=7,N=7,float32]")},
    ),
    ("example-note-only", VALID, variant("{dims: {M: 3, N: 1000}}", "{dims: {M: 3, N: 1000}, note: hot}"), set()),
    (
        "example-seed-changed",
        variant("{dims: {M: 3, N: 1000}}", "{dims: {M: 3, N: 1000}, dtype: float32, seed: 1}"),
        variant("{dims: {M: 3, N: 1000}}", "{dims: {M: 3, N: 1000}, dtype: float32, seed: 2}"),
        {(REMOVED, "examples[M=3,N=1000,float32]"), (ADDED, "examples[M=3,N=1000,float32]")},
    ),
    # what is called, and what needs review
    (
        "implementation-changed",
        VALID,
        variant("kernels.softmax:softmax\n", "kernels.softmax_v2:softmax\n"),
        {(CHANGED, "implementation")},
    ),
    ("reference-changed", VALID, variant("softmax_reference", "ref"), {(CHANGED, "reference")}),
    ("bytes-model-changed", VALID, variant("2 * x.numel()", "3 * x.numel()"), {(CHANGED, "objectives.bytes")}),
    ("args-changed", VALID, variant("dtypes:", "args: {eps: 1e-5}\ndtypes:"), {(CHANGED, "args.eps")}),
    (
        "benchmark-removed",
        VALID,
        variant("benchmarks:\n  - {dims: {M: 4096, N: 50304}, dtype: float16}\n", ""),
        {(CHANGED, "benchmarks[M=4096,N=50304,float16]")},
    ),
    ("input-added", VALID, WITH_W, {(ADDED, "inputs.w")}),
    ("input-removed", WITH_W, VALID, {(REMOVED, "inputs.w")}),
]


@pytest.mark.parametrize("before,after,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_boundary_change_is_classified(before, after, expected):
    assert kinds(before, after) == expected


def test_spec_removed_and_added():
    a = spec(VALID)
    b = spec(variant("name: softmax", "name: rms_norm"))
    changes = diff_specs(a, b)
    assert [(c.spec, c.kind, c.path) for c in changes] == [
        ("rms_norm", ADDED, "<spec>"),
        ("softmax", REMOVED, "<spec>"),
    ]
    assert [c.weakening for c in changes] == [False, True]


def test_changes_point_at_the_line_where_they_can_be_seen():
    before = spec(VALID, "base.yaml")
    after = spec(variant("  - non_negative\n", "").replace("float16: {atol: 1e-3", "float16: {atol: 1e-2"))
    by_path = {c.path: c for c in diff_specs(before, after)}
    tol = by_path["tolerance.float16.atol"]
    assert (tol.where, tol.before, tol.after, tol.direction) == ("head.yaml:14", 0.001, 0.01, "weaker")
    dropped = by_path["invariants[non_negative]"]
    assert dropped.where == "base.yaml:20"  # gone from head: shown where it was


def test_summary_and_text_grouped_per_spec():
    base = {**spec(VALID), **spec(variant("name: softmax", "name: layer_norm"))}
    head = {
        **spec(variant("max: 131072", "max: 131073")),
        **spec(variant("name: softmax", "name: layer_norm").replace("  - non_negative\n", "")),
    }
    changes = diff_specs(base, head)
    assert summary(changes) == {
        "weakenings": 1,
        "strengthenings": 1,
        "neutral": 0,
        "specs": 2,
        "by_kind": {REMOVED: 1, TIGHTENED: 1},
    }
    text = format_changes(changes).splitlines()
    assert text[0] == "layer_norm:"
    assert text[1].split()[:3] == ["removed", "invariants[non_negative]", "invariant"]
    assert text[2] == "softmax:"
    assert "domain of N widened up to 131073 (131072 -> 131073)" in text[3]


@settings(max_examples=60, deadline=None)
@given(old=st.integers(1, 10**6), new=st.integers(1, 10**6), part=st.sampled_from(["atol", "rtol"]))
def test_tolerance_direction_follows_the_numbers(old, new, part):
    line = "float16: {atol: 1e-3, rtol: 1e-3}"
    make = lambda v: variant(line, line.replace(f"{part}: 1e-3", f"{part}: {v}e-9"))  # noqa: E731
    got = kinds(make(old), make(new))
    expected = set() if old == new else {(WEAKENED if new > old else TIGHTENED, f"tolerance.float16.{part}")}
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(lo=st.tuples(st.integers(1, 50), st.integers(1, 50)), hi=st.tuples(st.integers(51, 99), st.integers(51, 99)))
def test_domain_direction_follows_the_numbers(lo, hi):
    make = lambda a, b: (
        variant("M: {min: 1, max: 65536}", f"M: {{min: {a}, max: {b}}}")
        .replace(  # noqa: E731
            "M: 4096, N: 50304}, dtype: float16}\n  -", "M: 51, N: 50304}, dtype: float16}\n  -"
        )
        .replace("{dims: {M: 3, N: 1000}}", "{dims: {M: 50, N: 1000}}")
        .replace("benchmarks:\n  - {dims: {M: 4096", "benchmarks:\n  - {dims: {M: 50")
    )
    got = kinds(make(lo[0], hi[0]), make(lo[1], hi[1]))
    expected = set()
    if lo[1] != lo[0]:
        expected.add((WEAKENED if lo[1] > lo[0] else TIGHTENED, "dims.M.min"))
    if hi[1] != hi[0]:
        expected.add((WEAKENED if hi[1] < hi[0] else TIGHTENED, "dims.M.max"))
    assert got == expected


# ---------------------------------------------------------------------------------------
# the command, on folders


@pytest.fixture
def folders(tmp_path):
    def make(base: str, head: str):
        for name, text in (("base", base), ("head", head)):
            (tmp_path / name).mkdir()
            (tmp_path / name / "softmax.yaml").write_text(text)
        return str(tmp_path / "base"), str(tmp_path / "head")

    return make


def test_cli_exit_1_on_weakening_with_readable_lines(folders, capsys):
    base, head = folders(VALID, variant("float16: {atol: 1e-3", "float16: {atol: 1e-2"))
    assert main(["spec", "diff", base, head]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "softmax:"
    assert out[1].split() == [
        "weakened",
        "tolerance.float16.atol",
        "float16",
        "atol",
        "loosened",
        "(0.001",
        "->",
        "0.01)",
        f"[{head}/softmax.yaml:14]",
    ]
    assert out[-1].endswith(
        "1 removed/weakened, 0 added/tightened, 0 to review (1 -> 1 specs): "
        "boundaries weakened: needs a human's approval"
    )


def test_cli_exit_0_when_only_strengthened_or_neutral(folders, capsys):
    base, head = folders(
        VALID,
        variant("kernels.softmax:softmax\n", "kernels.v2:softmax\n").replace(
            "float16: {atol: 1e-3", "float16: {atol: 1e-4"
        ),
    )
    assert main(["spec", "diff", base, head]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .endswith("0 removed/weakened, 1 added/tightened, 1 to review (1 -> 1 specs): no boundary weakened")
    )


def test_cli_json(folders, capsys):
    base, head = folders(VALID, variant("  - non_negative\n", ""))
    assert main(["spec", "diff", "--json", base, head]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["weakened"] is True and doc["summary"]["weakenings"] == 1
    (change,) = doc["changes"]
    assert change == {
        "spec": "softmax",
        "kind": "removed",
        "path": "invariants[non_negative]",
        "message": "invariant non_negative dropped",
        "before": "non_negative",
        "after": None,
        "file": f"{base}/softmax.yaml",
        "line": 20,
        "direction": "weaker",
        "weakening": True,
    }


def test_cli_head_that_does_not_load_is_a_usage_error_naming_the_file(folders, capsys):
    base, head = folders(VALID, variant("aina: 1", "aina: 2"))
    assert main(["spec", "diff", base, head]) == 2
    err = capsys.readouterr().err
    assert f"{head}/softmax.yaml:1: aina: expected 1, got 2" in err


def test_two_specs_with_one_name_cannot_be_compared(tmp_path):
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)
    with pytest.raises(Exception, match=r"b.yaml:2: name: 'softmax' is also the name of .*a.yaml"):
        load_spec_set(tmp_path)
