"""The sandbox's layout: the child never imports the parent, no import hides in a function
unless it is a heavy package, and the public face resolves.

The child runs next to untrusted code: what it loads is what a candidate can reach and
patch, so the parent's modules (launch, timing, the verdicts) stay out of it, in the
source and in the running process.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import pytest_aina.sandbox as sandbox
from pytest_aina.sandbox import run

ROOT = Path(sandbox.__file__).parent
PARENT = "pytest_aina.sandbox.parent"
#: the only packages a sandbox module may import inside a function: heavy, and only on the
#: paths that need them
LAZY = {"torch", "numpy"}


def _imports(tree: ast.AST):
    """(module imported, whether the import is inside a function) for every import."""

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, inner
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, "relative imports hide where a module lives"
                for alias in child.names:
                    yield f"{child.module}.{alias.name}", inner
            yield from walk(child, inner)

    yield from walk(tree, False)


def _modules(folder: Path):
    return sorted(p for p in folder.rglob("*.py"))


@pytest.mark.parametrize(
    "path",
    [p for p in _modules(ROOT) if "parent" not in p.relative_to(ROOT).parts],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_child_and_the_shared_modules_never_import_the_parent(path):
    found = [m for m, _ in _imports(ast.parse(path.read_text())) if m == PARENT or m.startswith(PARENT + ".")]
    assert found == [], f"{path.relative_to(ROOT)} imports {found}"


@pytest.mark.parametrize("path", _modules(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_function_local_imports_are_only_for_heavy_packages(path):
    local = [m for m, inner in _imports(ast.parse(path.read_text())) if inner and m.split(".")[0] not in LAZY]
    assert local == [], f"{path.relative_to(ROOT)} imports {local} inside a function"


def test_the_running_child_has_none_of_the_parents_modules(write):
    entry = write(
        "loaded.py",
        """
        import sys

        def f():
            return sorted(m for m in sys.modules if m.startswith("pytest_aina"))
    """,
    )
    r = run(f"{entry}:f")
    assert r.status == "ok", r.reason + r.stderr_tail
    assert "pytest_aina.sandbox.child.boot" in r.value  # the list is the child's, not empty by accident
    assert [m for m in r.value if m.startswith(PARENT)] == []


def test_the_public_face_resolves():
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
    with pytest.raises(AttributeError):
        sandbox.not_a_name  # noqa: B018
    for fn in (sandbox.run, sandbox.time_calls):
        assert "Raises" in inspect.getdoc(fn), f"{fn.__name__} must say what it raises"
