"""`aina spec check` and `aina spec schema`: every class of error names file, key path, line."""

import json
import subprocess
import sys
from importlib import resources

import jsonschema
import pytest
from spec_samples import VALID, variant

from pytest_aina.cli import main
from pytest_aina.spec.schema import schema, text

# (id, spec text, line, key path, what the message must say). Lines refer to VALID as
# written in conftest.py.
ERRORS = [
    (
        "unknown-top-key",
        VALID + "colour: red\n",
        30,
        "colour",
        "unknown key 'colour'; expected one of: aina, args, benchmarks",
    ),
    (
        "unknown-nested-key",
        variant("x: {shape: [M, N],", "x: {shape: [M, N], strides: [1],"),
        7,
        "inputs.x.strides",
        "unknown key 'strides'; expected one of: batch_dims, dtype, dtypes, layouts, range, relations, scale, sentinel, shape, values",
    ),
    (
        "wrong-type-number",
        variant("float16: {atol: 1e-3", "float16: {atol: lots"),
        14,
        "tolerance.float16.atol",
        "expected number, got str 'lots'",
    ),
    ("wrong-type-integer", variant("M: {min: 1,", "M: {min: one,"), 9, "dims.M.min", "expected integer, got str 'one'"),
    (
        "wrong-type-array",
        variant("dtypes: [float32, float16, bfloat16]", "dtypes: float32"),
        11,
        "dtypes",
        "expected array, got str 'float32'",
    ),
    ("missing-top-key", variant("name: softmax\n", ""), 1, "<top>", "missing required key 'name'"),
    (
        "missing-nested-key",
        variant("float16: {atol: 1e-3, rtol: 1e-3}", "float16: {atol: 1e-3}"),
        14,
        "tolerance.float16",
        "missing required key 'rtol'",
    ),
    (
        "bad-enum-dtype",
        variant("dtypes: [float32, float16, bfloat16]", "dtypes: [float32, float64]"),
        11,
        "dtypes[1]",
        "'float64' is not allowed; expected one of: float32, float16, bfloat16",
    ),
    (
        "bad-enum-layout",
        variant("layouts: [contiguous, sliced, transposed]", "layouts: [contiguous, diagonal]"),
        7,
        "inputs.x.layouts[1]",
        "'diagonal' is not allowed; expected one of: contiguous, sliced, transposed",
    ),
    (
        "bad-enum-values",
        variant("{dims: {M: 3, N: 1000}}", "{dims: {M: 3, N: 1000}, values: huge}"),
        24,
        "examples[1].values",
        "'huge' is not allowed; expected one of: normal, large",
    ),
    ("bad-format-version", variant("aina: 1", "aina: 2"), 1, "aina", "expected 1, got 2"),
    (
        "unknown-invariant",
        variant("  - non_negative\n", "  - non_negativ\n"),
        20,
        "invariants[3]",
        "'non_negativ' is not a known invariant (did you mean 'non_negative'?); expected a name (close_to_reference",
    ),
    (
        "unknown-invariant-mapping",
        variant("  - non_negative\n", "  - sum_to: {value: 1}\n"),
        20,
        "invariants[3]",
        "is not a known invariant (did you mean 'sums_to'?)",
    ),
    (
        "invariant-unknown-parameter",
        variant("{value: 1, dim: -1, atol: 1e-3}", "{value: 1, dim: -1, tol: 1e-3}"),
        18,
        "invariants[1].sums_to.tol",
        "unknown key 'tol'; expected one of: atol, dim, value",
    ),
    (
        "invariant-wrong-type",
        variant("bounded: {min: 0, max: 1}", "bounded: 5"),
        19,
        "invariants[2].bounded",
        "expected object, got int 5",
    ),
    (
        "bad-import-implementation",
        variant("kernels.softmax:softmax\n", "kernels.softmax.softmax\n"),
        4,
        "implementation",
        "'kernels.softmax.softmax' is not an import path; expected 'module:attribute'",
    ),
    (
        "bad-import-reference",
        variant("kernels.softmax:softmax_reference", "kernels softmax"),
        5,
        "reference",
        "is not an import path; expected 'module:attribute'",
    ),
    (
        "undeclared-dim",
        variant("x: {shape: [M, N],", "x: {shape: [M, K],"),
        7,
        "inputs.x.shape[1]",
        "dim 'K' is not declared under dims (declared: M, N)",
    ),
    (
        "unused-dim",
        variant("x: {shape: [M, N],", "x: {shape: [M],"),
        10,
        "dims.N",
        "dim is not used by any input shape",
    ),
    (
        "min-above-max",
        variant("M: {min: 1, max: 65536}", "M: {min: 9, max: 2}"),
        9,
        "dims.M",
        "min 9 is greater than max 2",
    ),
    (
        "example-outside-domain",
        variant("{dims: {M: 3, N: 1000}}", "{dims: {M: 3, N: 200000}}"),
        24,
        "examples[1].dims.N",
        "200000 is outside the domain [1, 131072]",
    ),
    (
        "example-missing-dim",
        variant("{dims: {M: 3, N: 1000}}", "{dims: {M: 3}}"),
        24,
        "examples[1].dims",
        "missing dim 'N'",
    ),
    (
        "example-unknown-dim",
        variant("{dims: {M: 3, N: 1000}}", "{dims: {M: 3, N: 1000, K: 2}}"),
        24,
        "examples[1].dims.K",
        "unknown dim 'K'",
    ),
    (
        "example-dtype-not-in-spec",
        variant("dtypes: [float32, float16, bfloat16]", "dtypes: [float32, bfloat16]"),
        23,
        "examples[0].dtype",
        "float16 is not one of the spec's dtypes",
    ),
    (
        "benchmark-outside-domain",
        variant(
            "  - {dims: {M: 4096, N: 50304}, dtype: float16}\nobjectives",
            "  - {dims: {M: 4096, N: 150304}, dtype: float16}\nobjectives",
        ),
        26,
        "benchmarks[0].dims.N",
        "150304 is outside the domain [1, 131072]",
    ),
    (
        "missing-tolerance-for-dtype",
        variant("  bfloat16: {atol: 1e-2, rtol: 1e-2}\n", ""),
        12,
        "tolerance",
        "no tolerance for dtype bfloat16; add tolerance.bfloat16: {atol: ..., rtol: ...}",
    ),
    (
        "unparsable-bytes-model",
        variant('"2 * x.numel() * x.element_size()"', '"2 * x.numel("'),
        29,
        "objectives.bytes",
        "cannot evaluate model '2 * x.numel(': '(' was never closed",
    ),
    (
        "bytes-model-unknown-name",
        variant('"2 * x.numel() * x.element_size()"', '"2 * K * elem"'),
        29,
        "objectives.bytes",
        "unknown name 'K'; known: M, N, elem, x",
    ),
    (
        "bytes-model-code",
        variant('"2 * x.numel() * x.element_size()"', "\"__import__('os').getcwd()\""),
        29,
        "objectives.bytes",
        "not allowed in a model expression",
    ),
    (
        "invalid-yaml",
        variant("dtypes: [float32, float16, bfloat16]", "dtypes: [float32, float16"),
        12,
        "<top>",
        "not valid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence at line 11)",
    ),
    (
        "invalid-yaml-indent",
        variant("name: softmax", "name: softmax\n  bad: x: y"),
        3,
        "<top>",
        "not valid YAML: mapping values are not allowed here",
    ),
    ("duplicate-key", VALID + "name: other\n", 30, "name", "duplicate key 'name' (first at line 2)"),
    ("not-a-mapping-list", "- a\n- b\n", 1, "<top>", "expected a mapping at the top, got list"),
    ("not-a-mapping-scalar", "softmax\n", 1, "<top>", "expected a mapping at the top, got str"),
]


