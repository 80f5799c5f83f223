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
from pytest_aina.spec import relations
from pytest_aina.spec.reader import AcceptedSpecs, SpecError, SpecIssue, _line_for, load_yaml, validate_schema
from pytest_aina.spec.schema import CASE_DTYPE, DTYPES, INT_DTYPES, LAYOUTS, SENTINEL_MODES, VALUE_KINDS, _document

#: Invariants about a call (its inputs' memory, a second call), not about one tensor's values:
#: a gradient's own invariants cannot be these.
CALL_INVARIANTS = ("no_input_mutation", "no_output_aliasing", "deterministic")

ELEMENT_SIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "int32": 4, "int64": 8}


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
    #: alternatives, each checked; None stands for the case's dtype. () when not given.
    dtypes: tuple[str | None, ...] = ()
    range: tuple[int | str, int | str] | None = None  # integer inputs: [lo, hi), over dims
    sentinel: Sentinel | None = None
    relations: tuple[Relation, ...] = ()
    #: float inputs: the standard deviation of ``normal`` values (logits have std ~3, not 1);
    #: the other value kinds keep their own magnitudes, which are edge cases by design
    scale: float = 1.0

    @property
    def dtype_choices(self) -> tuple[str | None, ...]:
        return self.dtypes or (self.dtype,)

    def dtype_for(self, case: Case) -> str:
        """This input's dtype in ``case``."""
        chosen = dict(case.input_dtypes).get(self.name, self.dtype_choices[0])
        return chosen or case.dtype

    @property
    def integer(self) -> bool:
        return any(d in INT_DTYPES for d in self.dtype_choices)


@dataclass(frozen=True)
class Sentinel:
    """A special integer value (``ignore_index``) drawn at ``frequency``: ``value``, or the
    case's value of the ``args`` entry ``arg`` (so the sentinel follows that arg's alternatives)."""

    value: int | None
    frequency: float
    arg: str | None = None

    @property
    def label(self) -> str:
        return f"args.{self.arg}" if self.arg else str(self.value)

    def value_for(self, args: dict) -> int:
        """The sentinel in a call with these ``args``."""
        return int(args[self.arg]) if self.arg else int(self.value)


@dataclass(frozen=True)
class Relation:
    """A named relation of one input to others (:mod:`pytest_aina.spec.relations`)."""

    name: str
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def definition(self) -> relations.RelationDef:
        return relations.REGISTRY[self.name]

    @property
    def key(self) -> str:
        return f"{self.name}({self.params.get('input')})"


@dataclass(frozen=True)
class Tolerance:
    """``|out - ref| <= atol + rtol * |ref| + ctol * magnitude`` (magnitude: see :class:`Output`)."""

    atol: float
    rtol: float
    #: a number, or an expression over dims (``"3 * (K + 1) * 2**-24"``: a float32 sum over K
    #: terms), evaluated per case by :meth:`at`
    ctol: float | str = 0.0

    def at(self, dims: dict[str, int]) -> Tolerance:
        """This tolerance for a case of these dims (``ctol`` evaluated)."""
        if isinstance(self.ctol, str):
            return Tolerance(self.atol, self.rtol, evaluate(self.ctol, dims))
        return self


@dataclass(frozen=True)
class Output:
    """One named output of the kernel. ``tolerance`` None: the spec's; ``in_place``: the
    input the implementation overwrites with it instead of returning it; ``magnitude``:
    what ``ctol`` scales with (``abs_inputs`` or ``module:function``)."""

    name: str
    shape: tuple[str, ...] | None = None
    tolerance: dict[str, Tolerance] | None = None
    invariants: tuple[Invariant, ...] = ()
    in_place: str | None = None
    magnitude: str | None = None


