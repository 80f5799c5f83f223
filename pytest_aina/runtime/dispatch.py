"""Variant dispatch: which function serves a call, decided by a table that is data.

Each kernel has a table, ``kernels/variants/<kernel>.yaml``, that a reviewer reads and a
change extends::

    aina_dispatch: 1
    kernel: softmax
    variants:
      - name: generic                      # always there, serves whatever nothing else claims
        function: kernels.softmax:softmax_generic
      - name: wide_rows_sm90
        function: kernels.softmax:softmax_generic
        config: {BLOCK_N: 4096, num_warps: 16}       # keyword arguments bound to the function
        domain:                            # what it is specialised for; every part optional
          dims: {N: [32768, 131072]}       # inclusive ranges of the spec's named dims; null: no upper bound
          dtypes: [float16, bfloat16]
          arch: [sm_90]                    # sm_XY, gfxNNN, cpu; shell-style patterns (sm_9*) allowed
        evidence:                          # what it was merged with (the Reasoner compares production with it)
          device: NVIDIA H100 80GB HBM3
          dims: {M: 4096, N: 50304}
          dtype: bfloat16
          latency_s: 4.1e-05
          baseline_latency_s: 5.3e-05      # the generic variant, same run

Choosing a variant for a call (its dims, dtype, device architecture):

1. a variant *applies* when the call lies inside every range its domain states;
2. among those, the most specific wins: more constrained axes first (each dim range, the
   dtypes and the arch count one each); then the narrower domain (smaller sum of log2 of
   the dim ranges' widths, then fewer dtypes, then fewer arches); then the one listed
   first in the table;
3. the generic variant has no domain, so it applies to every call and wins only when
   nothing more specific does. It is passed to :func:`dispatcher` by the kernel module
   itself, so it stays reachable even without a table, and ``AINA_DISPATCH_PIN=generic``
   (or ``softmax=generic,rms_norm=...``) pins calls to a named variant: the rollback
   switch that needs no deploy.

The choice is cached per (dims, dtype, device): after the first call for a key, dispatch
costs computing the dims (or, with ``dims_from_first``, reading the first argument's
shape), one dict lookup, and the call. If the telemetry recorder of
pytest-aina is installed and active, the call is also timed (CUDA events on a GPU, the
wall clock elsewhere) and reported under the variant that served it; without
pytest-aina, kernels work the same.

Production code imports this module and the recorder, nothing else of pytest-aina (stdlib
and PyYAML at import; torch lazily, to describe a CUDA device). The Reasoner and the App read
tables with it too, so reading a repository's tables never runs that repository's code.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from pytest_aina.runtime import recorder as _telemetry

TABLE_VERSION = 1
DTYPES = ("float32", "float16", "bfloat16")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$")
_DIM = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_UNBOUNDED_WIDTH = 2 ** 40  # a range with no upper bound counts as this wide
_UNCONSTRAINED = 1 << 20  # "any dtype" / "any arch" counts as this many
_EVIDENCE_KEYS = {"device", "dims", "dtype", "latency_s", "baseline_latency_s", "commit", "pr", "measured_at", "note"}
_MAX_ROUTES = 4096  # distinct (dims, dtype, device) keys cached per kernel before the cache restarts


class DispatchTableError(ValueError):
    """A table that cannot be used; ``issues`` lists every problem as 'file:line: key: message'."""

    def __init__(self, issues: list[str]):
        self.issues = issues
        super().__init__("\n".join(issues))


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
        width = sum(math.log2((_UNBOUNDED_WIDTH if hi is None else hi - lo + 1)) for lo, hi in self.dims.values())
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


# ---------------------------------------------------------------------------------------
# Reading and checking tables


def _lines(node, path: tuple, out: dict) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _lines(v, path + (k.value,), out)
            out[path + (k.value,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out)


def _load_yaml(text: str, file: str):
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise DispatchTableError([f"{file}: the file is empty; expected a dispatch table"])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise DispatchTableError([f"{file}:{line}: not valid YAML: {exc.problem}"]) from None
    finally:
        loader.dispose()
    lines: dict = {}
    _lines(node, (), lines)
    return data, lines, node


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top>"


def parse_table(text: str, file: str, *, kernel: str | None = None) -> Table:
    """Parse and check a table; raise :class:`DispatchTableError` listing every issue."""
    data, lines, _ = _load_yaml(text, file)
    issues: list[str] = []

    def issue(path: tuple, msg: str) -> None:
        line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)
        issues.append(f"{file}:{line}: {_fmt(path)}: {msg}" if line else f"{file}: {_fmt(path)}: {msg}")

    if not isinstance(data, dict):
        raise DispatchTableError([f"{file}:1: expected a mapping with aina_dispatch, kernel, variants"])
    for key in sorted(set(data) - {"aina_dispatch", "kernel", "variants"}):
        issue((key,), "unknown key; expected one of: aina_dispatch, kernel, variants")
    if data.get("aina_dispatch") != TABLE_VERSION:
        issue(("aina_dispatch",), f"expected {TABLE_VERSION}, got {data.get('aina_dispatch')!r}")
    name = data.get("kernel")
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]*$", name):
        issue(("kernel",), f"expected the kernel's name (snake_case), got {name!r}")
    elif kernel is not None and name != kernel:
        issue(("kernel",), f"this is the table of {kernel!r} but it says {name!r}")
    raw = data.get("variants")
    if not isinstance(raw, list) or not raw:
        issue(("variants",), "expected a non-empty list of variants")
        raise DispatchTableError(issues)

    variants = []
    for i, e in enumerate(raw):
        v = _parse_variant(e, i, ("variants", i), issue, lines)
        if v is not None:
            variants.append(v)
    names = [v.name for v in variants]
    for v in variants:
        if names.count(v.name) > 1 and names.index(v.name) != v.index:
            issue(("variants", v.index, "name"), f"{v.name!r} is already the name of variants[{names.index(v.name)}]")
    generic = [v for v in variants if v.is_generic]
    if not any(v.name == "generic" for v in generic):
        issue(("variants",), "needs a variant named 'generic' with no domain: the one that serves every call")
    for v in variants:
        if v.name == "generic" and (v.config or not v.is_generic):
            issue(("variants", v.index), "'generic' takes no config and no domain: it is the kernel module's "
                                         "own generic function, which must serve any call")
    for v in generic:
        if v.name != "generic":
            issue(("variants", v.index), f"{v.name!r} has no domain; only 'generic' may serve everything "
                                         "(give it a domain, or it is unreachable)")
    seen: dict = {}
    for v in variants:
        sig = (tuple(sorted(v.dims.items())), v.dtypes and tuple(sorted(v.dtypes)), v.arch and tuple(sorted(v.arch)))
        if sig in seen and not v.is_generic:
            issue(("variants", v.index, "domain"), f"same domain as {seen[sig]!r}, which is listed first: "
                                                   f"{v.name!r} would never be chosen")
        seen.setdefault(sig, v.name)
    if issues:
        raise DispatchTableError(issues)
    return Table(kernel=name, variants=tuple(variants), path=Path(file))


def _parse_variant(e, i: int, at: tuple, issue, lines) -> Variant | None:
    if not isinstance(e, dict):
        issue(at, "expected a mapping with name and function")
        return None
    allowed = {"name", "function", "config", "domain", "evidence", "note"}
    for key in sorted(set(e) - allowed):
        issue(at + (key,), f"unknown key; expected one of: {', '.join(sorted(allowed))}")
    ok = True
    if not isinstance(e.get("name"), str) or not _NAME.match(e["name"]):
        issue(at + ("name",), f"expected a name of letters, digits, _ . - (got {e.get('name')!r})")
        ok = False
    if not isinstance(e.get("function"), str) or not _IMPORT_PATH.match(e["function"]):
        issue(at + ("function",), f"expected 'module:attribute', got {e.get('function')!r}")
        ok = False
    config = e.get("config", {})
    if not isinstance(config, dict) or not all(isinstance(k, str) and isinstance(v, (int, float, str, bool))
                                               for k, v in config.items()):
        issue(at + ("config",), "expected a mapping of keyword arguments to numbers, strings or booleans")
        ok = False
    dims, dtypes, arch = {}, None, None
    dom = e.get("domain")
    if dom is not None:
        if not isinstance(dom, dict) or not dom:
            issue(at + ("domain",), "expected a mapping with dims, dtypes and/or arch (leave it out for 'everything')")
            return None
        for key in sorted(set(dom) - {"dims", "dtypes", "arch"}):
            issue(at + ("domain", key), "unknown key; expected one of: arch, dims, dtypes")
            ok = False
        for dname, rng in (dom.get("dims") or {}).items():
            where = at + ("domain", "dims", dname)
            if not isinstance(dname, str) or not _DIM.match(dname):
                issue(where, "expected a dim name from the kernel's spec")
                ok = False
            elif (not isinstance(rng, list) or len(rng) != 2 or not isinstance(rng[0], int) or isinstance(rng[0], bool)
                  or rng[0] < 0 or not (rng[1] is None or (isinstance(rng[1], int) and not isinstance(rng[1], bool)))):
                issue(where, f"expected [lo, hi] with integers lo >= 0 and hi (or null for no bound), got {rng!r}")
                ok = False
            elif rng[1] is not None and rng[1] < rng[0]:
                issue(where, f"empty range: hi {rng[1]} < lo {rng[0]}")
                ok = False
            else:
                dims[dname] = (rng[0], rng[1])
        if "dims" in dom and not isinstance(dom["dims"], dict):
            issue(at + ("domain", "dims"), "expected a mapping of dim name to [lo, hi]")
            ok = False
        if "dtypes" in dom:
            d = dom["dtypes"]
            if not isinstance(d, list) or not d or any(x not in DTYPES for x in d):
                issue(at + ("domain", "dtypes"), f"expected a non-empty list of: {', '.join(DTYPES)}; got {d!r}")
                ok = False
            else:
                dtypes = tuple(d)
        if "arch" in dom:
            a = dom["arch"]
            if not isinstance(a, list) or not a or not all(isinstance(x, str) and x for x in a):
                issue(at + ("domain", "arch"), f"expected a non-empty list like [sm_90] or [sm_8*]; got {a!r}")
                ok = False
            else:
                arch = tuple(a)
    ev = e.get("evidence")
    if ev is not None:
        if not isinstance(ev, dict):
            issue(at + ("evidence",), "expected a mapping (device, dims, dtype, latency_s, ...)")
            ok = False
        else:
            for key in sorted(set(ev) - _EVIDENCE_KEYS):
                issue(at + ("evidence", key), f"unknown key; expected one of: {', '.join(sorted(_EVIDENCE_KEYS))}")
                ok = False
            for key in ("latency_s", "baseline_latency_s"):
                if key in ev and (isinstance(ev[key], bool) or not isinstance(ev[key], (int, float)) or not ev[key] > 0):
                    issue(at + ("evidence", key), f"expected a positive number of seconds, got {ev[key]!r}")
                    ok = False
            if "dims" in ev and (not isinstance(ev["dims"], dict)
                                 or not all(isinstance(v, int) and not isinstance(v, bool) for v in ev["dims"].values())):
                issue(at + ("evidence", "dims"), "expected a mapping of dim name to integer")
                ok = False
    if not ok:
        return None
    return Variant(name=e["name"], function=e["function"], config=dict(config), dims=dims, dtypes=dtypes,
                   arch=arch, evidence=dict(ev) if ev else None, index=i, line=lines.get(at))


def load_table(path: str | Path, *, kernel: str | None = None) -> Table:
    """Read and check one table file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DispatchTableError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_table(text, str(path), kernel=kernel if kernel is not None else path.stem)


