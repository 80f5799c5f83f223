"""Reading and checking a dispatch table file, with the line of every problem.

The format, one file per kernel (``kernels/variants/<kernel>.yaml``), that a reviewer reads
and a change extends::

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

Reading never imports a variant's function (only :func:`validate_table` with
``check_imports`` does), so the Reasoner and the App read a repository's tables without
running that repository's code. Stdlib and PyYAML only.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pytest_aina.runtime.dispatch.variants import Table, Variant

TABLE_VERSION = 1
DTYPES = ("float32", "float16", "bfloat16")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$")
_DIM = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_EVIDENCE_KEYS = {"device", "dims", "dtype", "latency_s", "baseline_latency_s", "commit", "pr", "measured_at", "note"}


class DispatchTableError(ValueError):
    """A table that cannot be used; ``issues`` lists every problem as 'file:line: key: message'."""

    def __init__(self, issues: list[str]):
        self.issues = issues
        super().__init__("\n".join(issues))


def _lines(node, path: tuple, out: dict) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _lines(v, path + (k.value,), out)
            out[path + (k.value,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out)


def compose(text: str, file: str) -> tuple:
    """(data, {key path: line}, root node) of a YAML text; the node is what :mod:`.append` edits by."""
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
    data, lines, _ = compose(text, file)
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
            issue(
                ("variants", v.index),
                "'generic' takes no config and no domain: it is the kernel module's "
                "own generic function, which must serve any call",
            )
    for v in generic:
        if v.name != "generic":
            issue(
                ("variants", v.index),
                f"{v.name!r} has no domain; only 'generic' may serve everything "
                "(give it a domain, or it is unreachable)",
            )
    seen: dict = {}
    for v in variants:
        sig = (tuple(sorted(v.dims.items())), v.dtypes and tuple(sorted(v.dtypes)), v.arch and tuple(sorted(v.arch)))
        if sig in seen and not v.is_generic:
            issue(
                ("variants", v.index, "domain"),
                f"same domain as {seen[sig]!r}, which is listed first: {v.name!r} would never be chosen",
            )
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
    if not isinstance(config, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float, str, bool)) for k, v in config.items()
    ):
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
            elif (
                not isinstance(rng, list)
                or len(rng) != 2
                or not isinstance(rng[0], int)
                or isinstance(rng[0], bool)
                or rng[0] < 0
                or not (rng[1] is None or (isinstance(rng[1], int) and not isinstance(rng[1], bool)))
            ):
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
                if key in ev and (
                    isinstance(ev[key], bool) or not isinstance(ev[key], (int, float)) or not ev[key] > 0
                ):
                    issue(at + ("evidence", key), f"expected a positive number of seconds, got {ev[key]!r}")
                    ok = False
            if "dims" in ev and (
                not isinstance(ev["dims"], dict)
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in ev["dims"].values())
            ):
                issue(at + ("evidence", "dims"), "expected a mapping of dim name to integer")
                ok = False
    if not ok:
        return None
    return Variant(
        name=e["name"],
        function=e["function"],
        config=dict(config),
        dims=dims,
        dtypes=dtypes,
        arch=arch,
        evidence=dict(ev) if ev else None,
        index=i,
        line=lines.get(at),
    )


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
                issues.append(
                    f"{path}:{v.line}: variants[{v.index}].function: cannot import "
                    f"{v.function!r}: {type(exc).__name__}: {exc}"
                )
    return issues
