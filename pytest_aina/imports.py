"""The one way pytest-aina turns ``module:attr`` into an object.

Specs name their implementation and reference as ``module:attr``; the sandbox's entries and a
candidate's file are ``module:attr`` or ``path/file.py:attr``; invariants name a check
function the same way. All of them resolve here, so "what does this name mean" has one answer
in pytest, in ``aina`` and in the sandbox. Stdlib only: the sandbox's child imports this
before anything else.

Where a module is looked for is what pytest users expect: ``sys.path`` (which pytest's
``pythonpath`` ini extends), then the project's root (pytest's rootdir; for ``aina``, the
current folder), then the folder of the spec naming it, then the current folder, as
``python -m pytest`` would find it, even under the ``pytest`` console script, whose
``sys.path`` does not hold the current folder.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterable
from typing import Any


class ResolveError(ImportError):
    """``entry`` names a module or attribute that cannot be found; the message says where
    it was looked for."""

    def __init__(self, entry: str, message: str):
        super().__init__(message)
        self.entry = entry


def _split(entry: str) -> tuple[str, str]:
    target, sep, attr = entry.rpartition(":")
    if not sep or not target or not attr:
        raise ValueError(f"{entry!r} must be 'module:attr' or 'file.py:attr'")
    return target, attr


def resolve(entry: str, *, roots: Iterable[str | os.PathLike] = ()) -> Any:
    """``module:attr`` or ``path/file.py:attr`` (``attr`` may be dotted); ``roots``, then the
    current folder, are searched after ``sys.path`` (and for a relative ``file.py``)."""
    target, attr = _split(entry)
    folders = _folders(roots)
    if target.endswith(".py"):
        module = _load_file(entry, _file(target, folders))
    else:
        module = _import(entry, target, folders)
    obj: Any = module
    for i, part in enumerate(attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = ".".join([target, *attr.split(".")[:i]]) if not target.endswith(".py") else target
            raise ResolveError(entry, f"cannot resolve {entry!r}: {where} has no attribute {part!r}") from None
    return obj


def problem(entry: str, *, roots: Iterable[str | os.PathLike] = ()) -> str | None:
    """Why ``entry`` cannot be resolved, found without running the module (for ``aina spec
    check``): the module is not on the path, or its source defines no such top-level name.
    None when it can be found, or when only importing would tell (an extension module, a
    module ``__getattr__``, a star import)."""
    try:
        target, attr = _split(entry)
    except ValueError as exc:
        return str(exc)
    folders = _folders(roots)
    if target.endswith(".py"):
        path = _file(target, folders)
        if not os.path.isfile(path):
            return f"no such file {target!r}"
    else:
        try:
            spec = _find(target, folders)
        except (ImportError, ValueError) as exc:
            return f"module {target!r} cannot be found ({exc})"
        if spec is None:
            return (
                f"module {target!r} cannot be found on the import path or in {_describe(folders)} "
                "(pytest's 'pythonpath' ini adds folders)"
            )
        path = spec.origin
        if not path or not path.endswith(".py"):
            return None
    name = attr.split(".")[0]
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return None  # importing it will say what is wrong
    defined = _top_level_names(tree)
    if defined is None or name in defined:
        return None
    return f"{target} defines no {name!r}"


def _folders(roots) -> list[str]:
    return list(dict.fromkeys(os.path.abspath(f) for f in (*roots, os.getcwd())))


def _describe(folders: list[str]) -> str:
    return " or ".join(folders)


def _file(target: str, folders: list[str]) -> str:
    if os.path.isabs(target) or os.path.exists(target):
        return target
    for folder in folders:
        candidate = os.path.join(folder, target)
        if os.path.exists(candidate):
            return candidate
    return target


def _load_file(entry: str, path: str):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not os.path.isfile(path):
        raise ResolveError(entry, f"cannot resolve {entry!r}: no such file {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _top(target: str) -> str:
    return target.split(".")[0]


def _find(target: str, folders: list[str]):
    """The module's spec, from sys.path, else from the first folder holding its top package
    (which is then put on sys.path, as pytest's rootdir insertion would)."""
    if importlib.util.find_spec(_top(target)) is None:
        for folder in folders:
            if importlib.machinery.PathFinder.find_spec(_top(target), [folder]) is not None:
                sys.path.insert(0, folder)
                importlib.invalidate_caches()
                break
        else:
            return None
    return importlib.util.find_spec(target)


def _import(entry: str, target: str, folders: list[str]):
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        # only when the missing module is the one named (not an import inside it)
        if exc.name is None or not (target == exc.name or target.startswith(exc.name + ".")):
            raise
        if _find(target, folders) is None:
            raise ResolveError(
                entry,
                f"cannot resolve {entry!r}: no module named {exc.name!r} on the import "
                f"path or in {_describe(folders)} (pytest's 'pythonpath' ini adds "
                "folders)",
            ) from None
        return importlib.import_module(target)


def _top_level_names(tree: ast.Module) -> set[str] | None:
    """Names a module's body binds (also under ``if``/``try``/``with``); None when a star
    import or a module ``__getattr__`` makes the answer unknowable without importing."""
    names: set[str] = set()

    def visit(body) -> bool:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name == "__getattr__":
                    return False
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*":
                        return False
                    names.add((alias.asname or alias.name).split(".")[0])
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    if not visit(getattr(node, field, None) or []):
                        return False
        return True

    return names if visit(tree.body) else None
