"""Hypothesis strategies from JSON Schema, for GitHub's webhook payload schemas.

hypothesis-jsonschema 0.23.1 (the latest release) calls a Hypothesis internal that
Hypothesis 6.170 no longer has (``many.more``), so every object schema fails there. This
is the small subset GitHub's ``@octokit/openapi-webhooks`` schemas use (type lists,
properties/required, additionalProperties, items, enum, oneOf/anyOf/allOf, $ref, minimum/
maximum, maxLength, the formats uri, uri-template, date-time, date, email, int64), built
from public Hypothesis strategies. Generated values are checked against the schema with
jsonschema's 2020-12 validator by the tests, so a gap here shows up as rejected examples,
never as invalid payloads sent.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

INT64 = 2**63 - 1

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema


def _merge(parts: list[dict[str, Any]], root: dict[str, Any] | None = None) -> dict[str, Any]:
    """One schema that the parts of an ``allOf`` all hold in (for what we generate)."""
    out: dict[str, Any] = {}
    for p in parts:
        for k, v in p.items():
            if k == "properties":
                props = out.setdefault("properties", {})
                for name, sub in v.items():
                    if name in props and root is not None:
                        props[name] = _merge([_resolve(props[name], root), _resolve(sub, root)], root)
                    else:
                        props[name] = sub
            elif k == "required":
                out["required"] = sorted(set(out.get("required", [])) | set(v))
            elif k == "type" and "type" in out:
                a = out["type"] if isinstance(out["type"], list) else [out["type"]]
                b = v if isinstance(v, list) else [v]
                both = [t for t in a if t in b] or b
                out["type"] = both if len(both) > 1 else both[0]
            elif k == "enum" and "enum" in out:
                out["enum"] = [x for x in out["enum"] if x in v] or v
            elif (
                k in ("items", "additionalProperties")
                and isinstance(out.get(k), dict)
                and isinstance(v, dict)
                and root is not None
            ):
                out[k] = _merge([_resolve(out[k], root), _resolve(v, root)], root)
            else:
                out[k] = v
    return out


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    fmt = schema.get("format")
    if fmt in ("uri", "uri-template"):
        return st.builds(
            lambda host, path: f"https://{host}.example/{path}",
            st.from_regex(r"[a-z]{1,8}", fullmatch=True),
            st.from_regex(r"[a-z0-9/]{0,12}", fullmatch=True),
        )
    if fmt == "date-time":
        return st.datetimes().map(lambda d: d.replace(microsecond=0).isoformat() + "Z")
    if fmt == "date":
        return st.dates().map(lambda d: d.isoformat())
    if fmt == "email":
        return st.emails()
    return st.text(max_size=min(schema.get("maxLength", 40), 40))


def _integer(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if schema.get("format") == "int64":
        lo = -INT64 - 1 if lo is None else lo
        hi = INT64 if hi is None else hi
    return st.integers(min_value=lo, max_value=hi)


def from_schema(schema: Any, root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    if schema is True or schema == {}:
        return _json_leaf
    schema = _resolve(schema, root)
    if "allOf" in schema:
        merged = _merge(
            [_resolve(s, root) for s in schema["allOf"]] + [{k: v for k, v in schema.items() if k != "allOf"}], root
        )
        return from_schema(merged, root, depth)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            return st.one_of([from_schema(_merge([rest, _resolve(s, root)], root), root, depth) for s in schema[key]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind is None:
        kind = "object" if "properties" in schema else None
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, root, depth) for k in kind])
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return st.one_of(
            _integer(schema),
            st.floats(
                min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False, allow_infinity=False
            ),
        )
    if kind == "string":
        return _string(schema)
    if kind == "array":
        items = schema.get("items", True)
        return st.lists(from_schema(items, root, depth + 1), max_size=2 if depth < 4 else 0)
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: from_schema(v, root, depth + 1) for k, v in props.items() if k in required}
        # Deep inside a payload (a repository inside a PR's head), optional fields only
        # cost generation time: leave them out there.
        optional = (
            {k: from_schema(v, root, depth + 1) for k, v in props.items() if k not in required} if depth < 3 else {}
        )
        base = st.fixed_dictionaries(fixed, optional=optional)
        extra = schema.get("additionalProperties", True)
        if extra is False:
            return base
        # GitHub adds fields without notice: a handler must take keys it does not know.
        names = st.text(min_size=1, max_size=8).filter(lambda n: n not in props)
        extras = st.dictionaries(
            names, _json_leaf if extra is True else from_schema(extra, root, depth + 1), max_size=1
        )
        return st.tuples(base, extras).map(lambda t: {**t[1], **t[0]})
    return _json_leaf
