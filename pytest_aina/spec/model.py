"""The spec: one kernel's boundaries, as a typed object.

``load_spec(path)`` reads a YAML spec, checks it against the published JSON Schema and
then against the rules a schema cannot state (a shape names a dim that exists, an example
lies inside the domain, every dtype has a tolerance, the bytes model parses), and returns
a :class:`Spec`. Nothing here imports torch: specs are read at collection time.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aina import invariants
from pytest_aina.spec.reader import SpecError, SpecIssue, _line_for, load_yaml, validate_schema
from pytest_aina.spec.schema import DTYPES, LAYOUTS, VALUE_KINDS

ELEMENT_SIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Dim:
    name: str
    min: int
    max: int


@dataclass(frozen=True)
class Input:
    name: str
    shape: tuple[str, ...]
    batch_dims: bool = False
    layouts: tuple[str, ...] = ("contiguous",)
    values: tuple[str, ...] = VALUE_KINDS
    dtype: str | None = None  # None: the case's dtype


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


@dataclass(frozen=True)
class Invariant:
    """An invariant as one spec states it: a name from the registry (:mod:`pytest_aina.invariants`)
    and its parameters; ``key`` identifies it across spec versions."""

    name: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    line: int | None = field(default=None, hash=False, compare=False)

    @property
    def definition(self) -> invariants.InvariantDef:
        return invariants.get(self.name)

    @property
    def key(self) -> str:
        return self.definition.key(self.params)

    @property
    def label(self) -> str:
        return self.definition.label(self.params)


@dataclass(frozen=True)
class Case:
    """One concrete input: dims, dtype, layout, value kind and seed."""

    dims: tuple[tuple[str, int], ...]
    dtype: str
    layout: str = "contiguous"
    values: str = "normal"
    batch: tuple[int, ...] | None = None
    seed: int = 0
    line: int | None = field(default=None, compare=False)

    @property
    def dim_map(self) -> dict[str, int]:
        return dict(self.dims)

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.dims]
        if self.batch:
            parts.append("batch=" + "x".join(map(str, self.batch)))
        parts.append(self.dtype)
        if self.layout != "contiguous":
            parts.append(self.layout)
        if self.values != "normal":
            parts.append(self.values)
        return ",".join(parts)

    def to_arg(self) -> str:
        """The ``--aina-case`` text that reproduces exactly this case."""
        parts = [f"{k}={v}" for k, v in self.dims]
        if self.batch:
            parts.append("batch=" + "x".join(map(str, self.batch)))
        parts += [f"dtype={self.dtype}", f"layout={self.layout}", f"values={self.values}", f"seed={self.seed}"]
        return ",".join(parts)

    def as_dict(self) -> dict:
        d = {"dims": self.dim_map, "dtype": self.dtype, "layout": self.layout,
             "values": self.values, "seed": self.seed}
        if self.batch:
            d["batch"] = list(self.batch)
        return d

    @classmethod
    def from_arg(cls, text: str) -> Case:
        """Parse ``M=3,N=1000,dtype=float16,layout=sliced,values=ties,seed=7``."""
        dims, kw = [], {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in part:
                raise ValueError(f"--aina-case: {part!r} is not key=value")
            k, v = (s.strip() for s in part.split("=", 1))
            if k == "dtype":
                if v not in DTYPES:
                    raise ValueError(f"--aina-case: dtype {v!r}; expected one of {', '.join(DTYPES)}")
                kw["dtype"] = v
            elif k == "layout":
                if v not in LAYOUTS:
                    raise ValueError(f"--aina-case: layout {v!r}; expected one of {', '.join(LAYOUTS)}")
                kw["layout"] = v
            elif k == "values":
                if v not in VALUE_KINDS:
                    raise ValueError(f"--aina-case: values {v!r}; expected one of {', '.join(VALUE_KINDS)}")
                kw["values"] = v
            elif k == "seed":
                kw["seed"] = int(v)
            elif k == "batch":
                kw["batch"] = tuple(int(b) for b in v.split("x"))
            else:
                dims.append((k, int(v)))
        if "dtype" not in kw:
            raise ValueError("--aina-case: needs dtype=...")
        return cls(dims=tuple(dims), **kw)


@dataclass(frozen=True)
class BenchCase:
    dims: tuple[tuple[str, int], ...]
    dtype: str
    devices: tuple[str, ...] = ("cuda",)
    line: int | None = field(default=None, compare=False)

    @property
    def dim_map(self) -> dict[str, int]:
        return dict(self.dims)

    def label(self) -> str:
        return ",".join([f"{k}={v}" for k, v in self.dims] + [self.dtype])

    def as_case(self) -> Case:
        return Case(dims=self.dims, dtype=self.dtype)


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    implementation: str
    reference: str
    inputs: tuple[Input, ...]
    dims: dict[str, Dim]
    dtypes: tuple[str, ...]
    tolerance: dict[str, Tolerance]
    invariants: tuple[Invariant, ...] = ()
    examples: tuple[Case, ...] = ()
    benchmarks: tuple[BenchCase, ...] = ()
    args: dict = field(default_factory=dict)
    description: str = ""
    bytes_expr: str | None = None
    flops_expr: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)
    lines: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def layouts(self) -> tuple[str, ...]:
        """Layouts any input allows (the primary input's, in practice)."""
        seen: list[str] = []
        for inp in self.inputs:
            for lay in inp.layouts:
                if lay not in seen:
                    seen.append(lay)
        return tuple(seen)

    def line_of(self, *path) -> int | None:
        return _line_for(self.lines, tuple(path))

    def bytes_for(self, dims: dict[str, int], dtype: str) -> float | None:
        """Bytes one call moves, from the spec's model, or None if the spec has none."""
        return None if self.bytes_expr is None else evaluate(self.bytes_expr, self._names(dims, dtype))

    def flops_for(self, dims: dict[str, int], dtype: str) -> float | None:
        return None if self.flops_expr is None else evaluate(self.flops_expr, self._names(dims, dtype))

    def _names(self, dims: dict[str, int], dtype: str) -> dict:
        names: dict[str, Any] = dict(dims)
        names["elem"] = ELEMENT_SIZE[dtype]
        for inp in self.inputs:
            numel = math.prod(dims[d] for d in inp.shape)
            names[inp.name] = _TensorInfo(numel, ELEMENT_SIZE[inp.dtype or dtype])
        return names


@dataclass(frozen=True)
class _TensorInfo:
    _numel: int
    _size: int

    def numel(self) -> int:
        return self._numel

    def element_size(self) -> int:
        return self._size


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}


