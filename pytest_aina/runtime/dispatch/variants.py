"""A kernel's variants, and the rule that chooses one for a call.

Choosing a variant for a call (its dims, dtype, device architecture):

1. a variant *applies* when the call lies inside every range its domain states;
2. among those, the most specific wins: more constrained axes first (each dim range, the
   dtypes and the arch count one each); then the narrower domain (smaller sum of log2 of
   the dim ranges' widths, then fewer dtypes, then fewer arches); then the one listed
   first in the table;
3. the generic variant has no domain, so it applies to every call and wins only when
   nothing more specific does.

These are plain values: reading them from a file is :mod:`.reader`'s job, serving calls
with them :mod:`.routing`'s.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_UNBOUNDED_WIDTH = 2**40  # a range with no upper bound counts as this wide
_UNCONSTRAINED = 1 << 20  # "any dtype" / "any arch" counts as this many


@dataclass(frozen=True)
class Variant:
    name: str
    function: str  # module:attribute
    config: dict = field(default_factory=dict, hash=False)
    dims: dict = field(default_factory=dict, hash=False)  # dim -> (lo, hi); hi None: unbounded
    dtypes: tuple[str, ...] | None = None
    arch: tuple[str, ...] | None = None
    evidence: dict | None = field(default=None, hash=False)
    index: int = 0  # position in the table
    line: int | None = None

    @property
    def is_generic(self) -> bool:
        return not self.dims and self.dtypes is None and self.arch is None

    def applies(self, dims: dict, dtype: str, arch: str) -> bool:
        if self.dtypes is not None and dtype not in self.dtypes:
            return False
        if self.arch is not None and not any(fnmatch.fnmatchcase(arch, p) for p in self.arch):
            return False
        for name, (lo, hi) in self.dims.items():
            v = dims.get(name)
            if v is None or v < lo or (hi is not None and v > hi):
                return False
        return True

    @property
    def specificity(self) -> tuple:
        """Sort key: the larger, the more specific (rule 2 in the module docstring)."""
        axes = len(self.dims) + (self.dtypes is not None) + (self.arch is not None)
        width = sum(math.log2(_UNBOUNDED_WIDTH if hi is None else hi - lo + 1) for lo, hi in self.dims.values())
        n_dtypes = len(self.dtypes) if self.dtypes is not None else _UNCONSTRAINED
        n_arch = len(self.arch) if self.arch is not None else _UNCONSTRAINED
        return (axes, -width, -n_dtypes, -n_arch, -self.index)

    def domain(self) -> dict:
        """The domain as plain data: {"dims": {name: [lo, hi]}, "dtypes": [...], "arch": [...]}."""
        d: dict = {}
        if self.dims:
            d["dims"] = {k: [lo, hi] for k, (lo, hi) in self.dims.items()}
        if self.dtypes is not None:
            d["dtypes"] = list(self.dtypes)
        if self.arch is not None:
            d["arch"] = list(self.arch)
        return d

    def load(self) -> Callable:
        """The callable: the function, with ``config`` bound as keyword arguments."""
        module, _, attr = self.function.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return functools.partial(obj, **self.config) if self.config else obj


@dataclass(frozen=True)
class Table:
    kernel: str
    variants: tuple[Variant, ...]
    path: Path | None = None

    @property
    def generic(self) -> Variant:
        return next(v for v in self.variants if v.is_generic)

    def select(self, dims: dict, dtype: str, arch: str) -> Variant:
        """The most specific applicable variant (the generic one applies to everything)."""
        return max((v for v in self.variants if v.applies(dims, dtype, arch)), key=lambda v: v.specificity)

    def get(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)