@dataclass(frozen=True)
class Gradient:
    """The gradient of one input, checked against the reference's autograd. ``in_place_when``:
    the ``args`` under which the implementation writes this gradient into the input itself
    (None: never; ``{}``: always)."""

    input: str
    tolerance: dict[str, Tolerance] | None = None
    magnitude: str | None = None
    in_place_when: dict | None = None
    #: invariants of this gradient alone (they see it as the output, the reference's as ref)
    invariants: tuple[Invariant, ...] = ()

    def in_place(self, args: dict) -> bool:
        """Whether a call with these ``args`` writes the gradient into its input."""
        return self.in_place_when is not None and all(args.get(k) == v for k, v in self.in_place_when.items())


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
    #: the chosen alternative of each ``args`` entry that has several, and of each input's
    #: ``dtypes``; only the entries that differ from the first alternative.
    args: tuple[tuple[str, Any], ...] = ()
    input_dtypes: tuple[tuple[str, str], ...] = ()
    sentinels: str = "some"  # integer inputs with a sentinel: some, none or all of it

    @property
    def dim_map(self) -> dict[str, int]:
        return dict(self.dims)

    def _extras(self) -> list[str]:
        parts = [f"{k}={v}" for k, v in self.args]
        parts += [f"{k}:{v}" for k, v in self.input_dtypes]
        if self.sentinels != "some":
            parts.append(f"sentinels={self.sentinels}")
        return parts

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.dims]
        if self.batch:
            parts.append("batch=" + "x".join(map(str, self.batch)))
        parts.append(self.dtype)
        if self.layout != "contiguous":
            parts.append(self.layout)
        if self.values != "normal":
            parts.append(self.values)
        return ",".join(parts + self._extras())

    def to_arg(self) -> str:
        """The ``--aina-case`` text that reproduces exactly this case."""
        parts = [f"{k}={v}" for k, v in self.dims]
        if self.batch:
            parts.append("batch=" + "x".join(map(str, self.batch)))
        parts += [f"dtype={self.dtype}", f"layout={self.layout}", f"values={self.values}", f"seed={self.seed}"]
        parts += [f"arg.{k}={v}" for k, v in self.args]
        parts += [f"dtype.{k}={v}" for k, v in self.input_dtypes]
        if self.sentinels != "some":
            parts.append(f"sentinels={self.sentinels}")
        return ",".join(parts)

    def as_dict(self) -> dict:
        d = {"dims": self.dim_map, "dtype": self.dtype, "layout": self.layout, "values": self.values, "seed": self.seed}
        if self.batch:
            d["batch"] = list(self.batch)
        if self.args:
            d["args"] = dict(self.args)
        if self.input_dtypes:
            d["input_dtypes"] = dict(self.input_dtypes)
        if self.sentinels != "some":
            d["sentinels"] = self.sentinels
        return d

    @classmethod
    def from_arg(cls, text: str) -> Case:
        """Parse ``M=3,N=1000,dtype=float16,layout=sliced,values=ties,seed=7``."""
        dims, kw, args, input_dtypes = [], {}, [], []
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
            elif k == "sentinels":
                if v not in SENTINEL_MODES:
                    raise ValueError(f"--aina-case: sentinels {v!r}; expected one of {', '.join(SENTINEL_MODES)}")
                kw["sentinels"] = v
            elif k.startswith("arg."):
                args.append((k[4:], _scalar(v)))
            elif k.startswith("dtype."):
                input_dtypes.append((k[6:], v))
            else:
                dims.append((k, int(v)))
        if "dtype" not in kw:
            raise ValueError("--aina-case: needs dtype=...")
        return cls(dims=tuple(dims), args=tuple(args), input_dtypes=tuple(input_dtypes), **kw)