def evaluate(expr: str, names: dict) -> float:
    """Evaluate an arithmetic model expression; only numbers, names, + - * / // ** and
    ``t.numel()`` / ``t.element_size()`` are allowed (a spec is data, not code)."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Name):
            if node.id not in names or isinstance(names[node.id], _TensorInfo):
                raise ValueError(f"unknown name {node.id!r}; known: {', '.join(sorted(names))}")
            return names[node.id]
        if (isinstance(node, ast.Call) and not node.args and not node.keywords
                and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                and node.func.attr in ("numel", "element_size")):
            target = names.get(node.func.value.id)
            if not isinstance(target, _TensorInfo):
                raise ValueError(f"{node.func.value.id!r} is not an input")
            return getattr(target, node.func.attr)()
        raise ValueError(f"not allowed in a model expression: {ast.unparse(node)!r}")

    return float(ev(ast.parse(expr, mode="eval")))


# ---------------------------------------------------------------------------------------
# Loading


def load_spec(path: str | Path) -> Spec:
    """Read and check one spec; raise :class:`SpecError` listing every issue found."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError([SpecIssue(file, (), None, f"cannot read: {exc.strerror}")]) from None
    return parse_spec(text, file)


def parse_spec(text: str, file: str) -> Spec:
    data, lines = load_yaml(text, file)
    if not isinstance(data, dict):
        raise SpecError([SpecIssue(file, (), 1, f"expected a mapping at the top, got {type(data).__name__}")])
    issues = validate_schema(data, lines, file)
    if issues:
        raise SpecError(issues)
    spec = _build(data, lines, file)
    issues = _semantic_issues(spec, file)
    if issues:
        raise SpecError(issues)
    return spec


def _build(d: dict, lines: dict, file: str) -> Spec:
    dims = {k: Dim(k, v["min"], v["max"]) for k, v in d["dims"].items()}
    inputs = tuple(
        Input(name=k, shape=tuple(v["shape"]), batch_dims=v.get("batch_dims", False),
              layouts=tuple(v.get("layouts", ["contiguous"])), values=tuple(v.get("values", VALUE_KINDS)),
              dtype=v.get("dtype"))
        for k, v in d["inputs"].items())
    dtypes = tuple(d["dtypes"])
    invariants = []
    for i, inv in enumerate(d.get("invariants", [])):
        line = _line_for(lines, ("invariants", i))
        if isinstance(inv, str):
            invariants.append(Invariant(inv, {}, line))
        else:
            (name, params), = inv.items()
            invariants.append(Invariant(name, dict(params or {}), line))
    examples = []
    for i, ex in enumerate(d.get("examples", [])):
        line = _line_for(lines, ("examples", i))
        for dt in ([ex["dtype"]] if "dtype" in ex else dtypes):
            examples.append(Case(dims=tuple(ex["dims"].items()), dtype=dt, layout=ex.get("layout", "contiguous"),
                                 values=ex.get("values", "normal"), batch=tuple(ex["batch"]) if ex.get("batch") else None,
                                 seed=ex.get("seed", 0), line=line))
    benchmarks = tuple(
        BenchCase(dims=tuple(b["dims"].items()), dtype=b["dtype"], devices=tuple(b.get("devices", ["cuda"])),
                  line=_line_for(lines, ("benchmarks", i)))
        for i, b in enumerate(d.get("benchmarks", [])))
    obj = d.get("objectives", {})
    return Spec(path=Path(file), name=d["name"], implementation=d["implementation"], reference=d["reference"],
                inputs=inputs, dims=dims, dtypes=dtypes,
                tolerance={k: Tolerance(float(v["atol"]), float(v["rtol"])) for k, v in d["tolerance"].items()},
                invariants=tuple(invariants), examples=tuple(examples), benchmarks=benchmarks,
                args=dict(d.get("args", {})), description=d.get("description", ""),
                bytes_expr=obj.get("bytes"), flops_expr=obj.get("flops"), raw=d, lines=lines)