def validate_table(path: str | Path, *, check_imports: bool = False) -> list[str]:
    """Every issue with a table file ('file:line: key: message'); [] when it is usable.
    ``check_imports`` also imports each variant's function."""
    try:
        table = load_table(path)
    except DispatchTableError as exc:
        return exc.issues
    issues = []
    if check_imports:
        for v in table.variants:
            try:
                v.load()
            except Exception as exc:
                issues.append(f"{path}:{v.line}: variants[{v.index}].function: cannot import "
                              f"{v.function!r}: {type(exc).__name__}: {exc}")
    return issues


# ---------------------------------------------------------------------------------------
# Extending a table: the Changer's API


def add_variant(path: str | Path, entry: dict, *, comment: str | None = None) -> Table:
    """Append ``entry`` (a variant as plain data: name, function, config, domain, evidence)
    to the table at ``path``, keeping the file's text and comments, and return the new
    table. The result is checked before anything is written, and written atomically:
    an entry that would make the table invalid raises :class:`DispatchTableError` and
    leaves the file as it was. ``comment`` goes above the entry as ``# ...`` lines.
    """
    path = Path(path)
    text = path.read_text()
    _, _, root = _load_yaml(text, str(path))
    seq = next((v for k, v in root.value if k.value == "variants"), None) if isinstance(root, yaml.MappingNode) else None
    if not isinstance(seq, yaml.SequenceNode) or seq.flow_style or not seq.value:
        raise DispatchTableError([f"{path}: variants: must be a non-empty block list ('- name: ...') to append to"])
    last = seq.value[-1]
    indent = " " * last.start_mark.column  # column of the item's first key, after "- "
    dash = " " * (last.start_mark.column - 2)
    # the end of the last item is the end of its last scalar; insert after that line
    end = _last_scalar_end(last)
    cut = text.find("\n", end.index)
    cut = len(text) if cut < 0 else cut + 1
    body = yaml.safe_dump(entry, sort_keys=False, default_flow_style=None, width=120).rstrip("\n").splitlines()
    block = [f"{dash}# {c}" for c in (comment.splitlines() if comment else [])]
    block += [f"{dash}- {body[0]}"] + [f"{indent}{line}" for line in body[1:]]
    head = text[:cut] if text[:cut].endswith("\n") else text[:cut] + "\n"
    new_text = head + "\n".join(block) + "\n" + text[cut:]
    table = parse_table(new_text, str(path), kernel=path.stem)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(new_text)
    os.replace(tmp, path)
    return table