def _scalar(text: str) -> Any:
    """An ``arg.NAME=VALUE`` value as YAML would read it: a number, a boolean or a string."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None, "null": None}.get(text.lower(), text)


@dataclass(frozen=True)
class BenchCase:
    dims: tuple[tuple[str, int], ...]
    dtype: str
    devices: tuple[str, ...] = ("cuda",)
    line: int | None = field(default=None, compare=False)
    #: the chosen alternative of ``args`` entries, where not the default (``causal=True``)
    args: tuple[tuple[str, Any], ...] = ()
    #: what is timed: the call (``forward``), or the gradients for one upstream gradient
    #: (``backward``, the forward run before the clock starts)
    phase: str = "forward"

    @property
    def dim_map(self) -> dict[str, int]:
        return dict(self.dims)

    def label(self) -> str:
        phase = [] if self.phase == "forward" else [f"phase={self.phase}"]
        return ",".join([f"{k}={v}" for k, v in self.dims] + [self.dtype] + [f"{k}={v}" for k, v in self.args] + phase)

    def as_case(self) -> Case:
        return Case(dims=self.dims, dtype=self.dtype, args=self.args)


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
    #: every ``args`` entry with several values: its alternatives, the default first
    arg_alternatives: dict[str, tuple] = field(default_factory=dict)
    outputs: tuple[Output, ...] = ()  # () : one unnamed output, checked with ``tolerance``
    gradients: tuple[Gradient, ...] = ()
    upstream_layouts: tuple[str, ...] = ("contiguous",)
    upstream_values: tuple[str, ...] = ("normal", "mixed")
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

    def input(self, name: str) -> Input:
        return next(i for i in self.inputs if i.name == name)

    def tolerance_of(self, owner: Output | Gradient | None, dtype: str) -> Tolerance:
        """The tolerance an output or a gradient is checked with in ``dtype``."""
        own = owner.tolerance if owner is not None else None
        return own[dtype] if own and dtype in own else self.tolerance[dtype]

    def args_for(self, case: Case) -> dict:
        return self.args | dict(case.args)

    def line_of(self, *path) -> int | None:
        return _line_for(self.lines, tuple(path))

    def bytes_for(self, dims: dict[str, int], dtype: str, args: dict | None = None) -> float | None:
        """Bytes one call moves, from the spec's model, or None if the spec has none.
        ``args``: the call's (default: the spec's defaults)."""
        return None if self.bytes_expr is None else evaluate(self.bytes_expr, self._names(dims, dtype, args))

    def flops_for(self, dims: dict[str, int], dtype: str, args: dict | None = None) -> float | None:
        return None if self.flops_expr is None else evaluate(self.flops_expr, self._names(dims, dtype, args))

    def _names(self, dims: dict[str, int], dtype: str, args: dict | None = None) -> dict:
        # numeric and boolean args (0 / 1) by name, under the dims: "/ (1 + causal)"
        chosen = self.args | (args or {})
        names: dict[str, Any] = {
            k: int(v) if isinstance(v, bool) else v for k, v in chosen.items() if isinstance(v, (int, float))
        }
        names |= dict(dims)
        names["elem"] = ELEMENT_SIZE[dtype]
        for inp in self.inputs:
            numel = math.prod(dims[d] for d in inp.shape)
            names[inp.name] = _TensorInfo(numel, ELEMENT_SIZE[inp.dtype_choices[0] or dtype])
        return names


@dataclass(frozen=True)
class _TensorInfo:
    _numel: int
    _size: int

    def numel(self) -> int:
        return self._numel

    def element_size(self) -> int:
        return self._size


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}


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
        if (
            isinstance(node, ast.Call)
            and not node.args
            and not node.keywords
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.attr in ("numel", "element_size")
        ):
            target = names.get(node.func.value.id)
            if not isinstance(target, _TensorInfo):
                raise ValueError(f"{node.func.value.id!r} is not an input")
            return getattr(target, node.func.attr)()
        raise ValueError(f"not allowed in a model expression: {ast.unparse(node)!r}")

    return float(ev(ast.parse(expr, mode="eval")))


# ---------------------------------------------------------------------------------------
# Loading


def load_spec(path: str | Path, *, accepted: AcceptedSpecs | None = None) -> Spec:
    """Read and check one spec; raise :class:`SpecError` listing every issue found.
    ``accepted``: texts the schema accepted before, not validated again (the plugin's
    collection passes one)."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError([SpecIssue(file, (), None, f"cannot read: {exc.strerror}")]) from None
    return parse_spec(text, file, accepted=accepted)


#: Spec texts the schema accepted in this process, when no ``accepted`` store is given (the
#: plugin without pytest's cache, as in the sandbox): a stage forked from the warm
#: template, which validated the spec before the fork, does not validate it again (~30 ms
#: of jsonschema per stage). Known by the schema document too, as ``AcceptedSpecs`` does.
_schema_accepted: set[tuple[str, str]] = set()


class _AcceptedHere:
    """``AcceptedSpecs``' interface over :data:`_schema_accepted` (this process only)."""

    def __contains__(self, text: str) -> bool:
        return (_document(), text) in _schema_accepted

    def add(self, text: str) -> None:
        _schema_accepted.add((_document(), text))


def parse_spec(text: str, file: str, *, accepted: AcceptedSpecs | None = None) -> Spec:
    data, lines = load_yaml(text, file)
    if not isinstance(data, dict):
        raise SpecError([SpecIssue(file, (), 1, f"expected a mapping at the top, got {type(data).__name__}")])
    known = accepted if accepted is not None else _AcceptedHere()
    if text not in known:
        issues = validate_schema(data, lines, file)
        if issues:
            raise SpecError(issues)
        known.add(text)
    spec = _build(data, lines, file)
    issues = _semantic_issues(spec, file)
    if issues:
        raise SpecError(issues)
    return spec


