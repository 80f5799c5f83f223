"""Dispatch tables as files: errors that say where, appending that keeps the file readable,
and the committed tables of the repository's kernels."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_aina.runtime.dispatch import (
    DispatchTableError,
    add_variant,
    load_table,
    parse_table,
    validate_table,
    without_variant,
)
from pytest_aina.spec.model import load_spec

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
# softmax dispatch: read by pytest_aina.runtime.dispatch
aina_dispatch: 1
kernel: toy
variants:
  # the variant that always remains
  - name: generic
    function: kernels.softmax:softmax_generic

  - name: wide  # a hand-tuned config for wide rows
    function: kernels.softmax:softmax_generic
    config: {BLOCK_N: 4096, num_warps: 16}
    domain:
      dims: {N: [32768, null]}
      dtypes: [bfloat16]
    evidence: {device: NVIDIA H100 80GB HBM3, dims: {M: 4096, N: 65536}, dtype: bfloat16, latency_s: 3.1e-4}

# trailing notes stay at the end
"""


def issues_of(text: str) -> list[str]:
    with pytest.raises(DispatchTableError) as info:
        parse_table(text, "toy.yaml", kernel="toy")
    return info.value.issues


def test_good_table_parses():
    t = parse_table(GOOD, "toy.yaml", kernel="toy")
    assert [v.name for v in t.variants] == ["generic", "wide"]
    wide = t.get("wide")
    assert wide.dims == {"N": (32768, None)} and wide.dtypes == ("bfloat16",) and wide.arch is None
    assert wide.config == {"BLOCK_N": 4096, "num_warps": 16} and wide.evidence["latency_s"] == 3.1e-4
    assert wide.line == 9 and wide.domain() == {"dims": {"N": [32768, None]}, "dtypes": ["bfloat16"]}


@pytest.mark.parametrize(
    "change, where, words",
    [
        (
            ("dims: {N: [32768, null]}", "dims: {N: [40000, 100]}"),
            "toy.yaml:13: variants[1].domain.dims.N",
            "empty range",
        ),
        (
            ("dtypes: [bfloat16]", "dtypes: [float64]"),
            "toy.yaml:14: variants[1].domain.dtypes",
            "expected a non-empty list of",
        ),
        (
            ("function: kernels.softmax:softmax_generic\n    config", "function: softmax_generic\n    config"),
            "toy.yaml:10: variants[1].function",
            "'module:attribute'",
        ),
        (("latency_s: 3.1e-4", "latency_s: -1"), "toy.yaml:15: variants[1].evidence.latency_s", "positive number"),
        (("    evidence:", "    colour: red\n    evidence:"), "toy.yaml:15: variants[1].colour", "unknown key"),
        (("kernel: toy", "kernel: other"), "toy.yaml:3: kernel", "this is the table of 'toy'"),
        (("- name: wide ", "- name: generic "), "toy.yaml:9: variants[1].name", "already the name of variants[0]"),
        (
            ("    domain:\n      dims: {N: [32768, null]}\n      dtypes: [bfloat16]\n", ""),
            "toy.yaml:9: variants[1]",
            "has no domain; only 'generic' may serve everything",
        ),
    ],
)
def test_bad_tables_name_file_line_and_key(change, where, words):
    text = GOOD.replace(*change)
    assert text != GOOD
    found = issues_of(text)
    assert any(i.startswith(where) and words in i for i in found), found


def test_table_level_problems():
    assert any("needs a variant named 'generic'" in i for i in issues_of(GOOD.replace("name: generic", "name: base")))
    assert any("not valid YAML" in i and i.startswith("toy.yaml:") for i in issues_of("variants: [\n"))
    dup = GOOD.replace(
        "# trailing notes",
        textwrap.dedent("""\
          - name: wide_again
            function: kernels.softmax:softmax_generic
            domain: {dtypes: [bfloat16], dims: {N: [32768, null]}}
        # trailing notes"""),
    )
    assert any("same domain as 'wide'" in i and "would never be chosen" in i for i in issues_of(dup))