def _last_scalar_end(node):
    if isinstance(node, yaml.ScalarNode):
        return node.end_mark
    if isinstance(node, yaml.MappingNode):
        children = [c for kv in node.value for c in kv]
    else:
        children = node.value
    if node.flow_style or not children:
        return node.end_mark
    return max((_last_scalar_end(c) for c in children), key=lambda m: m.index)


# ---------------------------------------------------------------------------------------
# Dispatching calls


@dataclass(frozen=True)
class Route:
    """Where calls with one (dims, dtype, device) key go, and how the recorder names them."""

    variant: str
    fn: Callable
    record_key: tuple  # (kernel, variant, dims items, dtype, device name, arch, timing)
    cuda: bool


_DEVICE_INFO: dict = {}


def device_info(device) -> tuple[str, str]:
    """(name, arch) of a torch device: ("NVIDIA H100 80GB HBM3", "sm_90"), ("cpu", "cpu")."""
    info = _DEVICE_INFO.get(device)
    if info is None:
        if device.type == "cuda":
            import torch

            props = torch.cuda.get_device_properties(device)
            if getattr(torch.version, "hip", None):
                arch = getattr(props, "gcnArchName", "gfx").split(":")[0]
            else:
                arch = f"sm_{props.major}{props.minor}"
            info = (props.name, arch)
        else:
            info = (device.type, device.type)
        _DEVICE_INFO[device] = info
    return info