def _invariants(items: list, lines: dict, path: tuple) -> tuple[Invariant, ...]:
    out = []
    for i, inv in enumerate(items):
        line = _line_for(lines, path + (i,))
        if isinstance(inv, str):
            out.append(Invariant(inv, {}, line))
        else:
            ((name, params),) = inv.items()
            out.append(Invariant(name, dict(params or {}), line))
    return tuple(out)


def _tolerances(d: dict | None) -> dict[str, Tolerance] | None:
    if d is None:
        return None
    return {k: Tolerance(float(v["atol"]), float(v["rtol"]), _ctol(v.get("ctol", 0.0))) for k, v in d.items()}


def _ctol(value: float | str) -> float | str:
    return value if isinstance(value, str) else float(value)


def _input(k: str, v: dict) -> Input:
    sentinel = v.get("sentinel")
    return Input(
        name=k,
        shape=tuple(v["shape"]),
        batch_dims=v.get("batch_dims", False),
        layouts=tuple(v.get("layouts", ["contiguous"])),
        values=tuple(v.get("values", VALUE_KINDS)),
        dtype=v.get("dtype"),
        dtypes=tuple(None if t == CASE_DTYPE else t for t in v.get("dtypes", ())),
        range=tuple(v["range"]) if "range" in v else None,
        sentinel=_sentinel(sentinel) if sentinel else None,
        relations=tuple(Relation(n, dict(p)) for r in v.get("relations", ()) for n, p in r.items()),
        scale=float(v.get("scale", 1.0)),
    )


def _sentinel(d: dict) -> Sentinel:
    value = d["value"]
    if isinstance(value, dict):
        return Sentinel(None, float(d["frequency"]), arg=value["arg"])
    return Sentinel(int(value), float(d["frequency"]))


