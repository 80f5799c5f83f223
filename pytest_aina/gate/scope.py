"""Scope: which kernels a change can affect, read from the code without running it.

A kernel is affected when the change touches anything its calls can reach:

* its spec;
* the modules its spec names (implementation, reference, ``python`` invariant checks), the
  repository modules they import, transitively (``import``/``from`` statements found with
  :mod:`ast` anywhere in a module, function-level imports included), and the ``__init__``
  of every package on the way (Python runs those on import);
* its dispatch table (``variants/<kernel>.yaml`` beside the implementation's module) and the
  modules of the variants the table names.

Both sides count: a helper deleted by the change affects the kernels that imported it at
the base. Modules outside the repository (torch, triton, an installed pytest-aina) are not followed:
the project's own CI tests the tool. A change that touches no kernel needs no benchmark.
"""

from __future__ import annotations

import ast
import posixpath
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import yaml

from pytest_aina.gate.repo import FileChange, Repo

DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
DOC_NAMES = ("LICENSE", "NOTICE", "AUTHORS", "CODEOWNERS")


@dataclass
class Scope:
    changes: list[FileChange]
    affected: dict[str, dict[str, str]] = field(default_factory=dict)  # kernel -> {path: why}
    closures: dict[str, dict[str, str]] = field(default_factory=dict)  # kernel -> every file it reaches (head)
    categories: dict[str, str] = field(default_factory=dict)  # path -> kind

    @property
    def paths(self) -> list[str]:
        return sorted({p for c in self.changes for p in c.paths})

    @property
    def docs_only(self) -> bool:
        return bool(self.changes) and all(self.categories.get(p) == "docs" for p in self.paths)

    @property
    def kernels(self) -> list[str]:
        return sorted(self.affected)

    def of_kind(self, kind: str) -> list[str]:
        return sorted(p for p in self.paths if self.categories.get(p) == kind)

    def as_dict(self) -> dict:
        return {
            "changed": [{"path": c.path, "status": c.status, "old_path": c.old_path} for c in self.changes],
            "categories": dict(sorted(self.categories.items())),
            "affected": {k: dict(sorted(v.items())) for k, v in sorted(self.affected.items())},
            "docs_only": self.docs_only,
        }


def is_doc(path: str) -> bool:
    name = posixpath.basename(path)
    return path.endswith(DOC_SUFFIXES) or name in DOC_NAMES or (path.startswith("docs/") and not path.endswith(".py"))


def is_test(path: str) -> bool:
    name = posixpath.basename(path)
    return path.endswith(".py") and (fnmatchcase(name, "test_*.py") or fnmatchcase(name, "*_test.py"))


class Tree:
    """The repository's files at one commit, for resolving module names to files."""

    def __init__(self, repo: Repo, commit: str):
        self.repo, self.commit = repo, commit
        self.paths = set(repo.files(commit))
        self._text: dict[str, str | None] = {}

    def text(self, path: str) -> str | None:
        if path not in self._text:
            self._text[path] = self.repo.text(self.commit, path) if path in self.paths else None
        return self._text[path]

    def module_file(self, module: str) -> str | None:
        base = module.replace(".", "/")
        for candidate in (f"{base}.py", f"{base}/__init__.py"):
            if candidate in self.paths:
                return candidate
        return None


def _imports(text: str, module: str, is_package: bool) -> set[str]:
    """Module names ``text`` may import (for ``from a import b``: both ``a`` and ``a.b``)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                stem = ".".join(parts + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            if stem:
                out.add(stem)
                out.update(f"{stem}.{alias.name}" for alias in node.names if alias.name != "*")
    return out


def closure(tree: Tree, modules: list[str], why: str) -> dict[str, str]:
    """Every repository file importing ``modules`` runs: {path: why it is reached}."""
    found: dict[str, str] = {}
    todo = [(m, why) for m in modules]
    seen: set[str] = set()
    while todo:
        module, reason = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # packages on the way run their __init__
            name = ".".join(parts[:i])
            path = tree.module_file(name)
            if path is None or path in found:
                continue
            found[path] = reason if name == module else f"package of {module}"
            text = tree.text(path) or ""
            for imported in _imports(text, name, path.endswith("__init__.py")):
                todo.append((imported, f"imported by {path}"))
    return found


def table_path(tree: Tree, implementation: str, kernel: str) -> str | None:
    module_file = tree.module_file(implementation.partition(":")[0])
    if module_file is None:
        return None
    path = posixpath.join(posixpath.dirname(module_file), "variants", f"{kernel}.yaml")
    return path if path in tree.paths else None


def kernel_files(tree: Tree, spec, spec_path: str) -> dict[str, str]:
    """Every file of the repository the kernel of ``spec`` can reach, with why."""
    files = {spec_path: "its spec"}
    entries = [(spec.implementation, "the implementation"), (spec.reference, "the reference")]
    entries += [
        (inv.params["check"], f"invariant {inv.label}")
        for inv in spec.invariants
        if inv.name == "python" and isinstance(inv.params.get("check"), str)
    ]
    for entry, why in entries:
        for path, reason in closure(tree, [entry.partition(":")[0]], why).items():
            files.setdefault(path, reason)
    table = table_path(tree, spec.implementation, spec.name)
    if table:
        files.setdefault(table, "its dispatch table")
        try:
            data = yaml.safe_load(tree.text(table) or "") or {}
        except yaml.YAMLError:
            data = {}
        for v in data.get("variants") or [] if isinstance(data, dict) else []:
            fn = v.get("function") if isinstance(v, dict) else None
            if isinstance(fn, str) and ":" in fn:
                for path, reason in closure(tree, [fn.partition(":")[0]], f"variant {v.get('name')}").items():
                    files.setdefault(path, reason)
    return files


def compute(
    repo: Repo,
    base: str,
    head: str,
    changes: list[FileChange],
    specs: dict[str, dict],
    spec_paths: dict[str, dict[str, str]],
) -> Scope:
    """``specs``: {"base": {name: Spec}, "head": {...}}; ``spec_paths``: the same with each
    spec's path in the repository."""
    scope = Scope(changes=changes)
    changed = set(scope.paths)
    for side, commit in (("base", base), ("head", head)):
        tree = Tree(repo, commit)
        for name, spec in specs.get(side, {}).items():
            files = kernel_files(tree, spec, spec_paths[side][name])
            if side == "head":
                scope.closures[name] = files
            hit = {p: why for p, why in files.items() if p in changed}
            if hit:
                scope.affected.setdefault(name, {}).update(hit)
    in_kernels = {p for files in scope.affected.values() for p in files}
    for path in changed:
        if path in in_kernels:
            scope.categories[path] = (
                "spec" if any(spec_paths[s].get(k) == path for s in spec_paths for k in spec_paths[s]) else "kernel"
            )
        elif path.startswith("provenance/") and path.endswith(".intoto.json"):
            scope.categories[path] = "attestation"
        elif is_test(path):
            scope.categories[path] = "test"
        elif is_doc(path):
            scope.categories[path] = "docs"
        elif path.startswith(".github/"):
            scope.categories[path] = "ci"
        else:
            scope.categories[path] = "other"
    return scope
