"""The one way pytest-aina turns ``module:attr`` into an object.

Specs name their implementation and reference as ``module:attr``; the sandbox's entries and a
candidate's file are ``module:attr`` or ``path/file.py:attr``; invariants name a check
function the same way. All of them resolve here, so "what does this name mean" has one answer
in pytest, in ``aina`` and in the sandbox. Stdlib only: the sandbox's child imports this
before anything else.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any


def resolve(entry: str) -> Any:
    """``module:attr`` or ``path/file.py:attr`` (``attr`` may be dotted)."""
    target, sep, attr = entry.rpartition(":")
    if not sep or not target or not attr:
        raise ValueError(f"{entry!r} must be 'module:attr' or 'file.py:attr'")
    if target.endswith(".py"):
        name = os.path.splitext(os.path.basename(target))[0]
        spec = importlib.util.spec_from_file_location(name, target)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
