"""GitHub's REST description as a router and a validator for the fake.

The fake routes every request through :meth:`RestDescription.match`: a request reaches a
handler only if GitHub's published description has that method and path, and the handler
is picked by ``operationId``. Requests (path and query parameters, JSON bodies) and
responses (status declared, JSON body valid) are checked against the description; what
does not fit is recorded as a violation that fails the test.

The description is OpenAPI 3.0, whose schemas are JSON Schema draft 4 plus ``nullable``;
:func:`to_json_schema` rewrites ``nullable`` once so a stock draft-4 validator can run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

URI = "urn:github:rest"
#: Path parameters that may hold slashes when they end the path (a ref "heads/main",
#: a file path "kernels/x.py").
_GREEDY = {"ref", "path", "basehead"}
_METHODS = ("get", "post", "put", "patch", "delete")


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` becomes JSON Schema's "or null"."""
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str) and "$ref" not in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    pointer: str  # JSON pointer of the operation object
    regex: re.Pattern[str]
    spec: dict[str, Any]


class RestDescription:
    def __init__(self, description: dict[str, Any]):
        self.doc = to_json_schema(description)
        self.registry = Registry().with_resource(URI, Resource.from_contents(self.doc, default_specification=DRAFT4))
        self.operations: dict[str, list[Operation]] = {m: [] for m in _METHODS}
        self.by_id: dict[str, Operation] = {}
        for template, item in self.doc["paths"].items():
            for method in _METHODS:
                if method in item:
                    op = Operation(
                        method,
                        template,
                        item[method]["operationId"],
                        _pointer("paths", template, method),
                        _compile(template),
                        item[method],
                    )
                    self.operations[method].append(op)
                    self.by_id[op.operation_id] = op
        for ops in self.operations.values():
            # Literal segments beat parameters: /git/refs before /git/{x}.
            ops.sort(key=lambda o: (o.template.count("{"), -len(o.template)))

    # -- routing ------------------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        for op in self.operations.get(method.lower(), []):
            m = op.regex.fullmatch(path)
            if m:
                return op, m.groupdict()
        return None

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while isinstance(node, dict) and "$ref" in node:
            node = self.registry.resolver(URI).lookup(URI + node["$ref"]).contents
        return node

    @lru_cache(maxsize=4096)  # noqa: B019 - one validator for the life of the test process
    def validator(self, pointer: str) -> jsonschema.Draft4Validator:
        return jsonschema.Draft4Validator({"$ref": URI + pointer}, registry=self.registry)

    def parameters(self, op: Operation) -> list[dict[str, Any]]:
        return [self._resolve(p) for p in op.spec.get("parameters", [])]

    # -- checks -------------------------------------------------------------------------------
    def check_request(
        self, op: Operation, path_params: dict[str, str], query: dict[str, list[str]], body: Any, has_body: bool
    ) -> list[str]:
        problems: list[str] = []
        where = f"{op.method.upper()} {op.template} ({op.operation_id})"
        declared_query = {}
        for i, param in enumerate(op.spec.get("parameters", [])):
            p = self._resolve(param)
            schema_ptr = (p.get("$ref") or "") or None
            if p["in"] == "path" and p["name"] in path_params:
                value = _coerce(path_params[p["name"]], p.get("schema", {}))
                problems += self._errors(
                    self._param_pointer(op, i, param), value, f"{where}: path parameter {p['name']}"
                )
            elif p["in"] == "query":
                declared_query[p["name"]] = (i, param, p)
            del schema_ptr
        for name, values in query.items():
            if name not in declared_query:
                problems.append(f"{where}: query parameter {name!r} is not in GitHub's API")
                continue
            i, param, p = declared_query[name]
            value = _coerce(values[-1], p.get("schema", {}))
            problems += self._errors(self._param_pointer(op, i, param), value, f"{where}: query parameter {name}")
        request_body = op.spec.get("requestBody")
        if request_body is not None:
            request_body = self._resolve(request_body)
            if not has_body:
                if request_body.get("required"):
                    problems.append(f"{where}: request body required")
            elif "application/json" in request_body.get("content", {}):
                problems += self._errors(
                    op.pointer + "/requestBody/content/application~1json/schema", body, f"{where}: request body"
                )
        elif has_body:
            problems.append(f"{where}: takes no request body")
        return problems

    def _param_pointer(self, op: Operation, index: int, param: dict[str, Any]) -> str:
        if "$ref" in param:
            return param["$ref"] + "/schema"
        return f"{op.pointer}/parameters/{index}/schema"

    def check_response(self, op: Operation, status: int, body: Any, content_type: str) -> list[str]:
        where = f"{op.method.upper()} {op.template} ({op.operation_id}) -> {status}"
        responses = op.spec.get("responses", {})
        key = str(status) if str(status) in responses else ("default" if "default" in responses else None)
        if key is None:
            return [f"{where}: GitHub's API declares no {status} answer here (declared: {sorted(responses)})"]
        response = self._resolve(responses[key])
        content = response.get("content") or {}
        if "application/json" not in content:
            return []
        if "json" not in content_type:
            return [f"{where}: answered {content_type!r}, GitHub answers JSON"]
        if "$ref" in responses[key]:
            pointer = responses[key]["$ref"] + "/content/application~1json/schema"
        else:
            pointer = f"{op.pointer}/responses/{key}/content/application~1json/schema"
        if "schema" not in content["application/json"]:
            return []
        return self._errors(pointer, body, f"{where}: response body")

    def _errors(self, pointer: str, value: Any, where: str) -> list[str]:
        out = []
        for err in self.validator(pointer).iter_errors(value):
            path = "/".join(str(p) for p in err.absolute_path)
            out.append(f"{where}: at '{path}': {err.message[:300]}")
            if len(out) >= 5:
                break
        return out


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    out = []
    for i, part in enumerate(parts):
        if part.startswith("{"):
            name = part[1:-1]
            last = i == len(parts) - 2 and parts[-1] == ""
            group = re.sub(r"\W", "_", name)
            out.append(f"(?P<{group}>.+)" if name in _GREEDY and last else f"(?P<{group}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "integer" in kinds:
        try:
            return int(value)
        except ValueError:
            return value
    if "number" in kinds:
        try:
            return float(value)
        except ValueError:
            return value
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    if "array" in kinds:
        return value.split(",")
    return value
