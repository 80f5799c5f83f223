"""Reading spec files: YAML with line numbers, and errors that say where and what.

Every problem found in a spec becomes a :class:`SpecIssue` naming the file, the key path
(``inputs.x.layouts[1]``), the line where YAML put that key, and what was expected. The
schema check uses the published JSON Schema itself, so the file users read and the check
we run cannot drift apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SCHEMA_VERSION = 1
Path_ = tuple  # a key path: ("inputs", "x", "layouts", 1)


@dataclass(frozen=True)
class SpecIssue:
    file: str
    path: tuple
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = format_path(self.path) or "<top>"
        return f"{where}: {key}: {self.message}"


class SpecError(ValueError):
    """A spec that cannot be used; carries every issue found, not only the first."""

    def __init__(self, issues: list[SpecIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def format_path(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-6`` as a float (YAML 1.1 wants ``1.0e-6``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _lines(node: yaml.Node, path: tuple, out: dict) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[path + (k,)] = key.start_mark.line + 1
            _lines(value, path + (k,), out)
            out[path + (k,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out)


def load_yaml(text: str, file: str) -> tuple[Any, dict]:
    """Parse YAML, returning the data and a map from key path to line number."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecIssue(file, (), None, "the file is empty; expected a mapping")])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise SpecError([SpecIssue(file, (), line, f"not valid YAML: {exc.problem}")]) from None
    finally:
        loader.dispose()
    lines: dict = {}
    _lines(node, (), lines)
    return data, lines


@cache
def schema() -> dict:
    """The published JSON Schema of the spec format."""
    text = resources.files("pytest_aina").joinpath(f"schemas/spec-v{SCHEMA_VERSION}.json").read_text()
    return json.loads(text)


def _line_for(lines: dict, path: tuple) -> int | None:
    # The deepest prefix of the path that YAML gave a line to: a missing key is reported
    # at the mapping that should hold it.
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _explain(error) -> str:
    """Turn a jsonschema error into 'what was expected' wording."""
    v = error.validator
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return f"missing required key {missing[0]!r}" if missing else error.message
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {})) or [
            alt for pattern in error.schema.get("patternProperties", {})
            for alt in re.sub(r"[\^$()]", "", pattern).split("|")]
        extra = [k for k in error.instance if k not in allowed]
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {', '.join(map(repr, extra)) or ''}{hint}"
    if v == "enum":
        return f"{error.instance!r} is not allowed; expected one of: {', '.join(map(str, error.validator_value))}"
    if v == "const":
        return f"expected {error.validator_value!r}, got {error.instance!r}"
    if v == "type":
        return f"expected {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
    if v == "pattern":
        if error.validator_value.endswith(":[A-Za-z_][A-Za-z0-9_.]*$"):
            return f"{error.instance!r} is not an import path; expected 'module:attribute'"
        return f"{error.instance!r} does not match {error.validator_value}"
    if v == "oneOf":
        return (f"{error.instance!r} is not a known invariant; expected a name "
                "(close_to_reference, non_negative, finite, shape_preserved, dtype_preserved, "
                "no_input_mutation, deterministic) or a mapping with one of sums_to, bounded, "
                "mean_zero, python")
    return error.message


def validate_schema(data: Any, lines: dict, file: str) -> list[SpecIssue]:
    import jsonschema  # lazy: only specs being loaded pay for it

    validator = jsonschema.Draft202012Validator(schema())
    issues = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = re.findall(r"'([^']+)'", error.message)
            if extra and path + (extra[0],) in lines:
                path = path + (extra[0],)
        issues.append(SpecIssue(file, path, _line_for(lines, path), _explain(error)))
    return issues
