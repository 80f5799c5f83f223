"""Checking windows: every error names the line and the key; the fast path never accepts
what the published schema refuses."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_aina.telemetry import validate, wire
from pytest_aina.telemetry.validate import TelemetryError, read_batch, read_file, window_issues
from pytest_aina.telemetry.window import Window

GOOD = {
    "aina_telemetry": 1,
    "start": "2025-06-02T10:05:00Z",
    "end": "2025-06-02T10:10:00Z",
    "service": "chat-decode",
    "instance": "node-1/42",
    "kernel": "rms_norm",
    "variant": "generic",
    "dims": {"M": 64, "N": 4096},
    "dtype": "bfloat16",
    "device": {"name": "NVIDIA H100 80GB HBM3", "arch": "sm_90"},
    "calls": 1000,
    "time_s": 0.0045,
    "latency_s": {"min": 4.1e-06, "p50": 4.4e-06, "p90": 4.9e-06, "p99": 6.2e-06, "max": 2.1e-05},
    "timing": "cuda_event",
    "versions": {"aina": "0.1.0"},
}


def variant(**changes):
    w = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = w
        for p in parents:
            target = target[p]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return json.dumps(w)


DELETE = object()


def test_a_good_window_round_trips():
    assert window_issues(GOOD) == []
    w = Window.from_dict(GOOD)
    assert w.as_dict() == GOOD
    assert w.mean_s == pytest.approx(4.5e-6) and w.duration_s == 300


BAD_LINES = [
    # (line text, expected key path, words the message must contain)
    ('{"aina_telemetry": 1, "start": ', "", "not JSON"),
    (variant(calls=DELETE), "", "missing required key 'calls'"),
    (variant(dims__M="64"), "dims.M", "expected integer"),
    (variant(latency_s__p90=1e-6), "latency_s.p90", "must not decrease"),
    (variant(end="2025-06-02T10:00:00Z"), "end", "not after start"),
    (variant(start="2025-06-02 10:05"), "start", "RFC 3339"),
    (variant(colour="red"), "colour", "unknown key 'colour'"),
    (variant(time_s=5.0), "time_s", "outside [min, max]"),
    (variant(calls=0), "calls", "below the minimum 1"),
    (variant(device__arch="SM 90"), "device.arch", "does not match"),
    (variant(aina_telemetry=2), "aina_telemetry", "expected 1"),
    (variant(timing="cpu_clock"), "timing", "expected one of: wall, cuda_event"),
    (json.dumps(GOOD).replace("0.0045", "NaN"), "", "NaN is not a JSON number"),
    ("[1, 2]", "", "expected a JSON object"),
    (variant(dims={"M": -1, "N": 2}), "dims.M", "below the minimum 0"),
]


def test_every_bad_line_is_named_by_line_and_key(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(GOOD)] + [text for text, _, _ in BAD_LINES] + ["", json.dumps(GOOD)]
    path.write_text("\n".join(lines) + "\n")
    windows, issues = read_file(path)
    assert len(windows) == 2 and [w.ref for w in windows] == [f"{path}:1", f"{path}:{len(lines)}"]
    by_line = {}
    for issue in issues:
        by_line.setdefault(issue.line, []).append(issue)
    for n, (_, key, words) in enumerate(BAD_LINES, start=2):
        assert n in by_line, f"line {n} ({words}) not reported"
        texts = [str(i) for i in by_line[n]]
        assert any(words in t for t in texts), texts
        if key:
            assert any(t.startswith(f"{path}:{n}: {key}: ") for t in texts), texts
    assert set(by_line) == set(range(2, 2 + len(BAD_LINES)))


def test_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(TelemetryError, match="cannot read"):
        read_file(tmp_path / "missing.jsonl")


def test_batches(tmp_path):
    w = Window.from_dict(GOOD)
    body = wire.encode_batch([w, w], batch_id="ab" * 16)
    doc = json.loads(body)
    assert doc["aina_telemetry"] == 1 and doc["batch_id"] == "ab" * 16 and len(doc["windows"]) == 2
    windows, issues = read_batch(body)
    assert windows == [w, w] and issues == []

    doc["windows"][1]["calls"] = -3
    windows, issues = read_batch(json.dumps(doc).encode())
    assert len(windows) == 1 and issues[0].line == 2 and issues[0].path == ("windows", 1, "calls")
    with pytest.raises(TelemetryError, match="not JSON"):
        read_batch(b"\xff\xfe")
    with pytest.raises(TelemetryError, match="expected"):
        read_batch(b'{"windows": []}')


def test_published_schema_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(validate.schema())
    assert jsonschema.Draft202012Validator(validate.schema()).is_valid(GOOD)


# --- the fast path agrees with the schema -------------------------------------------------


def _schema_validator():
    import jsonschema

    return jsonschema.Draft202012Validator(validate.schema())


def _mutations():
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 5),
        st.floats(-1, 1e9, allow_nan=False),
        st.text(max_size=5),
        st.just(1.0),
        st.just([]),
        st.just({}),
    )

    @st.composite
    def mutate(draw):
        w = copy.deepcopy(GOOD)
        for _ in range(draw(st.integers(1, 3))):
            # pick a container and a key in it
            paths = [(w, k) for k in w] + [
                (w[c], k)
                for c in ("dims", "device", "latency_s", "versions")
                if isinstance(w.get(c), dict)
                for k in w[c]
            ]
            target, key = draw(st.sampled_from(paths)) if paths else (w, "calls")
            op = draw(st.sampled_from(["delete", "replace", "add"]))
            if op == "delete":
                target.pop(key, None)
            elif op == "replace":
                target[key] = draw(leaf)
            else:
                target[draw(st.text(min_size=1, max_size=4))] = draw(leaf)
        return w

    return mutate()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_fast_path_never_accepts_what_the_schema_refuses(obj):
    if validate._fast_schema_ok(obj):
        assert _schema_validator().is_valid(obj)


@st.composite
def schema_valid_windows(draw):
    """Windows the schema accepts, written out by hand: hypothesis-jsonschema 0.23 cannot
    generate objects with this Hypothesis version."""
    name = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z")
    num = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False))
    ts = st.sampled_from(["2025-06-02T10:05:00Z", "2025-06-02T10:05:00.5+02:00", "2025-06-02T11:00:00.123456Z"])
    integer = lambda lo: st.one_of(st.integers(lo, 10**6), st.integers(lo, 1000).map(float))  # 1.0 is an integer too
    w = {
        "aina_telemetry": 1,
        "start": draw(ts),
        "end": draw(ts),
        "service": draw(st.text(min_size=1, max_size=20)),
        "kernel": draw(name),
        "variant": draw(st.from_regex(r"\A[A-Za-z0-9_.-]{1,10}\Z")),
        "dims": draw(
            st.dictionaries(st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,4}\Z"), integer(0), min_size=1, max_size=4)
        ),
        "dtype": draw(name),
        "device": {"name": draw(st.text(min_size=1, max_size=20)), "arch": draw(name)},
        "calls": draw(integer(1)),
        "time_s": draw(num),
        "latency_s": {q: draw(num) for q in ("min", "p50", "p90", "p99", "max")},
    }
    if draw(st.booleans()):
        w["timing"] = draw(st.sampled_from(["wall", "cuda_event"]))
    if draw(st.booleans()):
        w["instance"] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        w["versions"] = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
    return w


@settings(max_examples=300, deadline=None)
@given(schema_valid_windows())
def test_schema_valid_windows_get_only_semantic_issues(obj):
    assert _schema_validator().is_valid(obj)  # the generator is honest
    # whether the fast path accepts it or falls back to the schema, no *schema* issue is
    # reported for a schema-valid window
    assert window_issues(obj) == validate._semantic_issues(obj)


def test_fast_path_accepts_what_the_recorder_writes():
    # the point of the fast path: real windows never pay for jsonschema
    assert validate._fast_schema_ok(Window.from_dict(GOOD).as_dict())
    assert validate._fast_schema_ok(json.loads(wire.encode_line(Window.from_dict(GOOD))))