def test_validate_table_imports_functions(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(
        GOOD.replace("kernels.softmax:softmax_generic\n    config", "kernels.softmax:no_such_thing\n    config")
    )
    assert validate_table(path) == []
    (problem,) = validate_table(path, check_imports=True)
    assert problem.startswith(f"{path}:9: variants[1].function: cannot import 'kernels.softmax:no_such_thing'")


def test_add_variant_keeps_text_and_comments(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(GOOD)
    entry = {
        "name": "decode_sm90",
        "function": "kernels.softmax:softmax_generic",
        "config": {"BLOCK_N": 1024, "ROWS_PER_PROGRAM": 4},
        "domain": {"dims": {"M": [1, 256], "N": [4096, 8191]}, "dtypes": ["bfloat16"], "arch": ["sm_90"]},
        "evidence": {
            "device": "NVIDIA H100 80GB HBM3",
            "dims": {"M": 64, "N": 4096},
            "dtype": "bfloat16",
            "latency_s": 4.2e-6,
            "baseline_latency_s": 5.0e-6,
        },
    }
    table = add_variant(path, entry, comment="added by aina evolve: hypothesis h-0123abcd")
    text = path.read_text()
    assert text.startswith(GOOD.split("\n# trailing")[0])  # everything before is untouched
    assert text.rstrip().endswith("# trailing notes stay at the end")
    assert "  # added by aina evolve: hypothesis h-0123abcd\n  - name: decode_sm90\n" in text
    assert table.get("decode_sm90").dims == {"M": (1, 256), "N": (4096, 8191)}
    assert load_table(path).get("decode_sm90").evidence["baseline_latency_s"] == 5.0e-6
    # and again: appends after the entry it just wrote
    add_variant(
        path, {"name": "tiny", "function": "kernels.softmax:softmax_generic", "domain": {"dims": {"N": [1, 16]}}}
    )
    assert [v.name for v in load_table(path).variants] == ["generic", "wide", "decode_sm90", "tiny"]


def test_without_variant_takes_one_entry_out_and_keeps_the_rest(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(GOOD)
    add_variant(
        path,
        {"name": "tiny", "function": "kernels.softmax:softmax_generic", "domain": {"dims": {"N": [1, 16]}}},
        comment="added by aina evolve: hypothesis h-1",
    )
    added = path.read_text()
    # a middle entry: its comment goes with it, the next entry's stays
    text = without_variant(added, "wide", "toy.yaml")
    assert [v.name for v in parse_table(text, "toy.yaml").variants] == ["generic", "tiny"]
    assert "wide" not in text and "BLOCK_N: 4096" not in text
    assert "  # added by aina evolve: hypothesis h-1\n  - name: tiny\n" in text
    assert text.startswith(GOOD.split("\n\n  - name: wide")[0]) and "# the variant that always remains" in text
    assert text.rstrip().endswith("# trailing notes stay at the end")
    # the last entry, with its comment
    text = without_variant(text, "tiny", "toy.yaml")
    assert [v.name for v in parse_table(text, "toy.yaml").variants] == ["generic"]
    assert "h-1" not in text and "# trailing notes stay at the end" in text
    with pytest.raises(DispatchTableError, match="generic variant: it always remains"):
        without_variant(text, "generic", "toy.yaml")
    with pytest.raises(DispatchTableError, match="no variant named 'wide'"):
        without_variant(text, "wide", "toy.yaml")


def test_add_variant_refuses_a_bad_entry_and_leaves_the_file(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(GOOD)
    with pytest.raises(DispatchTableError, match="already the name"):
        add_variant(
            path, {"name": "wide", "function": "kernels.softmax:softmax_generic", "domain": {"dims": {"N": [1, 2]}}}
        )
    with pytest.raises(DispatchTableError, match="empty range"):
        add_variant(
            path, {"name": "x", "function": "kernels.softmax:softmax_generic", "domain": {"dims": {"N": [9, 2]}}}
        )
    assert path.read_text() == GOOD
    assert not list(tmp_path.glob(".toy.yaml.*"))  # no temporary file left behind


def test_add_variant_to_a_flow_list_is_refused(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text("aina_dispatch: 1\nkernel: toy\nvariants: [{name: generic, function: 'm:f'}]\n")
    with pytest.raises(DispatchTableError, match="block list"):
        add_variant(path, {"name": "x", "function": "m:g", "domain": {"dims": {"N": [1, 2]}}})


# --- the repository's own tables ------------------------------------------------------------

TABLES = sorted((ROOT / "kernels" / "variants").glob("*.yaml"))


def test_every_dispatched_kernel_has_a_table():
    assert {p.stem for p in TABLES} >= {"softmax", "rms_norm", "layer_norm"}


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.stem)
def test_committed_tables_are_valid_and_match_their_specs(path):
    assert validate_table(path, check_imports=True) == []
    table = load_table(path)
    spec = load_spec(ROOT / "specs" / f"{table.kernel}.yaml")
    module = spec.implementation.split(":")[0]
    assert table.generic.function == f"{module}:{table.kernel}_generic"
    for v in table.variants:
        assert set(v.dims) <= set(spec.dims), f"{path}: {v.name} names dims the spec does not have"
        for name, (lo, hi) in v.dims.items():
            assert spec.dims[name].min <= lo and (hi is None or hi <= spec.dims[name].max)
        assert v.dtypes is None or set(v.dtypes) <= set(spec.dtypes)