def _build(d: dict, lines: dict, file: str) -> Spec:
    dims = {k: Dim(k, v["min"], v["max"]) for k, v in d["dims"].items()}
    inputs = tuple(_input(k, v) for k, v in d["inputs"].items())
    dtypes = tuple(d["dtypes"])
    invariants = _invariants(d.get("invariants", []), lines, ("invariants",))
    raw_args = dict(d.get("args", {}))
    alternatives = {k: tuple(v) for k, v in raw_args.items() if isinstance(v, list)}
    args = {k: (v[0] if isinstance(v, list) else v) for k, v in raw_args.items()}
    examples = []
    for i, ex in enumerate(d.get("examples", [])):
        line = _line_for(lines, ("examples", i))
        # Only the entries that differ from the defaults: an example naming the default is
        # the same case as one that does not.
        ex_args = tuple((k, v) for k, v in (ex.get("args") or {}).items() if args.get(k) != v)
        firsts = {inp.name: inp.dtype_choices[0] for inp in inputs}
        ex_dtypes = tuple((k, v) for k, v in (ex.get("input_dtypes") or {}).items() if firsts.get(k) != v)
        for dt in [ex["dtype"]] if "dtype" in ex else dtypes:
            examples.append(
                Case(
                    dims=tuple(ex["dims"].items()),
                    dtype=dt,
                    layout=ex.get("layout", "contiguous"),
                    values=ex.get("values", "normal"),
                    batch=tuple(ex["batch"]) if ex.get("batch") else None,
                    seed=ex.get("seed", 0),
                    line=line,
                    args=ex_args,
                    input_dtypes=ex_dtypes,
                    sentinels=ex.get("sentinels", "some"),
                )
            )
    outputs = tuple(
        Output(
            name=k,
            shape=tuple(v["shape"]) if "shape" in v else None,
            tolerance=_tolerances(v.get("tolerance")),
            invariants=_invariants(v.get("invariants", []), lines, ("outputs", k, "invariants")),
            in_place=v.get("in_place"),
            magnitude=v.get("magnitude"),
        )
        for k, v in (d.get("outputs") or {}).items()
    )
    gradients = tuple(
        Gradient(
            k,
            _tolerances((v or {}).get("tolerance")),
            (v or {}).get("magnitude"),
            dict((v or {})["in_place"].get("when") or {}) if "in_place" in (v or {}) else None,
            _invariants((v or {}).get("invariants", []), lines, ("gradients", k, "invariants")),
        )
        for k, v in (d.get("gradients") or {}).items()
    )
    upstream = d.get("upstream") or {}
    benchmarks = tuple(
        BenchCase(
            dims=tuple(b["dims"].items()),
            dtype=b["dtype"],
            devices=tuple(b.get("devices", ["cuda"])),
            line=_line_for(lines, ("benchmarks", i)),
            args=tuple((k, v) for k, v in (b.get("args") or {}).items() if args.get(k) != v),
            phase=b.get("phase", "forward"),
        )
        for i, b in enumerate(d.get("benchmarks", []))
    )
    obj = d.get("objectives", {})
    return Spec(
        path=Path(file),
        name=d["name"],
        implementation=d["implementation"],
        reference=d["reference"],
        inputs=inputs,
        dims=dims,
        dtypes=dtypes,
        tolerance={k: Tolerance(float(v["atol"]), float(v["rtol"])) for k, v in d["tolerance"].items()},
        invariants=tuple(invariants),
        examples=tuple(examples),
        benchmarks=benchmarks,
        args=args,
        description=d.get("description", ""),
        bytes_expr=obj.get("bytes"),
        flops_expr=obj.get("flops"),
        arg_alternatives=alternatives,
        outputs=outputs,
        gradients=gradients,
        upstream_layouts=tuple(upstream.get("layouts", ["contiguous"])),
        upstream_values=tuple(upstream.get("values", ["normal", "mixed"])),
        raw=d,
        lines=lines,
    )


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
                issue(
                    ("inputs", inp.name, "shape", j),
                    f"dim {dname!r} is not declared under dims (declared: {', '.join(spec.dims)})",
                )
    _new_key_issues(spec, issue)
    used = {d for inp in spec.inputs for d in inp.shape}
    used |= {d for out in spec.outputs for d in (out.shape or ())}
    for name in spec.dims:
        if name not in used:
            issue(("dims", name), "dim is not used by any input shape")
    owners = [("outputs", o.name, o.tolerance) for o in spec.outputs]
    owners += [("gradients", g.input, g.tolerance) for g in spec.gradients]
    for section, name, tols in owners:
        for dt, tol in (tols or {}).items():
            if isinstance(tol.ctol, str):
                try:
                    value = evaluate(tol.ctol, {n: d.min for n, d in spec.dims.items()})
                except (ValueError, SyntaxError, ZeroDivisionError, OverflowError) as exc:
                    issue((section, name, "tolerance", dt, "ctol"), f"cannot evaluate {tol.ctol!r}: {exc}")
                    continue
                if value < 0:
                    issue((section, name, "tolerance", dt, "ctol"), f"{tol.ctol!r} is negative ({value:g})")
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
            issue(
                ("examples", i, "layout"),
                f"{ex['layout']} is not allowed by any input (allowed: {', '.join(spec.layouts)})",
            )
        if ex.get("batch"):
            first = spec.inputs[0]
            if not first.batch_dims:
                issue(("examples", i, "batch"), f"input {first.name!r} does not allow batch_dims")
            elif ex["dims"].get(first.shape[0]) != math.prod(ex["batch"]):
                issue(("examples", i, "batch"), f"the product of batch {ex['batch']} must equal {first.shape[0]}")
    for i, b in enumerate(spec.raw.get("benchmarks", [])):
        check_dims("benchmarks", i, b["dims"])
        if b.get("phase") == "backward" and not spec.gradients:
            issue(("benchmarks", i, "phase"), "phase backward needs gradients: the spec names none")
        if b["dtype"] not in spec.dtypes:
            issue(
                ("benchmarks", i, "dtype"), f"{b['dtype']} is not one of the spec's dtypes ({', '.join(spec.dtypes)})"
            )
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