def _pins() -> dict[str, str]:
    """AINA_DISPATCH_PIN: 'generic' (every kernel) or 'softmax=generic,rms_norm=name'."""
    text = os.environ.get("AINA_DISPATCH_PIN", "").strip()
    if not text:
        return {}
    if "=" not in text:
        return {"*": text}
    return dict(part.strip().split("=", 1) for part in text.split(",") if part.strip())


def _cuda_elapsed(start, end) -> float:
    end.synchronize()  # on the recorder's thread, when the window closes
    return start.elapsed_time(end) / 1000.0


class Dispatcher:
    """Calls a kernel's best variant for each call; see the module docstring."""

    def __init__(self, kernel: str, dims: Callable[..., dict], generic: Callable, table: str | Path | None = None,
                 *, dims_from_first: bool = False):
        self.kernel = kernel
        self._dims = dims
        self._dims_from_first = dims_from_first
        self._generic = generic
        self._table_path = Path(table) if table is not None else default_table_path(kernel, generic)
        self._table: Table | None = None
        self._routes: dict = {}
        self._fns: dict[str, Callable] = {}
        self._pin: str | None = None
        self.resolutions = 0  # how many times a route was computed (not served from the cache)

    @property
    def table(self) -> Table:
        if self._table is None:
            fn = self._generic
            own = f"{fn.__module__}:{fn.__qualname__}"
            if self._table_path.exists():
                table = load_table(self._table_path, kernel=self.kernel)
                if table.generic.function != own:
                    raise DispatchTableError([f"{self._table_path}:{table.generic.line}: variants[{table.generic.index}]"
                                              f".function: 'generic' is {table.generic.function!r} but the kernel "
                                              f"module dispatches to {own}"])
            else:  # no table yet: the generic variant serves everything
                table = Table(self.kernel, (Variant("generic", own),))
            self._table = table
            pins = _pins()
            pin = pins.get(self.kernel, pins.get("*"))
            if pin is not None:
                self.pin(pin)
        return self._table

    def reload(self) -> None:
        """Re-read the table (after it changed) and forget every cached route."""
        self._table = None
        self._routes.clear()
        self._fns.clear()

    def pin(self, name: str | None) -> None:
        """Serve every call with the variant ``name`` (None: choose again per call)."""
        if name is not None and name != "generic" and self.table.get(name) is None:
            raise ValueError(f"{self.kernel}: no variant {name!r} in {self._table_path} "
                             f"(known: {', '.join(v.name for v in self.table.variants)})")
        self._pin = name
        self._routes.clear()

    def variant(self, name: str) -> Callable:
        """The callable of a named variant ('generic' is always there)."""
        fn = self._fns.get(name)
        if fn is None:
            if name == "generic":
                fn = self._generic
            else:
                v = self.table.get(name)
                if v is None:
                    raise ValueError(f"{self.kernel}: no variant {name!r} in {self._table_path}")
                fn = v.load()
            self._fns[name] = fn
        return fn

    def choose(self, dims: dict, dtype: str, arch: str) -> str:
        """The name of the variant that serves a call with these dims, dtype and arch."""
        table = self.table
        if self._pin is not None:
            return self._pin
        return table.select(dims, dtype, arch).name

    def _route(self, key, dims: dict, x) -> Route:
        self.resolutions += 1
        dtype = str(x.dtype).removeprefix("torch.")
        name, arch = device_info(x.device)
        chosen = self.choose(dims, dtype, arch)
        cuda = x.device.type == "cuda"
        route = Route(chosen, self.variant(chosen),
                      (self.kernel, chosen, tuple(dims.items()), dtype, name, arch, "cuda_event" if cuda else "wall"),
                      cuda)
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[key] = route
        return route

    def __call__(self, *args, **kwargs):
        x = args[0]
        if self._dims_from_first:
            # the dims are a function of x's shape alone: key on it, and compute them only
            # when the route is not cached
            key = (x.shape, x.dtype, x.device)
            route = self._routes.get(key)
            if route is None:
                route = self._route(key, self._dims(*args, **kwargs), x)
        else:
            dims = self._dims(*args, **kwargs)
            key = (*dims.values(), x.dtype, x.device)
            route = self._routes.get(key)
            if route is None:
                route = self._route(key, dims, x)
        rec = _telemetry.ACTIVE if _telemetry is not None else None
        if rec is None:
            return route.fn(*args, **kwargs)
        if route.cuda:
            torch = sys.modules["torch"]
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = route.fn(*args, **kwargs)
            end.record()
            rec.add_pending(route.record_key, functools.partial(_cuda_elapsed, start, end))
            return out
        t0 = time.perf_counter()
        out = route.fn(*args, **kwargs)
        rec.add(route.record_key, time.perf_counter() - t0)
        return out


def default_table_path(kernel: str, generic: Callable) -> Path:
    """``variants/<kernel>.yaml`` beside the module that defines the kernel's generic variant."""
    module = sys.modules[generic.__module__]
    return Path(module.__file__).resolve().parent / "variants" / f"{kernel}.yaml"


def dispatcher(kernel: str, dims: Callable[..., dict], generic: Callable, *, table: str | Path | None = None,
               dims_from_first: bool = False) -> Dispatcher:
    """The dispatch function of a kernel module's public entry point::

        _dispatch = dispatcher("softmax", softmax_dims, softmax_generic, dims_from_first=True)

        def softmax(x):
            return _dispatch(x)

    ``dims`` maps the call's arguments to the spec's named dims; ``generic`` is the
    variant that always remains. ``dims_from_first`` says the dims depend on the first
    argument's shape only (true of row-wise kernels): the cache is then keyed on that
    shape, dtype and device, and ``dims`` runs only when a route is not cached. The table
    (``kernels/variants/<kernel>.yaml`` unless ``table`` is given) is read on the first call.
    """
    return Dispatcher(kernel, dims, generic, table, dims_from_first=dims_from_first)