@pytest.mark.parametrize("text,line,key,expected", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_each_error_names_file_line_key_and_expectation(write_spec, capsys, text, line, key, expected):
    path = write_spec(text)
    code = main(["spec", "check", str(path)])
    out = capsys.readouterr().out
    assert code == 1, out
    wanted = f"{path}:{line}: {key}: "
    hits = [ln for ln in out.splitlines() if ln.startswith(wanted)]
    assert hits, f"no line starting {wanted!r} in:\n{out}"
    assert any(expected in ln for ln in hits), f"{expected!r} not in {hits}"
    assert out.splitlines()[-1] == "1 spec checked: 0 valid, 1 invalid (%d error%s)" % (
        len(out.splitlines()) - 1,
        "" if len(out.splitlines()) == 2 else "s",
    )


@pytest.mark.parametrize("text", ["", "# only a comment\n"], ids=["empty", "comment-only"])
def test_empty_file_is_named(write_spec, capsys, text):
    path = write_spec(text)
    assert main(["spec", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: <top>: the file is empty; expected a mapping" in out


def test_valid_spec_passes_with_summary(write_spec, capsys):
    path = write_spec(VALID)
    assert main(["spec", "check", str(path)]) == 0
    assert capsys.readouterr().out == "1 spec checked: 1 valid\n"


def test_default_path_is_specs_folder_and_finds_yml(write_spec, tmp_path, monkeypatch, capsys):
    write_spec(VALID)
    write_spec(variant("name: softmax", "name: rms_norm"), name="nested/rms_norm.yml")
    write_spec(VALID, name="ignored.txt")
    monkeypatch.chdir(tmp_path)
    assert main(["spec", "check"]) == 0
    assert capsys.readouterr().out == "2 specs checked: 2 valid\n"


def test_every_error_of_every_file_is_reported(write_spec, capsys):
    a = write_spec(variant("aina: 1", "aina: 2"), name="a.yaml")
    b = write_spec(
        variant("dtypes: [float32, float16, bfloat16]", "dtypes: [float32, float64]").replace(
            "x: {shape: [M, N],", "x: {shape: [M, N], strides: 1,"
        ),
        name="b.yaml",
    )
    write_spec(variant("name: softmax", "name: ok"), name="c.yaml")
    assert main(["spec", "check", str(a.parent)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "3 specs checked: 1 valid, 2 invalid (3 errors)"
    assert sorted(ln.split(": ")[0] for ln in out[:-1]) == [f"{a}:1", f"{b}:11", f"{b}:7"]


def test_two_specs_with_one_name_are_an_error(write_spec, capsys):
    write_spec(VALID, name="a.yaml")
    b = write_spec(VALID, name="b.yaml")
    assert main(["spec", "check", str(b.parent)]) == 1
    out = capsys.readouterr().out
    assert f"{b}:2: name: 'softmax' is also the name of {b.parent / 'a.yaml'}" in out


def test_json_output(write_spec, capsys):
    good = write_spec(VALID, name="good.yaml")
    bad = write_spec(variant("float16: {atol: 1e-3", "float16: {atol: lots"), name="bad.yaml")
    assert main(["spec", "check", "--json", str(good.parent)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["checked"], doc["valid"], doc["invalid"], doc["errors"]) == (2, 1, 1, 1)
    by_file = {f["file"]: f for f in doc["files"]}
    assert by_file[str(good)] == {"file": str(good), "name": "softmax", "valid": True, "issues": []}
    (issue,) = by_file[str(bad)]["issues"]
    assert issue["line"] == 14 and issue["path"] == "tolerance.float16.atol"
    assert issue["text"] == f"{bad}:14: tolerance.float16.atol: expected number, got str 'lots'"


def test_missing_path_and_empty_folder_are_usage_errors(tmp_path, capsys):
    assert main(["spec", "check", str(tmp_path / "nope")]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err
    assert main(["spec", "check", str(tmp_path)]) == 2
    assert "no spec files" in capsys.readouterr().err


def test_schema_prints_the_published_schema(capsys):
    assert main(["spec", "schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schema()
    jsonschema.Draft202012Validator.check_schema(printed)


def test_the_committed_schema_file_is_what_the_registry_generates():
    """pytest_aina/schemas/spec-v1.json is the published copy of `aina spec schema`; after a
    change to the format or to an invariant, regenerate it:
    aina spec schema > pytest_aina/schemas/spec-v1.json"""
    committed = resources.files("pytest_aina").joinpath("schemas/spec-v1.json").read_text()
    assert committed == text(), "regenerate with: aina spec schema > pytest_aina/schemas/spec-v1.json"


def test_console_entry_exit_codes(write_spec, tmp_path):
    """The real process: exit status and stdout as a shell or CI sees them."""
    good = write_spec(VALID, name="good.yaml", folder="ok")
    bad = write_spec("- not a mapping\n", name="bad.yaml", folder="broken")
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "pytest_aina", "spec", "check", *a],  # noqa: E731
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    ok = run(str(good))
    assert (ok.returncode, ok.stdout) == (0, "1 spec checked: 1 valid\n")
    broken = run(str(bad))
    assert broken.returncode == 1
    assert f"{bad}:1: <top>: expected a mapping at the top, got list" in broken.stdout
