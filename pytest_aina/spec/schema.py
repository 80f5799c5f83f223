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
from pytest_aina.spec import relations

SCHEMA_VERSION = 1

DTYPES = ("float32", "float16", "bfloat16")
INT_DTYPES = ("int32", "int64")
#: An input's ``dtypes`` alternative meaning "the case's dtype".
CASE_DTYPE = "case"
SENTINEL_MODES = ("some", "none", "all")
#: Built-in magnitudes a conditioned tolerance can scale with (or a module:function).
MAGNITUDES = ("abs_inputs",)
LAYOUTS = ("contiguous", "sliced", "transposed")
VALUE_KINDS = ("normal", "large", "small", "ties", "negative", "mixed")

_NAME = "^[A-Za-z][A-Za-z0-9_]*$"  # a dim's name
_SIZES = {"type": "object", "minProperties": 1, "additionalProperties": {"type": "integer", "minimum": 1}}


def _invariant() -> dict:
    """A bare name, or a mapping of one name to its parameters."""
    defs = invariants.REGISTRY.values()
    bare = [d.name for d in defs if d.params is None]
    with_params = {d.name: d.params for d in defs if d.params is not None}
    return {
        "oneOf": [
            {"enum": bare},
            {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": with_params,
            },
        ]
    }


def _defs() -> dict:
    return {
        "import_path": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$",
            "description": "module:attribute",
        },
        "dtype": {"enum": list(DTYPES)},
        "layout": {
            "enum": list(LAYOUTS),
            "description": "contiguous; sliced: a view into a wider buffer (row stride > row length); "
            "transposed: last dim not unit-stride.",
        },
        "values": {"enum": list(VALUE_KINDS)},
        "dim": {
            "type": "object",
            "required": ["min", "max"],
            "additionalProperties": False,
            "properties": {"min": {"type": "integer", "minimum": 1}, "max": {"type": "integer", "minimum": 1}},
        },
        "input": {
            "type": "object",
            "required": ["shape"],
            "additionalProperties": False,
            "properties": {
                "shape": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": _NAME}},
                "batch_dims": {
                    "type": "boolean",
                    "description": "The first dim may be split into several leading batch dims (e.g. M=12 as [3, 4]).",
                },
                "layouts": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/layout"}},
                "values": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/values"}},
                "dtype": {
                    "$ref": "#/$defs/input_dtype",
                    "description": "Fixed dtype for this input; by default it takes the case's dtype.",
                },
                "dtypes": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"oneOf": [{"$ref": "#/$defs/input_dtype"}, {"const": CASE_DTYPE}]},
                    "description": "Alternative dtypes for this input, each checked ('case': the "
                    "case's dtype), e.g. [case, float32] for float32 weights.",
                },
                "range": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 2,
                    "items": {"$ref": "#/$defs/bound"},
                    "description": "Integer inputs: values drawn from [lo, hi), each an integer or an "
                    "expression over dims (e.g. [0, V]).",
                },
                "sentinel": {
                    "type": "object",
                    "required": ["value", "frequency"],
                    "additionalProperties": False,
                    "description": "Integer inputs: a special value (e.g. ignore_index) at this frequency; "
                    "cases where no element and where every element is the sentinel are "
                    "generated too.",
                    "properties": {
                        "value": {
                            "oneOf": [
                                {"type": "integer"},
                                {
                                    "type": "object",
                                    "required": ["arg"],
                                    "additionalProperties": False,
                                    "properties": {"arg": {"type": "string"}},
                                },
                            ],
                            "description": "The sentinel, or {arg: NAME}: the case's value of that args entry "
                            "(ignore_index with its alternatives).",
                        },
                        "frequency": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    },
                },
                "scale": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Float inputs: the standard deviation of 'normal' values (default 1), "
                    "e.g. 3 for logits; the other value kinds keep their own magnitudes.",
                },
                "relations": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/relation"},
                    "description": "How this input is drawn from the others, applied in order.",
                },
            },
        },
        "input_dtype": {"enum": list(DTYPES + INT_DTYPES)},
        "bound": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
        "relation": relations.schema(),
        "output": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "shape": {
                    "type": "array",
                    "items": {"type": "string", "pattern": _NAME},
                    "description": "Dims of the output; [] for a scalar.",
                },
                "tolerance": {"$ref": "#/$defs/tolerances"},
                "magnitude": {"$ref": "#/$defs/magnitude"},
                "invariants": {"type": "array", "items": {"$ref": "#/$defs/invariant"}},
                "in_place": {
                    "type": "string",
                    "pattern": "^[a-z_][a-z0-9_]*$",
                    "description": "The implementation writes this output into that input instead of returning it.",
                },
            },
        },
        "gradient": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "tolerance": {"$ref": "#/$defs/tolerances"},
                "magnitude": {"$ref": "#/$defs/magnitude"},
                "invariants": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/invariant"},
                    "description": "Invariants of this gradient alone (e.g. sums_to 0 along the softmax's dim).",
                },
                "in_place": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "when": {
                            "type": "object",
                            "additionalProperties": {"$ref": "#/$defs/arg_value"},
                            "description": "The args values under which it does (default: always).",
                        }
                    },
                    "description": "The implementation writes this gradient into the input itself (the "
                    "gradient written into the logits): the input's view is checked like the gradient, "
                    "and no_input_mutation allows writes there but not into the rest of its buffer.",
                },
            },
        },
        "magnitude": {
            "oneOf": [{"enum": list(MAGNITUDES)}, {"$ref": "#/$defs/import_path"}],
            "description": "What a tolerance's ctol scales with: abs_inputs (the reference on "
            "|inputs|: the sum of the terms' magnitudes) or module:function.",
        },
        "tolerance": {
            "type": "object",
            "required": ["atol", "rtol"],
            "additionalProperties": False,
            "properties": {
                "atol": {"type": "number", "minimum": 0},
                "rtol": {"type": "number", "minimum": 0},
                "ctol": {
                    "oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
                    "description": "Times the magnitude that produced each element: a number, or an "
                    "expression over dims (e.g. 3 * (K + 1) * 2**-24 for a float32 sum over K terms).",
                },
            },
        },
        "tolerances": {
            "type": "object",
            "additionalProperties": False,
            "description": "Per-dtype closeness to the reference: |out - ref| <= atol + rtol * |ref| (+ ctol * magnitude).",
            "patternProperties": {f"^({'|'.join(DTYPES)})$": {"$ref": "#/$defs/tolerance"}},
        },
        "case": {
            "type": "object",
            "required": ["dims"],
            "additionalProperties": False,
            "properties": {
                "dims": _SIZES,
                "dtype": {"$ref": "#/$defs/dtype"},
                "layout": {"$ref": "#/$defs/layout"},
                "values": {"$ref": "#/$defs/values"},
                "batch": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "integer", "minimum": 1},
                    "description": "Leading batch dims whose product is the first dim.",
                },
                "seed": {"type": "integer", "minimum": 0},
                "args": {
                    "type": "object",
                    "description": "One alternative of each args entry that has several.",
                    "additionalProperties": {"$ref": "#/$defs/arg_value"},
                },
                "input_dtypes": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/input_dtype"},
                    "description": "One alternative of each input's dtypes.",
                },
                "sentinels": {
                    "enum": list(SENTINEL_MODES),
                    "description": "some (at the input's frequency, the default), none or all.",
                },
                "note": {"type": "string"},
            },
        },
        "arg_value": {"type": ["number", "integer", "boolean", "string", "null"]},
        "bench_case": {
            "type": "object",
            "required": ["dims", "dtype"],
            "additionalProperties": False,
            "properties": {
                "dims": _SIZES,
                "dtype": {"$ref": "#/$defs/dtype"},
                "devices": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"enum": ["cuda", "cpu"]},
                    "description": "Where this case is benchmarked; default [cuda]. cpu means the Triton "
                    "interpreter, wall clock.",
                },
                "args": {
                    "type": "object",
                    "description": "One alternative of each args entry that has several.",
                    "additionalProperties": {"$ref": "#/$defs/arg_value"},
                },
                "phase": {
                    "enum": ["forward", "backward"],
                    "description": "What is timed: the call (forward, the default), or the spec's "
                    "gradients for one upstream gradient (backward; the forward runs untimed first).",
                },
                "note": {"type": "string"},
            },
        },
        "invariant": _invariant(),
    }