def _semantic_issues(spec: Spec, file: str) -> list[SpecIssue]:
    issues: list[SpecIssue] = []

    def issue(path: tuple, msg: str):
        issues.append(SpecIssue(file, path, spec.line_of(*path), msg))

    for name, dim in spec.dims.items():
        if dim.min > dim.max:
            issue(("dims", name), f"min {dim.min} is greater than max {dim.max}")
    for inp in spec.inputs:
        for j, dname in enumerate(inp.shape):
            if dname not in spec.dims:
                issue(("inputs", inp.name, "shape", j), f"dim {dname!r} is not declared under dims (declared: {', '.join(spec.dims)})")
    used = {d for inp in spec.inputs for d in inp.shape}
    for name in spec.dims:
        if name not in used:
            issue(("dims", name), "dim is not used by any input shape")
    for dt in spec.dtypes:
        if dt not in spec.tolerance:
            issue(("tolerance",), f"no tolerance for dtype {dt}; add tolerance.{dt}: {{atol: ..., rtol: ...}}")

    def check_dims(section: str, i: int, dims: dict):
        for dname in dims:
            if dname not in spec.dims:
                issue((section, i, "dims", dname), f"unknown dim {dname!r} (declared: {', '.join(spec.dims)})")
        for dname, dim in spec.dims.items():
            if dname not in dims:
                issue((section, i, "dims"), f"missing dim {dname!r}")
            elif not dim.min <= dims[dname] <= dim.max:
                issue((section, i, "dims", dname), f"{dims[dname]} is outside the domain [{dim.min}, {dim.max}]")

    for i, ex in enumerate(spec.raw.get("examples", [])):
        check_dims("examples", i, ex["dims"])
        if "dtype" in ex and ex["dtype"] not in spec.dtypes:
            issue(("examples", i, "dtype"), f"{ex['dtype']} is not one of the spec's dtypes ({', '.join(spec.dtypes)})")
        if "layout" in ex and ex["layout"] not in spec.layouts:
            issue(("examples", i, "layout"), f"{ex['layout']} is not allowed by any input (allowed: {', '.join(spec.layouts)})")
        if ex.get("batch"):
            first = spec.inputs[0]
            if not first.batch_dims:
                issue(("examples", i, "batch"), f"input {first.name!r} does not allow batch_dims")
            elif ex["dims"].get(first.shape[0]) != math.prod(ex["batch"]):
                issue(("examples", i, "batch"), f"the product of batch {ex['batch']} must equal {first.shape[0]}")
    for i, b in enumerate(spec.raw.get("benchmarks", [])):
        check_dims("benchmarks", i, b["dims"])
        if b["dtype"] not in spec.dtypes:
            issue(("benchmarks", i, "dtype"), f"{b['dtype']} is not one of the spec's dtypes ({', '.join(spec.dtypes)})")
    some = {n: d.min for n, d in spec.dims.items()}
    # With a shape naming an undeclared dim the model cannot be evaluated; that dim is
    # already reported above.
    shapes_ok = all(d in spec.dims for inp in spec.inputs for d in inp.shape)
    for key, expr in (("bytes", spec.bytes_expr), ("flops", spec.flops_expr)):
        if expr is not None and shapes_ok:
            try:
                evaluate(expr, spec._names(some, spec.dtypes[0]))
            except (ValueError, SyntaxError, ZeroDivisionError, OverflowError) as exc:
                issue(("objectives", key), f"cannot evaluate model {expr!r}: {exc}")
    return issues


def discover(paths: list[str | Path]) -> list[Path]:
    """Spec files under the given files or folders, sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.y*ml") if q.suffix in (".yaml", ".yml"))
        else:
            found.append(p)
    return found