def _new_key_issues(spec: Spec, issue) -> None:
    """The rules of integer inputs, relations, outputs and gradients a schema cannot state."""
    names = {i.name: i for i in spec.inputs}
    shapes = {i.name: i.shape for i in spec.inputs}
    for inp in spec.inputs:
        kinds = {d in INT_DTYPES for d in inp.dtype_choices if d is not None} | (
            {False} if None in inp.dtype_choices else set()
        )
        if len(kinds) > 1:
            issue(("inputs", inp.name, "dtypes"), "mixes integer and floating dtypes")
        if inp.integer and inp.scale != 1.0:
            issue(("inputs", inp.name, "scale"), "scale is for float inputs (integer inputs are drawn from range)")
        if (inp.range is not None or inp.sentinel is not None) and not inp.integer:
            issue(("inputs", inp.name), "range and sentinel are for integer inputs (dtype int32 or int64)")
        if inp.sentinel is not None and inp.sentinel.arg is not None:
            arg = inp.sentinel.arg
            values = spec.arg_alternatives.get(arg, (spec.args[arg],)) if arg in spec.args else ()
            if not values:
                issue(("inputs", inp.name, "sentinel", "value"), f"{arg!r} is not one of args")
            elif not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                issue(("inputs", inp.name, "sentinel", "value"), f"args.{arg} must be an integer in every alternative")
        if inp.integer and inp.range is None:
            issue(("inputs", inp.name), "an integer input needs range: [lo, hi)")
        for j, bound in enumerate(inp.range or ()):
            if isinstance(bound, str):
                try:
                    evaluate(bound, {n: d.min for n, d in spec.dims.items()})
                except (ValueError, SyntaxError, ZeroDivisionError) as exc:
                    issue(("inputs", inp.name, "range", j), f"cannot evaluate {bound!r}: {exc}")
        for j, rel in enumerate(inp.relations):
            other = rel.params.get("input")
            if other not in names or other == inp.name:
                issue(("inputs", inp.name, "relations", j), f"{rel.name}: {other!r} is not another input")
                continue
            msg = rel.definition.shape_issue(shapes, inp.name, rel.params)
            if msg:
                issue(("inputs", inp.name, "relations", j), msg)
    for out in spec.outputs:
        for j, dname in enumerate(out.shape or ()):
            if dname not in spec.dims:
                issue(("outputs", out.name, "shape", j), f"dim {dname!r} is not declared under dims")
        if out.in_place is not None and out.in_place not in names:
            issue(("outputs", out.name, "in_place"), f"{out.in_place!r} is not an input")
        for dt in spec.dtypes:
            if out.tolerance is not None and dt not in out.tolerance:
                issue(("outputs", out.name, "tolerance"), f"no tolerance for dtype {dt}")
    for g in spec.gradients:
        if g.input not in names:
            issue(("gradients", g.input), f"{g.input!r} is not an input")
        elif names[g.input].integer:
            issue(("gradients", g.input), "an integer input has no gradient")
        for dt in spec.dtypes:
            if g.tolerance is not None and dt not in g.tolerance:
                issue(("gradients", g.input, "tolerance"), f"no tolerance for dtype {dt}")
        for j, inv in enumerate(g.invariants):
            if inv.name in CALL_INVARIANTS:
                issue(
                    ("gradients", g.input, "invariants", j),
                    f"{inv.name} is about the call, not a gradient's values: state it under invariants",
                )
        for k, v in (g.in_place_when or {}).items():
            if k not in spec.args:
                issue(("gradients", g.input, "in_place", "when", k), f"{k!r} is not one of args")
            elif v not in spec.arg_alternatives.get(k, (spec.args[k],)):
                issue(("gradients", g.input, "in_place", "when", k), f"{v!r} is not an alternative of args.{k}")
    if spec.gradients and any(o.in_place for o in spec.outputs):
        issue(("gradients",), "gradients are not checked for kernels with in_place outputs")
    for section in ("examples", "benchmarks"):
        for i, ex in enumerate(spec.raw.get(section, [])):
            for k, v in (ex.get("args") or {}).items():
                if k not in spec.args:
                    issue((section, i, "args", k), f"{k!r} is not one of args")
                elif v not in spec.arg_alternatives.get(k, (spec.args[k],)):
                    issue((section, i, "args", k), f"{v!r} is not an alternative of args.{k}")
    for i, ex in enumerate(spec.raw.get("examples", [])):
        for k, v in (ex.get("input_dtypes") or {}).items():
            choices = names[k].dtype_choices if k in names else ()
            if v not in choices and not (None in choices and v in spec.dtypes):
                issue(("examples", i, "input_dtypes", k), f"{v!r} is not one of input {k!r}'s dtypes")


def discover(paths: list[str | Path]) -> list[Path]:
    """Spec files under the given files or folders, sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.y*ml") if q.suffix in (".yaml", ".yml"))
        else:
            found.append(p)
    return found
