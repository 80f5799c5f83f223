"""The ratchet: every boundary change between two sets of specs.

Boundaries may be added or tightened freely; removing or weakening one (an invariant
dropped, a tolerance loosened, a domain shrunk, a pinned example deleted, ...) needs a
human. :func:`diff_specs` compares two sets of specs and lists each change with its
direction, so the merge gate and ``aina spec diff`` apply the same rule::

    from pytest_aina.spec.ratchet import diff_specs, load_spec_set

    base = load_spec_set("main")        # a git ref: specs/ as committed there
    head = load_spec_set("specs")       # or a folder of spec files
    changes = diff_specs(base, head)
    if any(c.weakening for c in changes):
        ...

Each :class:`BoundaryChange` has a ``kind``:

- ``added`` / ``tightened``: the new specs check more (a stronger boundary);
- ``removed`` / ``weakened``: they check less; the ratchet refuses these;
- ``changed``: neither, but a human should look (implementation or reference moved,
  bytes model, args, an input's shape, benchmark cases).

When in doubt a change is called a weakening: a sums_to whose target value changed is a
boundary removed, not one moved. How a change of an invariant's parameters is classified
is part of that invariant's definition (:mod:`pytest_aina.invariants`).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytest_aina.invariants.rules import ADDED, CHANGED, REMOVED, TIGHTENED, WEAKENED
from pytest_aina.spec.model import Invariant, Spec, Tolerance, discover, evaluate, load_spec, parse_spec
from pytest_aina.spec.reader import SpecError, SpecIssue

KINDS = (REMOVED, WEAKENED, CHANGED, ADDED, TIGHTENED)
WEAKENING = frozenset({REMOVED, WEAKENED})
STRENGTHENING = frozenset({ADDED, TIGHTENED})


@dataclass(frozen=True)
class BoundaryChange:
    """One boundary change in one spec (not a pull request's change: one line of a spec diff).

    ``path`` is a readable key path (``tolerance.float16.atol``,
    ``invariants[sums_to(dim=-1)].atol``); ``file``/``line`` point where the change can be
    seen: in the head spec, or in the base spec when the thing is gone.
    """

    spec: str
    kind: str
    path: str
    message: str
    before: Any = None
    after: Any = None
    file: str | None = None
    line: int | None = None

    @property
    def weakening(self) -> bool:
        return self.kind in WEAKENING

    @property
    def direction(self) -> str:
        """``weaker``, ``stronger`` or ``neutral``."""
        return "weaker" if self.kind in WEAKENING else "stronger" if self.kind in STRENGTHENING else "neutral"

    @property
    def where(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def as_dict(self) -> dict:
        d = asdict(self)
        d["direction"] = self.direction
        d["weakening"] = self.weakening
        return d


class SpecSetError(Exception):
    """A set of specs that cannot be read: a bad ref or folder, or specs that do not load."""

    def __init__(self, message: str, issues: list[SpecIssue] | None = None):
        self.issues = issues or []
        text = message + "".join(f"\n  {i}" for i in self.issues)
        super().__init__(text)


# ---------------------------------------------------------------------------------------
# Loading a set of specs from a folder or a git ref


def load_spec_set(source: str | Path, *, specs: str = "specs", repo: str | Path = ".") -> dict[str, Spec]:
    """Load every spec of ``source`` into ``{name: Spec}``.

    ``source`` is a folder of spec files (searched recursively for ``*.yaml``/``*.yml``)
    when such a folder exists, else a git ref (branch, tag, commit, ``HEAD~1``) of the
    repository ``repo``, whose spec files are read from the folder ``specs`` as committed
    at that ref. Raises :class:`SpecSetError` for a ref that does not exist, a spec that
    does not load (every issue listed, each naming its file) or two specs with one name.
    """
    path = Path(source)
    if path.is_dir():
        return _from_folder(path)
    return _from_ref(str(source), specs, Path(repo))


def _from_folder(folder: Path) -> dict[str, Spec]:
    loaded, issues = [], []
    for file in discover([folder]):
        try:
            loaded.append(load_spec(file))
        except SpecError as exc:
            issues += exc.issues
    if issues:
        raise SpecSetError(f"specs in {folder} do not load:", issues)
    return _by_name(loaded, str(folder))


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise SpecSetError("git is not installed; give folders instead of refs") from None


def _from_ref(ref: str, specs: str, repo: Path) -> dict[str, Spec]:
    if ref.startswith("-"):
        raise SpecSetError(f"{ref!r} is neither a folder nor a git ref")
    found = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if found.returncode != 0:
        inside = _git(repo, "rev-parse", "--git-dir").returncode == 0
        where = f"the git repository at {repo.resolve()}" if inside else f"{repo.resolve()} (not a git repository)"
        raise SpecSetError(f"{ref!r} is neither a folder nor a git ref in {where}")
    commit = found.stdout.decode().strip()
    folder = specs.strip("/") or "."
    listing = _git(repo, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit, "--", folder)
    if listing.returncode != 0:
        raise SpecSetError(f"cannot list {folder}/ at {ref}: {listing.stderr.decode().strip()}")
    names = sorted(n for n in listing.stdout.decode().split("\0") if n.endswith((".yaml", ".yml")))
    loaded, issues = [], []
    for name, blob in zip(names, _read_blobs(repo, [f"{commit}:{n}" for n in names])):
        label = f"{ref}:{name}"
        if blob is None:
            issues.append(SpecIssue(label, (), None, "cannot read it from git"))
            continue
        try:
            text = blob.decode()
        except UnicodeDecodeError:
            issues.append(SpecIssue(label, (), None, "not UTF-8 text"))
            continue
        try:
            loaded.append(parse_spec(text, label))
        except SpecError as exc:
            issues += exc.issues
    if issues:
        raise SpecSetError(f"specs at {ref} do not load:", issues)
    return _by_name(loaded, ref)


def _read_blobs(repo: Path, objects: list[str]) -> list[bytes | None]:
    """The contents of ``commit:path`` objects, read by one git process rather than one per file."""
    if not objects:
        return []
    done = _git_input(repo, "\n".join(objects).encode() + b"\n", "cat-file", "--batch")
    out: list[bytes | None] = []
    data, pos = done.stdout, 0
    for _ in objects:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        if len(header) != 3 or header[1] != b"blob":  # "<name> missing", or not a file
            out.append(None)
            pos = end + 1
            continue
        size = int(header[2])
        out.append(data[end + 1 : end + 1 + size])
        pos = end + 1 + size + 1  # the content is followed by a newline
    return out


def _git_input(repo: Path, stdin: bytes, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise SpecSetError("git is not installed; give folders instead of refs") from None


def _by_name(specs: list[Spec], source: str) -> dict[str, Spec]:
    out: dict[str, Spec] = {}
    issues = []
    for spec in specs:
        if spec.name in out:
            issues.append(
                SpecIssue(
                    str(spec.path),
                    ("name",),
                    spec.line_of("name"),
                    f"{spec.name!r} is also the name of {out[spec.name].path}; expected one spec per name",
                )
            )
        else:
            out[spec.name] = spec
    if issues:
        raise SpecSetError(f"specs in {source} share a name:", issues)
    return out


# ---------------------------------------------------------------------------------------
# Comparing


def diff_specs(base: dict[str, Spec], head: dict[str, Spec]) -> list[BoundaryChange]:
    """Every boundary change from ``base`` to ``head`` (both ``{name: Spec}``), grouped by
    spec name in sorted order. An empty list means the boundaries are identical."""
    changes: list[BoundaryChange] = []
    for name in sorted(set(base) | set(head)):
        if name not in head:
            b = base[name]
            changes.append(
                BoundaryChange(
                    name,
                    REMOVED,
                    "<spec>",
                    "spec removed: none of its checks run any more",
                    file=str(b.path),
                    line=b.line_of("name"),
                )
            )
        elif name not in base:
            h = head[name]
            changes.append(
                BoundaryChange(name, ADDED, "<spec>", "spec added", file=str(h.path), line=h.line_of("name"))
            )
        else:
            changes += _SpecDiff(base[name], head[name]).run()
    return changes


class _SpecDiff:
    def __init__(self, base: Spec, head: Spec):
        self.b, self.h = base, head
        self.out: list[BoundaryChange] = []

    def add(
        self, kind: str, path: tuple, message: str, before: Any = None, after: Any = None, at_base: bool = False
    ) -> None:
        spec = self.b if at_base else self.h
        self.out.append(
            BoundaryChange(
                self.h.name,
                kind,
                _fmt(path),
                message,
                before,
                after,
                file=str(spec.path),
                line=spec.line_of(*path) if path else None,
            )
        )

    def run(self) -> list[BoundaryChange]:
        self.calls()
        self.dtypes()
        self.tolerances()
        self.outputs()
        self.gradients()
        self.dims()
        self.inputs()
        self.invariants()
        self.examples()
        self.benchmarks()
        self.objectives()
        return self.out

    # -- what is called
    def calls(self) -> None:
        for key in ("implementation", "reference"):
            before, after = getattr(self.b, key), getattr(self.h, key)
            if before != after:
                self.add(CHANGED, (key,), f"{key} changed: needs review", before, after)
        if self.b.args != self.h.args:
            for k in sorted(set(self.b.args) | set(self.h.args), key=str):
                if self.b.args.get(k) != self.h.args.get(k):
                    self.add(
                        CHANGED,
                        ("args", k),
                        "argument changed: needs review",
                        self.b.args.get(k),
                        self.h.args.get(k),
                        at_base=k not in self.h.args,
                    )
        # Alternatives beyond the default: each one is a set of cases checked.
        for k in sorted(set(self.b.args) & set(self.h.args), key=str):
            before = self.b.arg_alternatives.get(k, (self.b.args[k],))
            after = self.h.arg_alternatives.get(k, (self.h.args[k],))
            for v in before:
                if v not in after:
                    self.add(REMOVED, ("args", k), f"alternative {k}={v} removed: no longer checked", v, None)
            for v in after:
                if v not in before:
                    self.add(ADDED, ("args", k), f"alternative {k}={v} added", None, v)

    # -- dtypes and their tolerances
    def dtypes(self) -> None:
        for dt in self.b.dtypes:
            if dt not in self.h.dtypes:
                self.add(REMOVED, ("dtypes",), f"dtype {dt} removed: it is no longer checked", dt, None)
        for dt in self.h.dtypes:
            if dt not in self.b.dtypes:
                self.add(ADDED, ("dtypes",), f"dtype {dt} added", None, dt)

    def tolerances(self) -> None:
        self._tolerance(("tolerance",), self.b.tolerance, self.h.tolerance, "")

    def _tolerance(self, path: tuple, base: dict[str, Tolerance], head: dict[str, Tolerance], what: str) -> None:
        for dt in self.h.dtypes:
            if dt not in self.b.dtypes or dt not in base or dt not in head:
                continue
            bt, ht = base[dt], head[dt]
            for part in ("atol", "rtol", "ctol"):
                before, after = getattr(bt, part), getattr(ht, part)
                if before == after:
                    continue
                if isinstance(before, str) or isinstance(after, str):
                    self._ctol_expression(path + (dt, part), f"{what}{dt} {part}", before, after)
                    continue
                if after > before:
                    self.add(WEAKENED, path + (dt, part), f"{what}{dt} {part} loosened", before, after)
                elif after < before:
                    self.add(TIGHTENED, path + (dt, part), f"{what}{dt} {part} tightened", before, after)

    def _ctol_expression(self, path: tuple, what: str, before: float | str, after: float | str) -> None:
        """A ctol over dims, compared at the head's smallest and largest sizes: raised at
        either is a weakening, lowered at both a tightening, otherwise (or one that cannot be
        evaluated) a change to review."""
        corners = [{n: getattr(d, end) for n, d in self.h.dims.items()} for end in ("min", "max")]
        try:
            pairs = [(evaluate(str(before), c), evaluate(str(after), c)) for c in corners]
        except (ValueError, SyntaxError, ZeroDivisionError, OverflowError):
            self.add(CHANGED, path, f"{what} rewritten: needs review", before, after)
            return
        if any(a > b for b, a in pairs):
            self.add(WEAKENED, path, f"{what} loosened", before, after)
        elif all(a < b for b, a in pairs):
            self.add(TIGHTENED, path, f"{what} tightened", before, after)
        else:
            self.add(CHANGED, path, f"{what} rewritten: needs review", before, after)

    # -- named outputs and gradients
    def _effective(self, spec: Spec, own: dict | None) -> dict[str, Tolerance]:
        return {
            dt: (own[dt] if own and dt in own else spec.tolerance[dt]) for dt in spec.dtypes if dt in spec.tolerance
        }

    def outputs(self) -> None:
        bo = {o.name: o for o in self.b.outputs}
        ho = {o.name: o for o in self.h.outputs}
        if not bo or not ho:
            if bool(bo) != bool(ho):
                self.add(
                    CHANGED,
                    ("outputs",),
                    "outputs named: needs review (which output is which)",
                    list(bo) or None,
                    list(ho) or None,
                    at_base=not ho,
                )
            return
        for name, b in bo.items():
            h = ho.get(name)
            if h is None:
                self.add(
                    REMOVED,
                    ("outputs", name),
                    f"output {name} removed: it is no longer checked",
                    name,
                    None,
                    at_base=True,
                )
                continue
            path = ("outputs", name)
            self._tolerance(
                path + ("tolerance",),
                self._effective(self.b, b.tolerance),
                self._effective(self.h, h.tolerance),
                f"output {name}: ",
            )
            for key in ("shape", "in_place", "magnitude"):
                if getattr(b, key) != getattr(h, key):
                    self.add(
                        CHANGED,
                        path + (key,),
                        f"output {name} {key} changed: needs review",
                        getattr(b, key),
                        getattr(h, key),
                    )
            self._owned_invariants(path, f"output {name}", b.invariants, h.invariants)
        for name in ho:
            if name not in bo:
                self.add(ADDED, ("outputs", name), f"output {name} added", None, name)

    def _owned_invariants(self, path: tuple, owner: str, before: tuple, after: tuple) -> None:
        """The invariants of one output or gradient: dropped, added, parameters changed."""
        bk, hk = _keyed(before), _keyed(after)
        for key, inv in bk.items():
            if key not in hk:
                self.add(
                    REMOVED, path + ("invariants",), f"invariant {inv.label} of {owner} dropped", _inv_json(inv), None
                )
            else:
                for kind, _sub, message, b, h in _compare_invariant(inv, hk[key]):
                    self.add(kind, path + ("invariants",), f"{owner}: {message}", b, h)
        for key, inv in hk.items():
            if key not in bk:
                self.add(ADDED, path + ("invariants",), f"invariant {inv.label} of {owner} added", None, _inv_json(inv))

    def gradients(self) -> None:
        bg = {g.input: g for g in self.b.gradients}
        hg = {g.input: g for g in self.h.gradients}
        for name, b in bg.items():
            h = hg.get(name)
            if h is None:
                self.add(
                    REMOVED,
                    ("gradients", name),
                    f"gradient of {name} removed: it is no longer checked",
                    name,
                    None,
                    at_base=True,
                )
                continue
            self._tolerance(
                ("gradients", name, "tolerance"),
                self._effective(self.b, b.tolerance),
                self._effective(self.h, h.tolerance),
                f"gradient of {name}: ",
            )
            self._owned_invariants(("gradients", name), f"gradient of {name}", b.invariants, h.invariants)
            if b.in_place_when != h.in_place_when:
                self.add(
                    CHANGED,
                    ("gradients", name, "in_place"),
                    "in-place gradient changed: needs review",
                    b.in_place_when,
                    h.in_place_when,
                )
            if b.magnitude != h.magnitude:
                self.add(
                    CHANGED,
                    ("gradients", name, "magnitude"),
                    "magnitude changed: needs review",
                    b.magnitude,
                    h.magnitude,
                )
        for name in hg:
            if name not in bg:
                self.add(ADDED, ("gradients", name), f"gradient of {name} added", None, name)
        if bg and hg:
            for key, what in (("upstream_layouts", "layout"), ("upstream_values", "value kind")):
                before, after = getattr(self.b, key), getattr(self.h, key)
                for v in before:
                    if v not in after:
                        self.add(REMOVED, ("upstream",), f"upstream {what} {v} removed: no longer drawn", v, None)
                for v in after:
                    if v not in before:
                        self.add(ADDED, ("upstream",), f"upstream {what} {v} added", None, v)

    # -- the domain
    def dims(self) -> None:
        for name, bd in self.b.dims.items():
            hd = self.h.dims.get(name)
            if hd is None:
                self.add(
                    REMOVED,
                    ("dims", name),
                    f"dim {name} removed: its domain is no longer checked",
                    [bd.min, bd.max],
                    None,
                    at_base=True,
                )
                continue
            if hd.min > bd.min:
                self.add(
                    WEAKENED,
                    ("dims", name, "min"),
                    f"domain of {name} shrunk: {_sizes(bd.min, hd.min - 1)} no longer checked",
                    bd.min,
                    hd.min,
                )
            elif hd.min < bd.min:
                self.add(TIGHTENED, ("dims", name, "min"), f"domain of {name} widened down to {hd.min}", bd.min, hd.min)
            if hd.max < bd.max:
                self.add(
                    WEAKENED,
                    ("dims", name, "max"),
                    f"domain of {name} shrunk: {_sizes(hd.max + 1, bd.max)} no longer checked",
                    bd.max,
                    hd.max,
                )
            elif hd.max > bd.max:
                self.add(TIGHTENED, ("dims", name, "max"), f"domain of {name} widened up to {hd.max}", bd.max, hd.max)
        for name, hd in self.h.dims.items():
            if name not in self.b.dims:
                self.add(ADDED, ("dims", name), f"dim {name} added", None, [hd.min, hd.max])

    def inputs(self) -> None:
        bi = {i.name: i for i in self.b.inputs}
        hi = {i.name: i for i in self.h.inputs}
        for name, b in bi.items():
            h = hi.get(name)
            if h is None:
                self.add(
                    REMOVED,
                    ("inputs", name),
                    f"input {name} removed: its layouts and values are no longer checked",
                    list(b.shape),
                    None,
                    at_base=True,
                )
                continue
            if b.shape != h.shape:
                self.add(
                    CHANGED, ("inputs", name, "shape"), "shape changed: needs review", list(b.shape), list(h.shape)
                )
            if b.dtype != h.dtype:
                self.add(CHANGED, ("inputs", name, "dtype"), "fixed dtype changed: needs review", b.dtype, h.dtype)
            if b.batch_dims and not h.batch_dims:
                self.add(WEAKENED, ("inputs", name, "batch_dims"), "leading batch dims no longer checked", True, False)
            elif h.batch_dims and not b.batch_dims:
                self.add(TIGHTENED, ("inputs", name, "batch_dims"), "leading batch dims now checked", False, True)
            if b.scale != h.scale:
                # another distribution: neither more nor fewer cases, but other values
                self.add(
                    CHANGED, ("inputs", name, "scale"), "scale of normal values changed: needs review", b.scale, h.scale
                )
            self._integer_input(name, b, h)
            for key, what in (("layouts", "layout"), ("values", "value kind")):
                before, after = getattr(b, key), getattr(h, key)
                for v in before:
                    if v not in after:
                        self.add(REMOVED, ("inputs", name, key), f"{what} {v} removed: no longer generated", v, None)
                for v in after:
                    if v not in before:
                        self.add(ADDED, ("inputs", name, key), f"{what} {v} added", None, v)
        for name, h in hi.items():
            if name not in bi:
                self.add(ADDED, ("inputs", name), f"input {name} added", None, list(h.shape))

    def _integer_input(self, name: str, b, h) -> None:
        """dtype alternatives, value range, sentinel and relations of one input."""
        path = ("inputs", name)
        if b.dtypes or h.dtypes:
            for v in b.dtype_choices:
                if v not in h.dtype_choices:
                    self.add(
                        REMOVED,
                        path + ("dtypes",),
                        f"dtype alternative {v or 'case'} removed: no longer checked",
                        v or "case",
                        None,
                    )
            for v in h.dtype_choices:
                if v not in b.dtype_choices:
                    self.add(ADDED, path + ("dtypes",), f"dtype alternative {v or 'case'} added", None, v or "case")
        if b.range != h.range and b.range and h.range:
            # compared at the domain's largest sizes: narrower draws fewer values
            names = {n: d.max for n, d in self.h.dims.items()}
            lo_b, hi_b, lo_h, hi_h = (int(evaluate(str(x), names)) for x in (*b.range, *h.range))
            if lo_h > lo_b or hi_h < hi_b:
                self.add(
                    WEAKENED,
                    path + ("range",),
                    "value range narrowed: fewer values drawn",
                    list(b.range),
                    list(h.range),
                )
            elif lo_h < lo_b or hi_h > hi_b:
                self.add(TIGHTENED, path + ("range",), "value range widened", list(b.range), list(h.range))
            else:
                self.add(
                    CHANGED, path + ("range",), "value range rewritten: needs review", list(b.range), list(h.range)
                )
        elif b.range != h.range:
            self.add(CHANGED, path + ("range",), "value range changed: needs review", b.range, h.range)
        if b.sentinel and not h.sentinel:
            self.add(
                REMOVED,
                path + ("sentinel",),
                f"sentinel {b.sentinel.label} removed: no longer drawn",
                b.sentinel.label,
                None,
            )
        elif h.sentinel and not b.sentinel:
            self.add(ADDED, path + ("sentinel",), f"sentinel {h.sentinel.label} added", None, h.sentinel.label)
        elif b.sentinel != h.sentinel:
            self.add(
                CHANGED,
                path + ("sentinel",),
                "sentinel changed: needs review",
                [b.sentinel.label, b.sentinel.frequency],
                [h.sentinel.label, h.sentinel.frequency],
            )
        bk = {r.key: r for r in b.relations}
        hk = {r.key: r for r in h.relations}
        for key, r in bk.items():
            if key not in hk:
                self.add(REMOVED, path + ("relations",), f"relation {key} removed: no longer drawn", key, None)
            elif r.params != hk[key].params:
                self.add(
                    CHANGED, path + ("relations",), f"relation {key} changed: needs review", r.params, hk[key].params
                )
        for key in hk:
            if key not in bk:
                self.add(ADDED, path + ("relations",), f"relation {key} added", None, key)

    # -- invariants
    def invariants(self) -> None:
        bk, hk = _keyed(self.b.invariants), _keyed(self.h.invariants)
        for key, b in bk.items():
            h = hk.get(key)
            path = ("invariants", key)
            if h is None:
                self.out.append(
                    BoundaryChange(
                        self.h.name,
                        REMOVED,
                        _fmt(path),
                        f"invariant {b.label} dropped",
                        _inv_json(b),
                        None,
                        file=str(self.b.path),
                        line=b.line,
                    )
                )
            else:
                for kind, sub, message, before, after in _compare_invariant(b, h):
                    self.out.append(
                        BoundaryChange(
                            self.h.name,
                            kind,
                            _fmt(path + sub),
                            message,
                            before,
                            after,
                            file=str(self.h.path),
                            line=h.line,
                        )
                    )
        for key, h in hk.items():
            if key not in bk:
                self.out.append(
                    BoundaryChange(
                        self.h.name,
                        ADDED,
                        _fmt(("invariants", key)),
                        f"invariant {h.label} added",
                        None,
                        _inv_json(h),
                        file=str(self.h.path),
                        line=h.line,
                    )
                )

    # -- pinned examples and benchmark cases
    def examples(self) -> None:
        # Compared case by case after expansion (an example without dtype stands for every
        # dtype), so narrowing an example to one dtype shows as the cases it no longer pins.
        bc, hc = Counter(self.b.examples), Counter(self.h.examples)
        lines = {c: c.line for c in self.b.examples}
        for case, n in (bc - hc).items():
            if case.dtype not in self.h.dtypes:
                continue  # reported once, as the dtype's removal
            for _ in range(n):
                self.out.append(
                    BoundaryChange(
                        self.h.name,
                        REMOVED,
                        f"examples[{case.label()}]",
                        "pinned example deleted",
                        case.as_dict(),
                        None,
                        file=str(self.b.path),
                        line=lines[case],
                    )
                )
        hlines = {c: c.line for c in self.h.examples}
        for case, n in (hc - bc).items():
            for _ in range(n):
                self.out.append(
                    BoundaryChange(
                        self.h.name,
                        ADDED,
                        f"examples[{case.label()}]",
                        "pinned example added",
                        None,
                        case.as_dict(),
                        file=str(self.h.path),
                        line=hlines[case],
                    )
                )

    def benchmarks(self) -> None:
        # Benchmark cases are not correctness boundaries, but a reviewer should see them go.
        bc, hc = Counter(self.b.benchmarks), Counter(self.h.benchmarks)
        for case in bc - hc:
            self.out.append(
                BoundaryChange(
                    self.h.name,
                    CHANGED,
                    f"benchmarks[{case.label()}]",
                    "benchmark case removed: needs review",
                    case.label(),
                    None,
                    file=str(self.b.path),
                    line=case.line,
                )
            )
        for case in hc - bc:
            self.out.append(
                BoundaryChange(
                    self.h.name,
                    CHANGED,
                    f"benchmarks[{case.label()}]",
                    "benchmark case added",
                    None,
                    case.label(),
                    file=str(self.h.path),
                    line=case.line,
                )
            )

    def objectives(self) -> None:
        for key, before, after in (
            ("bytes", self.b.bytes_expr, self.h.bytes_expr),
            ("flops", self.b.flops_expr, self.h.flops_expr),
        ):
            if before != after:
                self.add(
                    CHANGED,
                    ("objectives", key),
                    f"{key} model changed: needs review (it sets % of the hardware limit)",
                    before,
                    after,
                    at_base=after is None,
                )
        bl = (self.b.raw.get("objectives") or {}).get("latency")
        hl = (self.h.raw.get("objectives") or {}).get("latency")
        if bl != hl:
            self.add(
                CHANGED,
                ("objectives", "latency"),
                "latency objective changed: needs review",
                bl,
                hl,
                at_base=hl is None,
            )


def _sizes(lo: int, hi: int) -> str:
    return f"size {lo}" if lo == hi else f"sizes {lo}..{hi}"


def _keyed(invariants: tuple[Invariant, ...]) -> dict[str, Invariant]:
    out: dict[str, Invariant] = {}
    for inv in invariants:
        key, n = inv.key, 2
        while key in out:  # the same check stated twice: compare them in order
            key, n = f"{inv.key}#{n}", n + 1
        out[key] = inv
    return out


def _inv_json(inv: Invariant) -> Any:
    return {inv.name: inv.params} if inv.params else inv.name


def _compare_invariant(b: Invariant, h: Invariant) -> list[tuple]:
    """(kind, sub-path, message, before, after) for each parameter that moved, by the
    invariant's own rule."""
    return [(m.kind, (param,), m.message, m.before, m.after) for param, m in b.definition.compare(b.params, h.params)]


def _fmt(path: tuple) -> str:
    out = ""
    for i, part in enumerate(path):
        if isinstance(part, int) or (i and path[i - 1] == "invariants"):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# ---------------------------------------------------------------------------------------
# Presenting


def summary(changes: list[BoundaryChange]) -> dict:
    counts = Counter(c.kind for c in changes)
    return {
        "weakenings": sum(counts[k] for k in WEAKENING),
        "strengthenings": sum(counts[k] for k in STRENGTHENING),
        "neutral": counts[CHANGED],
        "specs": len({c.spec for c in changes}),
        "by_kind": {k: counts[k] for k in KINDS if counts[k]},
    }


def format_changes(changes: list[BoundaryChange]) -> str:
    """Plain aligned lines, grouped per spec, weakenings first within each spec."""
    if not changes:
        return "no boundary changes"
    order = {k: i for i, k in enumerate(KINDS)}
    pw = max(len(c.path) for c in changes)
    lines: list[str] = []
    for spec in sorted({c.spec for c in changes}):
        group = sorted((c for c in changes if c.spec == spec), key=lambda c: order[c.kind])
        lines.append(f"{spec}:")
        for c in group:
            values = ""
            # Added and removed things are named in the message; moved ones show both sides.
            if c.kind in (WEAKENED, TIGHTENED, CHANGED) and (c.before is not None or c.after is not None):
                values = f" ({_short(c.before)} -> {_short(c.after)})"
            where = f"  [{c.where}]" if c.where else ""
            lines.append(f"  {c.kind:<9}  {c.path:<{pw}}  {c.message}{values}{where}")
    return "\n".join(lines)


def _short(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict) and "dims" in v:  # an example case
        parts = [f"{k}={n}" for k, n in v["dims"].items()] + [v["dtype"]]
        return ",".join(parts)
    return str(v)
