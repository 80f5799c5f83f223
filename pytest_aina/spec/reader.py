"""Reading spec files: YAML with line numbers, and errors that say where and what.

Every problem found in a spec becomes a :class:`SpecIssue` naming the file, the key path
(``inputs.x.layouts[1]``), the line where YAML put that key, and what was expected. The
schema check uses the schema ``aina spec schema`` publishes (:mod:`pytest_aina.spec.schema`),
so the document users read and the check we run cannot drift apart.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from pytest_aina.schema_errors import explain
from pytest_aina.spec.schema import _document, schema

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


class _PyLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-6`` as a float (YAML 1.1 wants ``1.0e-6``)."""


class _Loader(getattr(yaml, "CSafeLoader", _PyLoader)):
    """The same with libyaml's parser when PyYAML has it: parsing dominates collecting
    many specs and libyaml is several times faster. Both give nodes with line marks;
    on an error the pure-Python parser is asked again for its clearer message."""


for _cls in {_PyLoader, _Loader}:
    _cls.add_implicit_resolver(
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
    try:
        return _load_yaml(text, file, _Loader)
    except SpecError:
        if _Loader is _PyLoader:
            raise
        return _load_yaml(text, file, _PyLoader)


def _load_yaml(text: str, file: str, loader_class) -> tuple[Any, dict]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecIssue(file, (), None, "the file is empty; expected a mapping")])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        # The parser notices a problem where it stops; the context says where the broken
        # construct began, which is often the line to fix.
        context = ""
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise SpecError([SpecIssue(file, (), line, f"not valid YAML: {exc.problem}{context}")]) from None
    finally:
        loader.dispose()
    duplicates = _duplicate_keys(node, (), file)
    if duplicates:
        # YAML keeps the last of two equal keys without a word: a second `tolerance:` could
        # silently loosen the first, so it is an error, not a style issue.
        raise SpecError(duplicates)
    lines: dict = {}
    _lines(node, (), lines)
    return data, lines


def _duplicate_keys(node: yaml.Node, path: tuple, file: str) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    if isinstance(node, yaml.MappingNode):
        first: dict = {}
        for key, value in node.value:
            k = key.value
            if k in first:
                issues.append(
                    SpecIssue(
                        file,
                        path + (k,),
                        key.start_mark.line + 1,
                        f"duplicate key {k!r} (first at line {first[k]}); expected each key once",
                    )
                )
            else:
                first[k] = key.start_mark.line + 1
            issues += _duplicate_keys(value, path + (k,), file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            issues += _duplicate_keys(item, path + (i,), file)
    return issues


def _line_for(lines: dict, path: tuple) -> int | None:
    # The deepest prefix of the path that YAML gave a line to: a missing key is reported
    # at the mapping that should hold it.
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _explain(error) -> str:
    """A jsonschema error in spec terms: import paths and invariants get their own words."""
    v = error.validator
    if v == "pattern" and error.validator_value.endswith(":[A-Za-z_][A-Za-z0-9_.]*$"):
        return f"{error.instance!r} is not an import path; expected 'module:attribute'"
    if v == "oneOf":
        names, mappings = _invariant_names(error)
        inst = error.instance
        word = (
            inst if isinstance(inst, str) else next(iter(inst)) if isinstance(inst, dict) and len(inst) == 1 else None
        )
        guess = difflib.get_close_matches(str(word), names + mappings, n=1) if word is not None else []
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        return (
            f"{error.instance!r} is not a known invariant{hint}; expected a name "
            f"({', '.join(names)}) or a mapping with one of {', '.join(mappings)}"
        )
    return explain(error)


def _invariant_names(error) -> tuple[list[str], list[str]]:
    """The invariant names a oneOf offers, read from the schema so the two cannot drift."""
    names: list[str] = []
    mappings: list[str] = []
    for branch in error.validator_value:
        names += branch.get("enum", [])
        mappings += list(branch.get("properties", {}))
    return names, mappings


def _specific(error) -> list:
    """An invariant written with a known name but wrong parameters (``sums_to: {tol: 1}``)
    is better explained by the errors of the branch it meant than by 'not a known one'."""
    if error.validator != "oneOf" or not isinstance(error.instance, dict) or len(error.instance) != 1:
        return [error]
    (name,) = error.instance
    for i, branch in enumerate(error.validator_value):
        if name in branch.get("properties", {}):
            meant = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == i]
            return meant or [error]
    return [error]


@cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


class AcceptedSpecs:
    """The spec texts the schema has accepted, remembered in a file: collecting many specs
    validates again only those that changed (jsonschema costs ~30 ms a spec; the YAML and
    the semantic checks still run every time).

    A text is known by the SHA-256 of the schema document and the text together, so a
    changed schema (a new invariant, an edited key) forgets every verdict. Only acceptances
    are kept: a rejected spec is checked, and its issues reported, every time. The file is
    a cache: unreadable or unwritable (a read-only checkout), it is simply not used.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._known: set[str] | None = None
        self._schema = hashlib.sha256(_document().encode())  # the published schema's own text

    def _digest(self, text: str) -> str:
        h = self._schema.copy()
        h.update(b"\0")
        h.update(text.encode())
        return h.hexdigest()

    def _load(self) -> set[str]:
        if self._known is None:
            try:
                self._known = set(self.path.read_text().split())
            except (OSError, UnicodeDecodeError):
                self._known = set()
        return self._known

    def __contains__(self, text: str) -> bool:
        return self._digest(text) in self._load()

    def add(self, text: str) -> None:
        digest = self._digest(text)
        known = self._load()
        if digest in known:
            return
        known.add(digest)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(digest + "\n")
        except OSError:
            pass  # a cache that cannot be written costs time, never a result


def validate_schema(data: Any, lines: dict, file: str) -> list[SpecIssue]:
    validator = _validator()  # jsonschema is imported lazily: only loading specs pays for it
    issues = []
    errors = [e for error in validator.iter_errors(data) for e in _specific(error)]
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            # Point at the unknown key itself; YAML may have given it a non-string type.
            known = error.schema.get("properties", {})
            patterns = error.schema.get("patternProperties", {})
            extra = [
                str(k) for k in error.instance if k not in known and not any(re.search(pat, str(k)) for pat in patterns)
            ]
            if extra and path + (extra[0],) in lines:
                path = path + (extra[0],)
        issues.append(SpecIssue(file, path, _line_for(lines, path), _explain(error)))
    return issues
