"""The spec model: what a valid spec becomes, the bytes/FLOPs model, case strings."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from spec_samples import VALID, variant

from pytest_aina.spec.model import (
    DTYPES,
    LAYOUTS,
    VALUE_KINDS,
    Case,
    Invariant,
    discover,
    evaluate,
    load_spec,
    parse_spec,
)
from pytest_aina.spec.reader import SpecError


def test_valid_spec_becomes_a_typed_spec():
    s = parse_spec(VALID, "softmax.yaml")
    assert (s.name, s.implementation, s.reference) == (
        "softmax",
        "kernels.softmax:softmax",
        "kernels.softmax:softmax_reference",
    )
    (x,) = s.inputs
    assert (x.name, x.shape, x.batch_dims, x.layouts, x.values) == (
        "x",
        ("M", "N"),
        True,
        ("contiguous", "sliced", "transposed"),
        VALUE_KINDS,
    )
    assert {n: (d.min, d.max) for n, d in s.dims.items()} == {"M": (1, 65536), "N": (1, 131072)}
    assert s.dtypes == ("float32", "float16", "bfloat16")
    assert (s.tolerance["float32"].atol, s.tolerance["float32"].rtol) == (1e-6, 1e-5)  # 1e-6 is a float
    assert [(i.key, i.line) for i in s.invariants] == [
        ("close_to_reference", 17),
        ("sums_to(dim=-1)", 18),
        ("bounded", 19),
        ("non_negative", 20),
        ("no_input_mutation", 21),
    ]
    # an example without dtype stands for every dtype of the spec
    assert [(c.label(), c.line) for c in s.examples] == [
        ("M=4096,N=50304,float16", 23),
        ("M=3,N=1000,float32", 24),
        ("M=3,N=1000,float16", 24),
        ("M=3,N=1000,bfloat16", 24),
    ]
    (b,) = s.benchmarks
    assert (b.label(), b.devices, b.line) == ("M=4096,N=50304,float16", ("cuda",), 26)
    assert s.line_of("tolerance", "float16", "atol") == 14
    assert s.line_of("tolerance", "float64") == 12  # missing key: the mapping that should hold it


def test_defaults_for_an_input():
    s = parse_spec(
        variant(
            "x: {shape: [M, N], batch_dims: true, layouts: [contiguous, sliced, transposed]}", "x: {shape: [M, N]}"
        ).replace("{dims: {M: 3, N: 1000}}", "{dims: {M: 3, N: 10}}"),
        "f",
    )
    (x,) = s.inputs
    assert (x.batch_dims, x.layouts, x.values, x.dtype) == (False, ("contiguous",), VALUE_KINDS, None)


def test_bytes_and_flops_models():
    s = parse_spec(
        variant(
            'bytes: "2 * x.numel() * x.element_size()"',
            'bytes: "2 * x.numel() * x.element_size()"\n  flops: "5 * M * N - N // 2"',
        ),
        "f",
    )
    assert s.bytes_for({"M": 3, "N": 1000}, "float16") == 2 * 3000 * 2
    assert s.bytes_for({"M": 3, "N": 1000}, "float32") == 2 * 3000 * 4
    assert s.flops_for({"M": 3, "N": 1000}, "float32") == 15000 - 500
    bare = parse_spec(variant('  bytes: "2 * x.numel() * x.element_size()"\n', ""), "f")
    assert bare.bytes_for({"M": 1, "N": 1}, "float32") is None


@pytest.mark.parametrize(
    "expr,names,error",
    [
        ("open('x')", {}, "not allowed in a model expression"),
        ("M.__class__", {"M": 1}, "not allowed"),
        ("x.numel()", {}, "'x' is not an input"),
        ("Q * 2", {"M": 1}, "unknown name 'Q'; known: M"),
        ("[1][0]", {}, "not allowed"),
    ],
)
def test_model_expression_is_data_not_code(expr, names, error):
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        evaluate(expr, names)


def test_model_that_overflows_is_a_spec_error():
    text = variant('"2 * x.numel() * x.element_size()"', '"2.0 ** 100000"')
    with pytest.raises(SpecError, match=r"f:29: objectives.bytes: cannot evaluate model"):
        parse_spec(text, "f")


def test_all_issues_at_once():
    text = variant("x: {shape: [M, N],", "x: {shape: [M, K],").replace("  bfloat16: {atol: 1e-2, rtol: 1e-2}\n", "")
    with pytest.raises(SpecError) as info:
        parse_spec(text, "f")
    assert sorted(f"{i.line}:{'.'.join(map(str, i.path))}" for i in info.value.issues) == [
        "10:dims.N",
        "12:tolerance",
        "7:inputs.x.shape.1",
    ]


def test_duplicate_keys_are_reported_at_any_depth():
    text = variant("float16: {atol: 1e-3, rtol: 1e-3}", "float16: {atol: 1e-3, rtol: 1e-3, atol: 1}")
    with pytest.raises(SpecError, match=r"f:14: tolerance.float16.atol: duplicate key 'atol' \(first at line 14\)"):
        parse_spec(text, "f")


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(SpecError, match=r"nope.yaml: <top>: cannot read: No such file or directory"):
        load_spec(tmp_path / "nope.yaml")


def test_discover_finds_yaml_and_yml_sorted(tmp_path):
    for name in ("b.yaml", "a/c.yml", "a/readme.md", "z.yaml.bak"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path])] == ["a/c.yml", "b.yaml"]
    assert discover([tmp_path / "b.yaml"]) == [tmp_path / "b.yaml"]


def test_invariant_keys_identify_checks_across_versions():
    assert Invariant("sums_to", {"value": 1}).key == "sums_to(dim=-1)"
    assert Invariant("mean_zero", {"dim": 0}).key == "mean_zero(dim=0)"
    assert Invariant("python", {"check": "m:f"}).key == "python:m:f"
    assert Invariant("python", {"check": "m:f", "name": "rows"}).label == "rows"


cases = st.builds(
    Case,
    dims=st.lists(
        st.tuples(st.sampled_from(["M", "N", "K"]), st.integers(1, 10**6)),
        min_size=1,
        max_size=3,
        unique_by=lambda d: d[0],
    ).map(tuple),
    dtype=st.sampled_from(DTYPES),
    layout=st.sampled_from(LAYOUTS),
    values=st.sampled_from(VALUE_KINDS),
    batch=st.none() | st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple),
    seed=st.integers(0, 2**32),
)


@given(cases)
def test_case_argument_round_trips(case):
    assert Case.from_arg(case.to_arg()) == case


@pytest.mark.parametrize(
    "text,error",
    [
        ("M=3", "needs dtype"),
        ("M=3,dtype=float64", "dtype 'float64'"),
        ("M", "is not key=value"),
        ("M=3,dtype=float32,layout=diag", "layout 'diag'"),
        ("M=3,dtype=float32,values=huge", "values 'huge'"),
    ],
)
def test_case_argument_errors(text, error):
    with pytest.raises(ValueError, match=error):
        Case.from_arg(text)


def _counting_validator(monkeypatch) -> list:
    from pytest_aina.spec import model

    calls = []
    real = model.validate_schema

    def counted(data, lines, file):
        calls.append(file)
        return real(data, lines, file)

    monkeypatch.setattr(model, "validate_schema", counted)
    return calls


def test_accepted_specs_are_not_validated_again_until_their_text_or_the_schema_changes(tmp_path, monkeypatch):
    from pytest_aina.spec import reader
    from pytest_aina.spec.reader import AcceptedSpecs

    calls = _counting_validator(monkeypatch)
    store = tmp_path / ".pytest_cache" / "d" / "aina" / "schema-accepted"
    parse_spec(VALID, "a.yaml", accepted=AcceptedSpecs(store))
    parse_spec(VALID, "b.yaml", accepted=AcceptedSpecs(store))  # a new session: read from the file
    assert calls == ["a.yaml"] and len(store.read_text().split()) == 1
    edited = variant("max: 65536", "max: 65535")
    parse_spec(edited, "c.yaml", accepted=AcceptedSpecs(store))
    assert calls == ["a.yaml", "c.yaml"]
    # a rejected text is never remembered: its issues are found and reported every time
    bad = variant("layouts: [contiguous, sliced, transposed]", "layouts: [contiguous, diagonal]")
    for _ in range(2):
        with pytest.raises(SpecError, match="inputs.x.layouts"):
            parse_spec(bad, "d.yaml", accepted=AcceptedSpecs(store))
    assert calls == ["a.yaml", "c.yaml", "d.yaml", "d.yaml"]
    # a different schema (e.g. an invariant added) forgets every verdict
    monkeypatch.setattr(reader, "_document", lambda: '{"changed": true}')
    parse_spec(VALID, "e.yaml", accepted=AcceptedSpecs(store))
    assert calls[-1] == "e.yaml"


def test_an_unwritable_acceptance_file_costs_time_not_a_result(tmp_path, monkeypatch):
    from pytest_aina.spec.reader import AcceptedSpecs

    calls = _counting_validator(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    accepted = AcceptedSpecs(blocker / "cache" / "schema-accepted")
    parse_spec(VALID, "a.yaml", accepted=accepted)
    parse_spec(VALID, "a.yaml", accepted=AcceptedSpecs(blocker / "cache" / "schema-accepted"))
    assert calls == ["a.yaml", "a.yaml"]
