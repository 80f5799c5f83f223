"""jsonschema errors in "what was expected" words, shared by every format we publish
(specs, telemetry): each format handles its own special cases, then asks :func:`explain`."""

from __future__ import annotations

import re


def explain(error) -> str:
    """One line for a jsonschema ``ValidationError``: what is wrong and what was expected."""
    v = error.validator
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return f"missing required key {missing[0]!r}" if missing else error.message
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {})) or [
            alt
            for pattern in error.schema.get("patternProperties", {})
            for alt in re.sub(r"[\^$()]", "", pattern).split("|")
        ]
        extra = [k for k in error.instance if k not in allowed]
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {', '.join(map(repr, extra))}{hint}"
    if v == "enum":
        return f"{error.instance!r} is not allowed; expected one of: {', '.join(map(str, error.validator_value))}"
    if v == "const":
        return f"expected {error.validator_value!r}, got {error.instance!r}"
    if v == "type":
        return f"expected {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
    if v == "minimum":
        return f"{error.instance!r} is below the minimum {error.validator_value}"
    if v == "pattern":
        return f"{error.instance!r} does not match {error.validator_value}"
    return error.message
