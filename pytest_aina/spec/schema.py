"""The spec format as JSON Schema (draft 2020-12): what ``aina spec schema`` prints and
every spec is validated against.

The spec layer states the format; the invariant part comes from the registry
(:mod:`pytest_aina.invariants`), so a new invariant is in the schema without an edit
here. ``pytest_aina/schemas/spec-v1.json`` is the published copy of :func:`text`; a test
keeps the two equal (regenerate with ``aina spec schema > pytest_aina/schemas/spec-v1.json``).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pytest_aina import invariants

SCHEMA_VERSION = 1

DTYPES = ("float32", "float16", "bfloat16")
LAYOUTS = ("contiguous", "sliced", "transposed")
VALUE_KINDS = ("normal", "large", "small", "ties", "negative", "mixed")

_NAME = "^[A-Za-z][A-Za-z0-9_]*$"  # a dim's name
_SIZES = {"type": "object", "minProperties": 1, "additionalProperties": {"type": "integer", "minimum": 1}}


def _invariant() -> dict:
    """A bare name, or a mapping of one name to its parameters."""
    defs = invariants.REGISTRY.values()
    bare = [d.name for d in defs if d.params is None]
    with_params = {d.name: d.params for d in defs if d.params is not None}
    return {"oneOf": [
        {"enum": bare},
        {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
         "properties": with_params},
    ]}


def _defs() -> dict:
    return {
        "import_path": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$",
                        "description": "module:attribute"},
        "dtype": {"enum": list(DTYPES)},
        "layout": {"enum": list(LAYOUTS),
                   "description": "contiguous; sliced: a view into a wider buffer (row stride > row length); "
                                  "transposed: last dim not unit-stride."},
        "values": {"enum": list(VALUE_KINDS)},
        "dim": {
            "type": "object", "required": ["min", "max"], "additionalProperties": False,
            "properties": {"min": {"type": "integer", "minimum": 1}, "max": {"type": "integer", "minimum": 1}},
        },
        "input": {
            "type": "object", "required": ["shape"], "additionalProperties": False,
            "properties": {
                "shape": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": _NAME}},
                "batch_dims": {"type": "boolean",
                               "description": "The first dim may be split into several leading batch dims "
                                              "(e.g. M=12 as [3, 4])."},
                "layouts": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/layout"}},
                "values": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/values"}},
                "dtype": {"$ref": "#/$defs/dtype",
                          "description": "Fixed dtype for this input; by default it takes the case's dtype."},
            },
        },
        "case": {
            "type": "object", "required": ["dims"], "additionalProperties": False,
            "properties": {
                "dims": _SIZES,
                "dtype": {"$ref": "#/$defs/dtype"},
                "layout": {"$ref": "#/$defs/layout"},
                "values": {"$ref": "#/$defs/values"},
                "batch": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1},
                          "description": "Leading batch dims whose product is the first dim."},
                "seed": {"type": "integer", "minimum": 0},
                "note": {"type": "string"},
            },
        },
        "bench_case": {
            "type": "object", "required": ["dims", "dtype"], "additionalProperties": False,
            "properties": {
                "dims": _SIZES,
                "dtype": {"$ref": "#/$defs/dtype"},
                "devices": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": ["cuda", "cpu"]},
                            "description": "Where this case is benchmarked; default [cuda]. cpu means the Triton "
                                           "interpreter, wall clock."},
                "note": {"type": "string"},
            },
        },
        "invariant": _invariant(),
    }


@cache
def _document() -> str:
    tolerance = {
        "type": "object", "required": ["atol", "rtol"], "additionalProperties": False,
        "properties": {"atol": {"type": "number", "minimum": 0}, "rtol": {"type": "number", "minimum": 0}},
    }
    doc: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://pytest-aina.dev/schemas/spec-v{SCHEMA_VERSION}.json",
        "title": f"pytest-aina kernel spec, version {SCHEMA_VERSION}",
        "description": "The boundaries of one kernel: what correct means, over which inputs, and what better means.",
        "type": "object",
        "required": ["aina", "name", "implementation", "reference", "inputs", "dims", "dtypes", "tolerance"],
        "additionalProperties": False,
        "properties": {
            "aina": {"const": SCHEMA_VERSION, "description": "Spec format version."},
            "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$",
                     "description": "Kernel name, snake_case; matches the file stem by convention."},
            "description": {"type": "string"},
            "implementation": {"$ref": "#/$defs/import_path"},
            "reference": {"$ref": "#/$defs/import_path"},
            "inputs": {
                "type": "object", "minProperties": 1, "description": "Tensor arguments, in call order.",
                "additionalProperties": {"$ref": "#/$defs/input"},
                "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
            },
            "args": {
                "type": "object",
                "description": "Non-tensor keyword arguments passed to implementation and reference alike.",
                "additionalProperties": {"type": ["number", "integer", "boolean", "string"]},
            },
            "dims": {
                "type": "object", "minProperties": 1, "description": "The domain of each named dim, inclusive.",
                "additionalProperties": {"$ref": "#/$defs/dim"},
                "propertyNames": {"pattern": _NAME},
            },
            "dtypes": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/dtype"}},
            "tolerance": {
                "type": "object",
                "description": "Per-dtype closeness to the reference: |out - ref| <= atol + rtol * |ref|.",
                "additionalProperties": False,
                "patternProperties": {f"^({'|'.join(DTYPES)})$": tolerance},
            },
            "invariants": {"type": "array", "items": {"$ref": "#/$defs/invariant"}},
            "examples": {"type": "array", "items": {"$ref": "#/$defs/case"},
                         "description": "Pinned cases: always checked against the reference."},
            "benchmarks": {"type": "array", "items": {"$ref": "#/$defs/bench_case"}},
            "objectives": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "latency": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"direction": {"enum": ["minimize"]},
                                       "weight": {"type": "number", "exclusiveMinimum": 0}},
                    },
                    "bytes": {"type": "string",
                              "description": "Bytes moved per call: an arithmetic expression over dims, 'elem' "
                                             "(bytes per element) and x.numel() / x.element_size() for each input."},
                    "flops": {"type": "string",
                              "description": "Floating-point operations per call, same expression language as bytes."},
                },
            },
        },
        "$defs": _defs(),
    }
    return _dumps(doc) + "\n"


def text() -> str:
    """The schema as published: JSON, compact where a value fits on one line."""
    return _document()


def schema() -> dict:
    """The schema as a fresh dict (a caller may change its copy)."""
    return json.loads(_document())


def _dumps(value: Any, indent: int = 0, used: int = 0, width: int = 120) -> str:
    # One line where it fits, one entry per line where it does not: the file stays readable
    # and a change to it shows as a small diff.
    flat = json.dumps(value)
    if used + len(flat) < width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            head = f"{pad}{json.dumps(k)}: "
            items.append(head + _dumps(v, indent + 2, len(head), width))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _dumps(v, indent + 2, len(pad), width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
