"""Checking telemetry: every bad window is named by where it is and what is wrong with it.

Two layers, in order: the published JSON Schema (``schemas/telemetry-v1.json``, checked
with the reference validator, so the file users read and the check we run cannot drift),
then the rules a schema cannot state: ``end`` after ``start``, quantiles in order, the
mean latency (``time_s / calls``) between min and max. NaN and Infinity are not JSON and
are refused when a line is parsed.

Readers never raise on bad data: :func:`read_jsonl` returns the good windows and one
:class:`TelemetryIssue` per bad line, so one bad line costs that line only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from pytest_aina.schema_errors import explain
from pytest_aina.telemetry.window import FORMAT_VERSION, QUANTILES, Window, parse_time

# Float rounding in a producer's sum of latencies must not turn a window into an error.
_MEAN_SLACK = 1e-6


@dataclass(frozen=True)
class TelemetryIssue:
    source: str  # a file name, or "<batch>"
    line: int | None  # 1-based line in a JSONL file; index+1 of the window in a batch
    path: tuple  # key path inside the window: ("latency_s", "p50")
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        key = format_path(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class TelemetryError(ValueError):
    """Telemetry that cannot be used at all (an unreadable file, a batch that is not JSON)."""


def format_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@cache
def schema() -> dict:
    """The published JSON Schema of a telemetry window (batch under ``$defs/batch``)."""
    text = resources.files("pytest_aina").joinpath(f"schemas/telemetry-v{FORMAT_VERSION}.json").read_text()
    return json.loads(text)


@cache
def _validator(definition: str):
    import jsonschema  # lazy: the recorder imports this package in production processes

    root = schema()
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": root["$defs"]})


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes):
    """``json.loads`` that refuses NaN and Infinity (Python's json accepts them)."""
    return json.loads(text, parse_constant=_refuse_constant)


def _explain(error) -> str:
    """A jsonschema error in telemetry terms: times and dim names get their own words."""
    v = error.validator
    if v == "pattern" and error.schema is schema()["$defs"]["time"]:
        return f"{error.instance!r} is not an RFC 3339 time with an offset (e.g. 2025-06-02T10:05:00Z)"
    if v == "propertyNames":
        return f"{error.instance!r}: a dim name must match ^[A-Za-z][A-Za-z0-9_]*$"
    return explain(error)


def window_issues(obj) -> list[tuple[tuple, str]]:
    """(key path, message) for each way ``obj`` is not a valid window; [] when it is."""
    if not isinstance(obj, dict):
        return [((), f"expected a JSON object (a window), got {type(obj).__name__}")]
    if _fast_schema_ok(obj):
        return _semantic_issues(obj)
    errors = sorted(_validator("window").iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        out = []
        for e in errors:
            path = tuple(e.absolute_path)
            if e.validator == "additionalProperties":
                extra = [k for k in e.instance if k not in e.schema.get("properties", {})]
                path = path + (extra[0],) if extra else path
            out.append((path, _explain(e)))
        return out
    return _semantic_issues(obj)


# ---------------------------------------------------------------------------------------
# The fast path. jsonschema takes ~170 us a window, which would make ingesting a day of a
# fleet's telemetry take minutes; this hand check takes a few us. It is *sound*: it accepts
# only what the schema accepts (it may refuse more, e.g. 1.0 for an integer, and then the
# schema decides), so the schema stays the authority; tests/telemetry check the two agree.


def _schema_facts():
    w = schema()["$defs"]["window"]
    props = w["properties"]
    return (
        frozenset(w["required"]),
        frozenset(props),
        re.compile(props["kernel"]["pattern"]),
        re.compile(props["variant"]["pattern"]),
        re.compile(props["dtype"]["pattern"]),
        re.compile(props["dims"]["propertyNames"]["pattern"]),
        re.compile(props["device"]["properties"]["arch"]["pattern"]),
        re.compile(schema()["$defs"]["time"]["pattern"]),
        frozenset(props["timing"]["enum"]),
    )


_FACTS = None
_LAT_KEYS = frozenset(QUANTILES)
_DEVICE_KEYS = frozenset(("name", "arch"))


def _num(x) -> bool:
    t = type(x)
    return (t is float or t is int) and x >= 0


def _str(x, lo: int, hi: int) -> bool:
    return type(x) is str and lo <= len(x) <= hi


def _fast_schema_ok(w: dict) -> bool:
    global _FACTS
    if _FACTS is None:
        _FACTS = _schema_facts()
    required, allowed, kernel_re, variant_re, dtype_re, dim_re, arch_re, time_re, timings = _FACTS
    keys = w.keys()
    if not (required <= keys and keys <= allowed):
        return False
    v = w["aina_telemetry"]
    if type(v) is not int or v != FORMAT_VERSION:
        return False
    for k in ("start", "end"):
        if type(w[k]) is not str or not time_re.search(w[k]):
            return False
    if not _str(w["service"], 1, 200) or not (type(w["kernel"]) is str and kernel_re.search(w["kernel"])):
        return False
    if not (type(w["variant"]) is str and variant_re.search(w["variant"])):
        return False
    if not (type(w["dtype"]) is str and dtype_re.search(w["dtype"])):
        return False
    dims = w["dims"]
    if type(dims) is not dict or not 1 <= len(dims) <= 16:
        return False
    for name, n in dims.items():
        if not dim_re.search(name) or type(n) is not int or n < 0:
            return False
    dev = w["device"]
    if type(dev) is not dict or dev.keys() != _DEVICE_KEYS or not _str(dev["name"], 1, 200):
        return False
    if not (type(dev["arch"]) is str and arch_re.search(dev["arch"])):
        return False
    calls = w["calls"]
    if type(calls) is not int or calls < 1 or not _num(w["time_s"]):
        return False
    lat = w["latency_s"]
    if type(lat) is not dict or lat.keys() != _LAT_KEYS or not all(_num(x) for x in lat.values()):
        return False
    if "timing" in w and (type(w["timing"]) is not str or w["timing"] not in timings):
        return False
    if "instance" in w and not _str(w["instance"], 0, 200):
        return False
    if "versions" in w:
        ver = w["versions"]
        if type(ver) is not dict or len(ver) > 32 or not all(_str(x, 0, 200) for x in ver.values()):
            return False
    return True


def _semantic_issues(w: dict) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    times = {}
    for key in ("start", "end"):
        try:
            times[key] = parse_time(w[key])
        except ValueError as exc:
            out.append(((key,), f"not a valid time: {exc}"))
    if len(times) == 2 and times["end"] <= times["start"]:
        out.append((("end",), f"{w['end']} is not after start {w['start']}"))
    lat = w["latency_s"]
    for lo, hi in zip(QUANTILES, QUANTILES[1:]):
        if lat[lo] > lat[hi]:
            out.append((("latency_s", hi), f"{hi} {lat[hi]!r} is below {lo} {lat[lo]!r}; quantiles must not decrease"))
    mean = w["time_s"] / w["calls"]
    if not lat["min"] * (1 - _MEAN_SLACK) <= mean <= lat["max"] * (1 + _MEAN_SLACK):
        out.append(
            (
                ("time_s",),
                f"mean latency time_s/calls = {mean:.6g} s lies outside "
                f"[min, max] = [{lat['min']:.6g}, {lat['max']:.6g}] s",
            )
        )
    return out


def read_jsonl(lines: Iterable[str], source: str) -> Iterator[Window | TelemetryIssue]:
    """Windows and issues, in file order, from the lines of a JSONL file. Blank lines are skipped."""
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = parse_json(text)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            yield TelemetryIssue(source, n, (), f"not JSON: {exc}")
            continue
        problems = window_issues(obj)
        if problems:
            for path, msg in problems:
                yield TelemetryIssue(source, n, path, msg)
            continue
        yield Window.from_dict(obj, ref=f"{source}:{n}")


def read_file(path: str | Path) -> tuple[list[Window], list[TelemetryIssue]]:
    """All good windows of a JSONL file and an issue for each bad line."""
    path = Path(path)
    try:
        fh = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TelemetryError(f"{path}: cannot read: {exc.strerror}") from None
    windows: list[Window] = []
    issues: list[TelemetryIssue] = []
    with fh:
        for item in read_jsonl(fh, str(path)):
            (windows if isinstance(item, Window) else issues).append(item)
    return windows, issues


def read_batch(body: bytes, source: str = "<batch>") -> tuple[list[Window], list[TelemetryIssue]]:
    """The windows of an HTTP batch body; an issue per bad window (its 1-based index as line).

    Raises :class:`TelemetryError` when the body as a whole is unusable (not JSON, not a
    batch), since then there is nothing to keep.
    """
    try:
        doc = parse_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TelemetryError(f"{source}: body is not JSON: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("aina_telemetry") != FORMAT_VERSION
        or not isinstance(doc.get("windows"), list)
    ):
        raise TelemetryError(f'{source}: expected {{"aina_telemetry": {FORMAT_VERSION}, "windows": [...]}}')
    extra = sorted(set(doc) - {"aina_telemetry", "batch_id", "windows"})
    if extra:
        raise TelemetryError(
            f"{source}: unknown key(s) {', '.join(map(repr, extra))}; expected aina_telemetry, batch_id, windows"
        )
    windows: list[Window] = []
    issues: list[TelemetryIssue] = []
    for i, obj in enumerate(doc["windows"], 1):
        problems = window_issues(obj)
        if problems:
            issues += [TelemetryIssue(source, i, ("windows", i - 1) + p, m) for p, m in problems]
        else:
            windows.append(Window.from_dict(obj, ref=f"{source}#{i}"))
    return windows, issues