@cache
def _document() -> str:
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
            "name": {
                "type": "string",
                "pattern": "^[a-z][a-z0-9_]*$",
                "description": "Kernel name, snake_case; matches the file stem by convention.",
            },
            "description": {"type": "string"},
            "implementation": {"$ref": "#/$defs/import_path"},
            "reference": {"$ref": "#/$defs/import_path"},
            "inputs": {
                "type": "object",
                "minProperties": 1,
                "description": "Tensor arguments, in call order.",
                "additionalProperties": {"$ref": "#/$defs/input"},
                "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
            },
            "args": {
                "type": "object",
                "description": "Non-tensor keyword arguments passed to implementation and reference alike; "
                "a list is alternatives, each checked (the first is the default).",
                "additionalProperties": {
                    "oneOf": [
                        {"$ref": "#/$defs/arg_value"},
                        {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/arg_value"}},
                    ]
                },
            },
            "dims": {
                "type": "object",
                "minProperties": 1,
                "description": "The domain of each named dim, inclusive.",
                "additionalProperties": {"$ref": "#/$defs/dim"},
                "propertyNames": {"pattern": _NAME},
            },
            "dtypes": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/dtype"}},
            "tolerance": {
                "type": "object",
                "description": "Per-dtype closeness to the reference: |out - ref| <= atol + rtol * |ref|.",
                "additionalProperties": False,
                "patternProperties": {f"^({'|'.join(DTYPES)})$": {"$ref": "#/$defs/tolerance"}},
            },
            "outputs": {
                "type": "object",
                "minProperties": 1,
                "description": "Named outputs, in return order; without it the kernel has one output checked "
                "with tolerance and invariants.",
                "additionalProperties": {"$ref": "#/$defs/output"},
                "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
            },
            "gradients": {
                "type": "object",
                "minProperties": 1,
                "description": "Inputs whose gradients are checked against the reference's autograd.",
                "additionalProperties": {"$ref": "#/$defs/gradient"},
                "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
            },
            "upstream": {
                "type": "object",
                "additionalProperties": False,
                "description": "How the upstream gradient (one per output) is drawn.",
                "properties": {
                    "layouts": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {"$ref": "#/$defs/layout"},
                    },
                    "values": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {"$ref": "#/$defs/values"},
                    },
                },
            },
            "invariants": {"type": "array", "items": {"$ref": "#/$defs/invariant"}},
            "examples": {
                "type": "array",
                "items": {"$ref": "#/$defs/case"},
                "description": "Pinned cases: always checked against the reference.",
            },
            "benchmarks": {"type": "array", "items": {"$ref": "#/$defs/bench_case"}},
            "objectives": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "latency": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "direction": {"enum": ["minimize"]},
                            "weight": {"type": "number", "exclusiveMinimum": 0},
                        },
                    },
                    "bytes": {
                        "type": "string",
                        "description": "Bytes moved per call: an arithmetic expression over dims, 'elem' "
                        "(bytes per element) and x.numel() / x.element_size() for each input.",
                    },
                    "flops": {
                        "type": "string",
                        "description": "Floating-point operations per call, same expression language as bytes.",
                    },
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
