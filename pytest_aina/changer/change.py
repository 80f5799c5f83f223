"""From a finished search to a change an engineer would make.

:func:`write_change` turns a :class:`~pytest_aina.changer.model.SearchRecord` whose winner
beat the baseline into a :class:`ChangeResult`: the files to commit (as text; the working
tree is never touched), the PR title and body, labels and the branch name. The files:

* the variant's dispatch entry appended to ``kernels/variants/<kernel>.yaml`` (comments
  kept, the table checked by :mod:`pytest_aina.runtime.dispatch`), for the hypothesis's shape domain,
  with its evidence; a source winner also gets its module ``kernels/evolved/<variant>.py``;
* the hot shapes appended to the spec's ``examples`` (comments kept; the result must load,
  and ``aina spec diff`` must call every change *added*, or nothing is written);
* the generated test module ``tests/evolved/test_<variant>.py`` (:mod:`.testgen`);
* the in-toto statement ``provenance/<kernel>/<variant>.intoto.json`` (:mod:`.attestation`),
  from which the PR body is rendered (:mod:`.prbody`).

Coverage needs the files on disk: :meth:`ChangeResult.materialize` writes them into a
scratch checkout, :meth:`ChangeResult.measure_coverage` runs the generated tests there
under coverage.py, and :meth:`ChangeResult.with_coverage` puts the figures into the
attestation and the body.

What this reads from the hypothesis (the Reasoner's JSON) is listed in ``docs/provenance.md``.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import json
import re
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from pytest_aina.changer import attestation as att
from pytest_aina.changer import prbody, testgen
from pytest_aina.changer.model import Attempt, SearchRecord
from pytest_aina.changer.testgen import Shape

BRANCH_PREFIX = "aina/"
#: Below this coverage of a new source module, a change is labelled high risk.
SOURCE_COVERAGE_FLOOR = 80.0
_ARCH_GUESSES = ("cpu", "sm_80", "sm_90", "sm_100", "gfx942")
#: Hot shapes pinned and tested per change: the hottest few say what the variant is for;
#: more would only lengthen CI.
MAX_HOT_SHAPES = 4


class ChangeError(ValueError):
    """The search record cannot become a change; the message says which part and why."""


@dataclass(frozen=True)
class ChangeResult:
    """One evolution change; the fields and :meth:`to_json` are those of the App's
    ``github_app.change.Change`` (``Change.from_json(result.to_json())``)."""

    hypothesis_id: str
    branch: str
    title: str
    body: str
    files: Mapping[str, str | None]
    attestation: str
    labels: tuple[str, ...] = ()
    kernel: str | None = None
    supersedes: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "hypothesis_id": self.hypothesis_id, "branch": self.branch, "title": self.title,
            "body": self.body, "files": dict(self.files), "attestation": self.attestation,
            "labels": list(self.labels), "kernel": self.kernel,
            "supersedes": list(self.supersedes), "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ChangeResult":
        return cls(hypothesis_id=d["hypothesis_id"], branch=d["branch"], title=d["title"], body=d["body"],
                   files=dict(d["files"]), attestation=d["attestation"], labels=tuple(d.get("labels") or ()),
                   kernel=d.get("kernel"), supersedes=tuple(d.get("supersedes") or ()),
                   metadata=dict(d.get("metadata") or {}))

    @property
    def statement(self) -> dict:
        return json.loads(self.files[self.attestation])

    def materialize(self, root: str | Path) -> list[Path]:
        """Write the change's files under ``root`` (a scratch checkout, never the user's
        working tree: the forge commits without it); returns the paths written."""
        root = Path(root)
        written = []
        for rel, text in sorted(self.files.items()):
            path = root / rel
            if text is None:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
        return written

    def measure_coverage(self, root: str | Path, *, timeout_s: float = 900) -> dict:
        """Coverage of the new variant by its generated tests, in ``root`` where the files
        were materialised (see :func:`pytest_aina.changer.testgen.measure_coverage`)."""
        v = self.statement["predicate"]["variant"]
        target, function = testgen.coverage_target(v, v.get("module"))
        return testgen.measure_coverage(root, test=v["test"], target=target, function=function, timeout_s=timeout_s)

    def with_coverage(self, figures: dict) -> "ChangeResult":
        """This change with ``figures`` recorded in the attestation, the body and the labels."""
        stmt = self.statement
        stmt["predicate"]["coverage"] = att.redact(figures)
        files = dict(self.files)
        files[self.attestation] = att.dumps(stmt)
        kind = stmt["predicate"]["variant"]["kind"]
        labels = tuple(x for x in self.labels if not x.startswith("risk:")) + (f"risk:{_risk(kind, figures)}",)
        meta = dict(self.metadata, coverage_percent=figures.get("percent"),
                    generated_tests_passed=figures.get("tests_passed"))
        return replace(self, files=files, body=prbody.render(stmt), labels=labels, metadata=meta)


def _risk(kind: str, coverage: dict | None) -> str:
    """config-only on a tested generic kernel: low; new source: medium, high when its
    tests fail or leave much of it unrun (or coverage is unknown)."""
    if kind == "config":
        return "low" if not coverage or coverage.get("tests_passed", True) else "high"
    if coverage is None:
        return "medium"
    pct = coverage.get("percent")
    if not coverage.get("tests_passed") or pct is None or pct < SOURCE_COVERAGE_FLOOR:
        return "high"
    return "medium"


# ---------------------------------------------------------------------------------------
# The change


def write_change(record: SearchRecord, repo: str | Path, *, spec_path: str | Path, now: datetime | str | None = None,
                 telemetry: str | Path | None = None) -> ChangeResult:
    """The change for ``record``'s winner, computed from the files of ``repo`` (read only).

    ``spec_path`` is the kernel's spec (relative to ``repo`` or absolute, inside it);
    ``telemetry`` the telemetry file that triggered the hypothesis, digested into the
    record when given; ``now`` the creation time (default: the current UTC time).
    Raises :class:`ChangeError` when there is no winner, when the hypothesis does not say
    which shapes to specialise for, when the table or the spec would not accept the
    change, or when the spec change would weaken anything.
    """
    repo = Path(repo).resolve()
    winner = record.winner_attempt()
    if record.winner is None or winner is None:
        raise ChangeError(f"search for {record.kernel}: no winner (nothing beat the baseline, "
                          f"winner={record.winner!r}); there is no change to write")
    if not winner.verdict.passed:
        raise ChangeError(f"search for {record.kernel}: winner {record.winner} did not pass the cascade "
                          f"({winner.verdict.failed_stage}: {winner.verdict.reason})")
    cand = winner.candidate
    if cand.kernel != record.kernel:
        raise ChangeError(f"winner {cand.id} is a candidate for {cand.kernel!r}, not {record.kernel!r}")
    if cand.config is None and cand.source is None:
        raise ChangeError(f"winner {cand.id} has neither config nor source")
    if cand.source is None and not cand.config:
        raise ChangeError(f"winner {cand.id} is the generic kernel with its heuristic defaults: it is what "
                          "already serves these calls, so there is nothing to add")
    hyp = dict(record.hypothesis or {})
    hid = hyp.get("id")
    if not isinstance(hid, str) or not hid.strip():
        raise ChangeError(f"record.hypothesis has no id (keys: {sorted(hyp)}); the change and its branch are named by it")
    created = _iso(now)

    from pytest_aina.spec.model import parse_spec
    from pytest_aina.spec.reader import SpecError

    spec_file = Path(spec_path) if Path(spec_path).is_absolute() else repo / spec_path
    try:
        spec_rel = spec_file.resolve().relative_to(repo).as_posix()
    except ValueError:
        raise ChangeError(f"spec_path {spec_path}: not inside the repository {repo}") from None
    spec_text = _read(spec_file, "spec_path")
    try:
        spec = parse_spec(spec_text, spec_rel)
    except SpecError as exc:
        raise ChangeError(f"{spec_rel}: the spec does not load, fix it first:\n{exc}") from None
    if spec.name != record.kernel:
        raise ChangeError(f"{spec_rel} is the spec of {spec.name!r}, but the search was for {record.kernel!r}")

    kernel = record.kernel
    name = f"{kernel}_{cand.id}"
    hot = hot_shapes(record, spec)
    domain = variant_domain(hyp, spec, hot, record)
    for s in hot:
        if not _inside(domain, s.dims, s.dtype):
            raise ChangeError(f"hypothesis {hid}: hot shape {_label(s.dims, s.dtype)} lies outside the domain "
                              f"{domain}; dispatch would never send it to the new variant")
    arch = concrete_arch(domain, hyp)

    # -- the variant and its dispatch entry
    table_rel = f"kernels/variants/{kernel}.yaml"
    table_path = repo / table_rel
    table_text = table_path.read_text() if table_path.exists() else _new_table(spec, kernel)
    module_rel = None
    files: dict[str, str | None] = {}
    stmt_rel = f"provenance/{kernel}/{name}.intoto.json"
    test_rel = f"tests/evolved/test_{name}.py"
    if cand.source is not None:
        function = cand.function or spec.implementation.rpartition(":")[2]
        _check_source(cand.source, function, cand.id)
        module_rel = f"kernels/evolved/{name}.py"
        files[module_rel] = _source_module(cand, name, kernel, hid, function, stmt_rel, table_rel)
        if not (repo / "kernels/evolved/__init__.py").exists():
            files["kernels/evolved/__init__.py"] = _EVOLVED_INIT
        fn_path = f"kernels.evolved.{name}:{function}"
    else:
        fn_path = None  # the table's generic function, filled in below
    measurements, before_label = _measurements(record, winner, spec, hot)
    evidence = _evidence(record, measurements, created, stmt_rel)
    entry: dict[str, Any] = {"name": name, "function": fn_path or _generic_function(table_text, table_rel, kernel)}
    if cand.config:
        entry["config"] = dict(cand.config)
    entry["domain"] = domain
    if evidence:
        entry["evidence"] = evidence
    n_tried = len(record.attempts)
    comment = (f"added by pytest-aina for hypothesis {hid} ({hyp.get('kind', 'hypothesis')}),\n"
               f"the best of {n_tried} candidate(s); evidence: {stmt_rel}")
    new_table, table = append_variant(table_text, kernel, entry, comment, table_rel)
    for s in hot + [Shape(s.dims, dt) for s in hot for dt in domain["dtypes"]]:
        chosen = table.select(s.dims, s.dtype, arch).name
        if chosen != name:
            raise ChangeError(f"{table_rel}: {_label(s.dims, s.dtype)} on {arch} would go to the existing variant "
                              f"{chosen!r}, which is more specific than the new one; the change would not be used")
    files[table_rel] = new_table

    # -- the spec: hot shapes pinned, nothing removed
    new_spec_text, added, already, spec_changes = pin_examples(spec_text, spec_rel, spec, hot, hid)
    if added:
        files[spec_rel] = new_spec_text

    # -- the generated tests
    # every hot shape in every dtype of the domain, then the domain's corners
    dtypes = domain.get("dtypes") or list(spec.dtypes)
    hot_tests = _unique_shapes([Shape(s.dims, dt, "hot shape") for s in hot for dt in dtypes])
    seen = {(tuple(s.dims.items()), s.dtype) for s in hot_tests}
    edges = [e for e in _unique_shapes(domain_edges(spec, domain, hot, dtypes))
             if (tuple(e.dims.items()), e.dtype) not in seen]
    files[test_rel] = testgen.render_test(
        spec=spec, spec_rel=spec_rel, table_rel=table_rel, kernel=kernel, variant=entry, hypothesis_id=hid,
        attestation_rel=stmt_rel, hot=hot_tests, edges=edges, outside=outside_calls(spec, domain, hot, arch),
        arch=arch)

    # -- the record, then the body rendered from it
    env = dict(record.environment or {})
    git = env.get("git") or {}
    predicate = {
        "kernel": kernel,
        "created": created,
        "attestation": stmt_rel,
        "variant": {"name": name, "kind": "config" if cand.source is None else "source", "function": entry["function"],
                    "config": entry.get("config"), "domain": domain, "table": table_rel, "module": module_rel,
                    "test": test_rel, "candidate": cand.id, "proposer": cand.proposer},
        "hypothesis": hyp,
        "trigger": trigger(hyp, repo, telemetry),
        "device": _device(record, winner),
        "measurements": [dict(m, before_label=before_label) for m in measurements],
        **att.predicate_of(record),
        "spec": {"path": spec_rel, "examples_added": added, "already_pinned": already,
                 "diff": [c.as_dict() for c in spec_changes]},
        "environment": env,
        "base": {"commit": git.get("commit"), "dirty": git.get("dirty")},
        "coverage": {"status": "not measured yet: ChangeResult.measure_coverage runs the generated tests "
                               "under coverage.py once the files are in a checkout"},
        "reproduce": {
            "tests": f"python -m pytest {test_rel}",
            "spec": f"python -m pytest --aina {spec_rel}",
            "search": record.repeat or "# the search did not record its command",
            "note": ("Without a GPU these run in Triton's interpreter (TRITON_INTERPRET=1 is set automatically); "
                     "the full-size cases of the generated tests run only on a GPU runner."
                     if record.device == "cpu" else ""),
        },
        "rollback": {"pin": f"AINA_DISPATCH_PIN={kernel}=generic", "revert": "git revert <the commit of this change>"},
    }
    stmt = att.statement(files=files, attestation_path=stmt_rel, predicate=predicate)
    files[stmt_rel] = att.dumps(stmt)
    _refuse_secrets(files)
    best = max((m["speedup"]["value"] for m in measurements if m.get("speedup")), default=None)
    kind = predicate["variant"]["kind"]
    return ChangeResult(
        hypothesis_id=hid, branch=branch_name(kernel, hid), title=prbody.title(stmt), body=prbody.render(stmt),
        files=files, attestation=stmt_rel, labels=("aina", f"kernel:{kernel}", f"risk:{_risk(kind, None)}"),
        kernel=kernel, supersedes=tuple(str(x) for x in hyp.get("supersedes") or ()),
        metadata={"variant": name, "kind": kind, "candidate": cand.id, "speedup": best, "device": record.device,
                  "gpu_evidence": record.device == "cuda", "base_commit": git.get("commit"),
                  "examples_added": len(added), "candidates_tried": n_tried, "coverage_percent": None,
                  "generated_tests_passed": None, "created": created})


def branch_name(kernel: str, hypothesis_id: str) -> str:
    """``aina/<kernel>-<short hypothesis id>``: the same hypothesis always gets the same branch."""
    short = re.sub(r"[^a-z0-9]+", "-", hypothesis_id.lower()).strip("-")
    if len(short) > 32 or not short:
        short = short[:15].rstrip("-") + "-" + hashlib.sha256(hypothesis_id.encode()).hexdigest()[:8]
    return f"{BRANCH_PREFIX}{kernel}-{short.strip('-')}"


# ---------------------------------------------------------------------------------------
# What the hypothesis says


def hot_shapes(record: SearchRecord, spec) -> list[Shape]:
    """The shapes the variant is specialised for: the Reasoner's ``evidence.groups`` (one
    row per telemetry group: dims, dtype, arch, gpu_s) inside the hypothesis's domain, the
    most GPU time first, at most :data:`MAX_HOT_SHAPES`; a team's own reasoner may give
    ``hot_shapes``/``shapes`` instead (rows ``{dims, dtype}``). Without either, the
    benchmark cases the search timed."""
    hyp = record.hypothesis or {}
    ev = hyp.get("evidence") if isinstance(hyp.get("evidence"), dict) else {}
    where, raw = next(((k, x) for k, x in (("evidence.groups", ev.get("groups")), ("hot_shapes", hyp.get("hot_shapes")),
                                          ("evidence.hot_shapes", ev.get("hot_shapes")), ("shapes", hyp.get("shapes")),
                                          ("evidence.shapes", ev.get("shapes")))
                       if isinstance(x, list) and x), ("", None))
    if raw is None:
        raw = [_parse_label(c) for c in record.benchmark_cases]
        where = "record.benchmark_cases"
    if not raw:
        raise ChangeError(f"hypothesis {hyp.get('id')}: no hot shapes (looked for evidence.groups, hot_shapes, "
                          "shapes, then the record's benchmark_cases): nothing to specialise for")
    domain = hyp.get("domain") if isinstance(hyp.get("domain"), dict) else {}
    rows = []
    for i, item in enumerate(raw):
        at = f"hypothesis {where}[{i}]" if where != "record.benchmark_cases" else f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ChangeError(f"{at}: expected a mapping with dims and dtype, got {item!r}")
        dims = item.get("dims") if isinstance(item.get("dims"), dict) else {k: item[k] for k in spec.dims if k in item}
        dims = _spec_dims(spec, dims, at)
        dtype = item.get("dtype")
        if dtype not in spec.dtypes:
            raise ChangeError(f"{at}: dtype {dtype!r} is not one of {spec.name}'s dtypes ({', '.join(spec.dtypes)})")
        if where == "evidence.groups" and not _in_hypothesis_domain(domain, dims, dtype, item.get("arch")):
            continue  # a far_from_limit hypothesis lists the kernel's groups; the domain is the target
        gpu_s = item.get("gpu_s")
        rows.append((-(gpu_s if isinstance(gpu_s, (int, float)) else 0.0), i, Shape(dims, dtype, "hot shape")))
    out: list[Shape] = []
    for _, _, s in sorted(rows, key=lambda r: (r[0], r[1])):
        if all((s.dims, s.dtype) != (o.dims, o.dtype) for o in out) and len(out) < MAX_HOT_SHAPES:
            out.append(s)
    if not out:
        raise ChangeError(f"hypothesis {hyp.get('id')}: none of its {where} lies in its domain {domain}")
    return out


def _in_hypothesis_domain(domain: dict, dims: dict, dtype: str, arch) -> bool:
    for k, r in (domain.get("dims") or {}).items():
        lo, hi = (r.get("min"), r.get("max")) if isinstance(r, dict) else (r[0], r[1])
        if k in dims and (dims[k] < lo or (hi is not None and dims[k] > hi)):
            return False
    dt = domain.get("dtypes") or ([domain["dtype"]] if domain.get("dtype") else None)
    if dt and dtype not in dt:
        return False
    want = domain.get("arch")
    want = [want] if isinstance(want, str) else want
    return not (want and isinstance(arch, str) and not any(fnmatch.fnmatchcase(arch, p) for p in want))


def variant_domain(hyp: dict, spec, hot: list[Shape], record: SearchRecord) -> dict:
    """The dispatch domain: the hypothesis's ``domain`` (dispatch format, or dim ranges at
    its top), dtypes from it or else the hot shapes' (only what was measured), arch from
    it, the hot shapes or the hypothesis's ``arch``/``device.arch``."""
    ev = hyp.get("evidence") if isinstance(hyp.get("evidence"), dict) else {}
    raw = hyp.get("domain") if isinstance(hyp.get("domain"), dict) else ev.get("domain")
    dims: dict = {}
    dtypes = arch = None
    if isinstance(raw, dict):
        ranges = raw.get("dims") if isinstance(raw.get("dims"), dict) else {k: v for k, v in raw.items() if k in spec.dims}
        for k, r in ranges.items():
            if k not in spec.dims:
                raise ChangeError(f"hypothesis domain: {k!r} is not a dim of {spec.name} ({', '.join(spec.dims)})")
            if isinstance(r, dict):
                lo, hi = r.get("min"), r.get("max")
            elif isinstance(r, (list, tuple)) and len(r) == 2:
                lo, hi = r
            else:
                lo = hi = None
            if not isinstance(lo, int) or not (hi is None or isinstance(hi, int)):
                raise ChangeError(f"hypothesis domain.{k}: expected [lo, hi] (hi may be null), got {r!r}")
            d = spec.dims[k]
            lo, hi = max(lo, d.min), (None if hi is None or hi >= d.max else hi)
            if hi is not None and hi < lo:
                raise ChangeError(f"hypothesis domain.{k}: {r!r} does not meet the spec's range [{d.min}, {d.max}]")
            if lo > d.min or hi is not None:
                dims[k] = [lo, hi]
        dt = raw.get("dtypes", [raw["dtype"]] if raw.get("dtype") else None)
        dtypes = list(dt) if dt else None
        a = raw.get("arch")
        arch = [a] if isinstance(a, str) else list(a) if a else None
    else:
        for k in spec.dims:
            values = [s.dims[k] for s in hot]
            lo, hi = min(values), max(values)
            dims[k] = [lo, hi]
    if dtypes is None:
        dtypes = [d for d in spec.dtypes if any(s.dtype == d for s in hot)]
    for d in dtypes:
        if d not in spec.dtypes:
            raise ChangeError(f"hypothesis domain: dtype {d!r} is not one of {spec.name}'s ({', '.join(spec.dtypes)})")
    if arch is None:
        found = [x for x in (hyp.get("arch"), (hyp.get("device") or {}).get("arch") if isinstance(hyp.get("device"), dict) else None,
                             ev.get("arch")) if isinstance(x, str) and x]
        rows = ev.get("groups") or hyp.get("hot_shapes") or ev.get("hot_shapes") or ev.get("shapes") or []
        found += [r["arch"] for r in rows if isinstance(r, dict) and isinstance(r.get("arch"), str)
                  and any(r.get("dims") == h.dims and r.get("dtype") == h.dtype for h in hot)]
        arch = sorted(set(found)) or None
    out: dict = {}
    if dims:
        out["dims"] = dims
    out["dtypes"] = dtypes
    if arch:
        out["arch"] = arch
    return out


def concrete_arch(domain: dict, hyp: dict) -> str:
    """An architecture inside the domain, to check routing with (its arch may be patterns)."""
    patterns = domain.get("arch")
    if not patterns:
        return "cpu"
    tries = [p for p in patterns if not any(c in p for c in "*?[")] + [re.sub(r"[*?]|\[.*?\]", "0", p) for p in patterns]
    for a in tries + list(_ARCH_GUESSES):
        if any(fnmatch.fnmatchcase(a, p) for p in patterns):
            return a
    raise ChangeError(f"domain arch {patterns}: cannot find an architecture name that matches")


def trigger(hyp: dict, repo: Path, telemetry: str | Path | None) -> dict:
    """What set the change off: the telemetry file's digest, and the windows the evidence cites."""
    out: dict = {"hypothesis_kind": hyp.get("kind")}
    if telemetry is not None:
        path = Path(telemetry)
        if not path.is_file():
            raise ChangeError(f"telemetry {path}: no such file")
        try:
            shown = path.resolve().relative_to(repo).as_posix()
        except ValueError:
            shown = path.name
        out["telemetry"] = {"path": shown, "sha256": att.sha256_file(path), "bytes": path.stat().st_size}
    refs, times = [], []

    def walk(v, depth=0):
        if depth > 6:
            return
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ("ref", "source") and isinstance(x, str):
                    refs.append(x)
                elif k in ("start", "end", "from", "to") and isinstance(x, (str, int, float)) and not isinstance(x, bool):
                    times.append(x)
                else:
                    walk(x, depth + 1)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, str) and re.search(r":\d+$", x):
                    refs.append(x)
                else:
                    walk(x, depth + 1)

    ev = hyp.get("evidence") if isinstance(hyp.get("evidence"), dict) else {}
    w = ev.get("windows")
    if isinstance(w, dict):  # the Reasoner's: count, from, to, and the top refs
        out["windows"] = {"count": w.get("count"), "start": w.get("from", w.get("start")),
                          "end": w.get("to", w.get("end")), "refs": list(w.get("refs") or [])[:200]}
        return out
    walk(ev)
    windows: dict = {"count": len(refs)}
    if refs:
        windows["refs"] = refs[:200]
    same_type = [t for t in times if isinstance(t, type(times[0]))] if times else []
    if same_type:
        windows["start"], windows["end"] = min(same_type), max(same_type)
    out["windows"] = windows
    return out


# ---------------------------------------------------------------------------------------
# The dispatch table


def append_variant(table_text: str, kernel: str, entry: dict, comment: str, where: str):
    """(new text, parsed table): ``entry`` appended with :func:`pytest_aina.runtime.dispatch.add_variant`
    (comments kept, the table checked), applied to a copy in a temporary folder."""
    from pytest_aina.runtime.dispatch import DispatchTableError, add_variant

    with tempfile.TemporaryDirectory(prefix="aina-table-") as tmp:
        path = Path(tmp) / f"{kernel}.yaml"
        path.write_text(table_text)
        try:
            table = add_variant(path, entry, comment=comment)
        except DispatchTableError as exc:
            issues = [i.replace(str(path), where) for i in exc.issues]
            raise ChangeError(f"{where}: the new variant does not fit the table:\n  " + "\n  ".join(issues)) from None
        return path.read_text(), table


def _generic_function(table_text: str, where: str, kernel: str) -> str:
    from pytest_aina.runtime.dispatch import DispatchTableError, parse_table

    try:
        return parse_table(table_text, where, kernel=kernel).generic.function
    except DispatchTableError as exc:
        raise ChangeError(f"{where}: the dispatch table does not load, fix it first:\n{exc}") from None


def _new_table(spec, kernel: str) -> str:
    module = spec.implementation.partition(":")[0]
    return (f"# Dispatch table of {kernel}: which function serves which calls (format: pytest_aina/runtime/dispatch.py).\n"
            f"aina_dispatch: 1\nkernel: {kernel}\nvariants:\n"
            f"  - name: generic\n    function: {module}:{kernel}_generic\n")


_EVOLVED_INIT = '''"""Kernel variants written by pytest-aina's evolution loop.

Each module here came from a candidate that passed its spec's checks in the sandbox; its
header names the hypothesis and the attestation (``provenance/``) that record how it was
found. Dispatch reaches them through ``kernels/variants/<kernel>.yaml``.
"""
'''


def _check_source(source: str, function: str, cid: str) -> None:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ChangeError(f"winner {cid}: its source does not parse (line {exc.lineno}: {exc.msg})") from None
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    if function not in names:
        raise ChangeError(f"winner {cid}: its source defines no top-level {function!r}")


def _source_module(cand, name: str, kernel: str, hid: str, function: str, stmt_rel: str, table_rel: str) -> str:
    parent = f", derived from {cand.parent}" if cand.parent else ""
    header = [
        f"# {kernel} variant {name}: written by pytest-aina's evolution loop for hypothesis {hid}.",
        f"# Candidate {cand.id} (proposer {cand.proposer}{parent}) passed the spec's checks in the",
        "# sandbox (import, pinned examples, properties, benchmarks). How it was found and measured:",
        f"# {stmt_rel}. Dispatch sends calls here through {table_rel}; its entry point is {function}.",
        "",
    ]
    return "\n".join(header) + cand.source.rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------
# The spec's pinned examples


def pin_examples(text: str, file: str, spec, hot: list[Shape], hid: str):
    """Append each hot shape not pinned yet to the spec's ``examples`` (text edit, comments
    and formatting kept). Returns (new text, added, already pinned, spec diff changes);
    raises :class:`ChangeError` if the result does not load or is anything but additions."""
    import yaml

    from pytest_aina.spec.model import parse_spec
    from pytest_aina.spec.ratchet import ADDED, diff_specs
    from pytest_aina.spec.reader import SpecError

    added, already = [], []
    for s in hot:
        pinned = any(ex.dim_map == s.dims and ex.dtype == s.dtype and ex.layout == "contiguous"
                     and ex.values == "normal" and not ex.batch for ex in spec.examples)
        (already if pinned else added).append({"dims": dict(s.dims), "dtype": s.dtype})
    if not added:
        return text, added, already, []
    items = [yaml.safe_dump({"dims": e["dims"], "dtype": e["dtype"],
                             "note": f"hot shape in production telemetry (hypothesis {hid})"},
                            default_flow_style=True, width=10 ** 6, sort_keys=False).strip() for e in added]
    comment = f"pinned by pytest-aina: the shapes hypothesis {hid} specialised a variant for"
    new_text = _append_to_list(text, "examples", items, comment, file)
    try:
        new_spec = parse_spec(new_text, file)
    except SpecError as exc:
        raise ChangeError(f"{file}: adding the hot shapes as examples makes the spec invalid:\n{exc}") from None
    changes = diff_specs({spec.name: spec}, {new_spec.name: new_spec})
    wrong = [c for c in changes if c.kind != ADDED]
    if wrong:
        raise ChangeError(f"{file}: the spec change must only add pinned examples, but `aina spec diff` finds: "
                          + "; ".join(f"{c.kind} {c.path}: {c.message}" for c in wrong))
    if len(changes) != len(added):
        raise ChangeError(f"{file}: {len(added)} example(s) appended but `aina spec diff` sees {len(changes)} "
                          "added; the text edit went wrong")
    return new_text, added, already, changes


def _append_to_list(text: str, key: str, items: list[str], comment: str, file: str) -> str:
    """Append flow-style ``items`` to the top-level list ``key`` of a YAML document's text."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise ChangeError(f"{file}: not valid YAML: {exc.problem}") from None
    finally:
        loader.dispose()
    if not isinstance(root, yaml.MappingNode):
        raise ChangeError(f"{file}: expected a mapping at the top")
    node = next((v for k, v in root.value if k.value == key), None)
    if node is None:  # no list yet: a new block at the end
        head = text if text.endswith("\n") or not text else text + "\n"
        return head + f"# {comment}\n{key}:\n" + "".join(f"  - {i}\n" for i in items)
    if not isinstance(node, yaml.SequenceNode):
        raise ChangeError(f"{file}: {key} must be a list to append to")
    if node.flow_style:
        # [..] or []: add before the closing bracket
        end = node.end_mark.index - 1
        sep = ", " if node.value else ""
        return text[:end] + sep + ", ".join(items) + text[end:]
    last = node.value[-1]
    dash = " " * node.start_mark.column
    end = _node_end(last)
    cut = text.find("\n", end)
    cut = len(text) if cut < 0 else cut + 1
    head = text[:cut] if text[:cut].endswith("\n") else text[:cut] + "\n"
    block = f"{dash}# {comment}\n" + "".join(f"{dash}- {i}\n" for i in items)
    return head + block + text[cut:]


def _node_end(node) -> int:
    """Index just past the last character of a node's own text (a block node's end mark
    runs on to the next token, past comments; its last scalar's does not)."""
    import yaml

    if isinstance(node, yaml.ScalarNode) or node.flow_style:
        return node.end_mark.index
    children = [c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode) else node.value
    return max((_node_end(c) for c in children), default=node.end_mark.index)


# ---------------------------------------------------------------------------------------
# Test shapes


def domain_edges(spec, domain: dict, hot: list[Shape], dtypes: list[str]) -> list[Shape]:
    """The two corners of the domain (every constrained dim at its low end, then at its
    high end; an open end at the spec's limit), other dims as in the first hot shape."""
    ranges = domain.get("dims") or {}
    if not ranges:
        return []
    base = dict(hot[0].dims)
    low = {k: (ranges[k][0] if k in ranges else v) for k, v in base.items()}
    high = {k: ((spec.dims[k].max if ranges[k][1] is None else ranges[k][1]) if k in ranges else v)
            for k, v in base.items()}
    out = []
    for dims, why in ((low, "domain corner, low"), (high, "domain corner, high")):
        for dt in dtypes:
            out.append(Shape(dims, dt, why))
    return out


def outside_calls(spec, domain: dict, hot: list[Shape], arch: str) -> list[tuple[dict, str, str]]:
    """Calls just outside the domain, one per bound: (dims, dtype, arch)."""
    base, dt = dict(hot[0].dims), hot[0].dtype
    out = []
    for k, (lo, hi) in (domain.get("dims") or {}).items():
        if lo > spec.dims[k].min:
            out.append((dict(base, **{k: lo - 1}), dt, arch))
        if hi is not None and hi < spec.dims[k].max:
            out.append((dict(base, **{k: hi + 1}), dt, arch))
    other = [d for d in spec.dtypes if d not in (domain.get("dtypes") or spec.dtypes)]
    if other:
        out.append((base, other[0], arch))
    if domain.get("arch"):
        away = next((a for a in _ARCH_GUESSES if not any(fnmatch.fnmatchcase(a, p) for p in domain["arch"])), None)
        if away:
            out.append((base, dt, away))
    return out


def _unique_shapes(shapes: list[Shape]) -> list[Shape]:
    seen, out = set(), []
    for s in shapes:
        key = (tuple(s.dims.items()), s.dtype)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------
# Measurements and evidence


def _measurements(record: SearchRecord, winner: Attempt, spec, hot: list[Shape]) -> tuple[list[dict], str]:
    """Before/after per timed case: the baseline (the current dispatch's choice, same run)
    against the winner; without a baseline, the torch reference timed beside the winner."""
    base = {t.get("case"): t for t in (record.baseline.verdict.timings if record.baseline else [])}
    label = _before_label(record.baseline)
    order = {c: i for i, c in enumerate(record.benchmark_cases)}
    rows = []
    for t in sorted(winner.verdict.timings, key=lambda t: order.get(t.get("case"), len(order))):
        case = t.get("case")
        after = t.get("samples_s") or []
        if record.baseline:
            b = base.get(case)
            before = (b or {}).get("samples_s") or []
        else:
            before = t.get("reference_samples_s") or []
        try:
            parsed = _parse_label(case)
        except ChangeError:
            parsed = None
        row = {"case": case, "clock": t.get("clock"), "before": att.summarize(before), "after": att.summarize(after),
               "speedup": att.ratio_ci(before, after), "reference": att.summarize(t.get("reference_samples_s")),
               "hot": bool(parsed and any(s.dims == _order(spec, parsed["dims"]) and s.dtype == parsed["dtype"]
                                          for s in hot))}
        if parsed:
            row.update(_limit(record, spec, parsed, row["after"]))
        rows.append(row)
    return rows, label


def _before_label(baseline: Attempt | None) -> str:
    """What 'before' is: the variant the current dispatch chose (the search measured it as
    its baseline), or the torch reference when the search had no baseline."""
    if baseline is None:
        return "torch reference"
    c = baseline.candidate
    named = c.meta.get("variant") if isinstance(c.meta, dict) else None
    if c.config is not None:
        what = named or "generic"
        return f"{what} ({c.describe()})" if c.config else what
    return named or f"current dispatch ({c.proposer})"


def _limit(record: SearchRecord, spec, parsed: dict, after: dict | None) -> dict:
    """% of the hardware limit at this case (GPU only): the spec's bytes/FLOPs model at the
    median latency, against the device's datasheet (or configured) limits."""
    try:
        nbytes = spec.bytes_for(_order(spec, parsed["dims"]), parsed["dtype"])
        nflops = spec.flops_for(_order(spec, parsed["dims"]), parsed["dtype"])
    except (KeyError, ValueError, ZeroDivisionError):
        return {"limit_note": "the spec's model does not evaluate at this case"}
    out: dict = {"bytes": nbytes, "flops": nflops}
    if record.device != "cuda" or not after:
        out["pct_of_limit"] = None
        out["limit_note"] = "CPU: Triton's interpreter has no hardware limit to compare with"
        return out
    from pytest_aina.devices import lookup

    name = ((record.environment or {}).get("device") or {}).get("name") or ""
    limits = lookup(name) if name else None
    if limits is None:
        out["pct_of_limit"] = None
        out["limit_note"] = f"no known limits for device {name!r} (pytest_aina/data/devices.json, AINA_DEVICES)"
        return out
    t = after["median_s"]
    pcts = []
    if nbytes:
        pcts.append((limits.pct_of_bandwidth(nbytes / t), "HBM bandwidth", spec.bytes_expr))
    if nflops:
        p = limits.pct_of_flops(nflops / t, parsed["dtype"])
        if p is not None:
            pcts.append((p, f"dense {parsed['dtype']} FLOP/s", spec.flops_expr))
    if not pcts:
        out["pct_of_limit"] = None
        out["limit_note"] = "the spec has no bytes or FLOPs model"
        return out
    pct, what, model = max(pcts)
    out["pct_of_limit"] = round(pct, 2)
    out["limit"] = {"what": what, "device": limits.name, "source": limits.source, "model": model}
    return out


def _evidence(record: SearchRecord, rows: list[dict], created: str, stmt_rel: str) -> dict:
    """The table entry's evidence (pytest_aina.runtime.dispatch's keys): the hottest timed case."""
    row = next((r for r in rows if r["hot"] and r.get("after")), next((r for r in rows if r.get("after")), None))
    if row is None:
        return {}
    try:
        parsed = _parse_label(row["case"])
    except ChangeError:
        parsed = None
    env = record.environment or {}
    dev = (env.get("device") or {}).get("name") or record.device
    ev: dict = {"device": dev if record.device == "cuda" else f"cpu, Triton interpreter ({dev})"}
    if parsed:
        ev["dims"] = parsed["dims"]
        ev["dtype"] = parsed["dtype"]
    # four significant digits: the interval is wider than that
    ev["latency_s"] = float(f"{row['after']['median_s']:.4g}")
    if row.get("before"):
        ev["baseline_latency_s"] = float(f"{row['before']['median_s']:.4g}")
    commit = (env.get("git") or {}).get("commit")
    if commit:
        ev["commit"] = commit
    ev["measured_at"] = record.finished or created
    sp = row.get("speedup")
    note = f"{sp['value']:.2f}x, 95% CI [{sp['ci95'][0]:.2f}, {sp['ci95'][1]:.2f}]; " if sp else ""
    if record.device != "cuda":
        note += "interpreter clock, not GPU evidence; "
    ev["note"] = note + f"provenance: {stmt_rel}"
    return ev


def _device(record: SearchRecord, winner: Attempt) -> dict:
    env_dev = (record.environment or {}).get("device") or {}
    clocks = sorted({t.get("clock") for t in winner.verdict.timings if t.get("clock")})
    d = {"kind": record.device, "name": env_dev.get("name") or record.device, "clock": ", ".join(clocks) or None,
         "gpu_evidence": record.device == "cuda"}
    if record.device != "cuda":
        d["note"] = "timings from Triton's interpreter on a CPU: not GPU evidence"
    for k in ("capability", "driver", "cuda"):
        if env_dev.get(k):
            d[k] = env_dev[k]
    return d


# ---------------------------------------------------------------------------------------
# Small helpers


def _parse_label(label: str) -> dict:
    """``M=4096,N=50304,bfloat16`` (or ``dtype=bfloat16``) -> {dims, dtype}."""
    from pytest_aina.spec.model import DTYPES

    dims, dtype = {}, None
    for part in str(label).split(","):
        part = part.strip()
        k, eq, v = part.partition("=")
        if not eq and part in DTYPES:
            dtype = part
        elif k == "dtype" and v in DTYPES:
            dtype = v
        elif eq and v.lstrip("-").isdigit():
            dims[k] = int(v)
    if not dims or dtype is None:
        raise ChangeError(f"benchmark case {label!r}: expected 'M=..,N=..,<dtype>'")
    return {"dims": dims, "dtype": dtype}


def _spec_dims(spec, dims: dict, at: str) -> dict:
    if set(dims) != set(spec.dims):
        raise ChangeError(f"{at}: dims {sorted(dims)} are not {spec.name}'s dims {list(spec.dims)}")
    out = {}
    for k in spec.dims:
        v = dims[k]
        d = spec.dims[k]
        if isinstance(v, bool) or not isinstance(v, int) or not d.min <= v <= d.max:
            raise ChangeError(f"{at}: {k}={v!r} is outside {spec.name}'s domain [{d.min}, {d.max}]")
        out[k] = v
    return out


def _order(spec, dims: dict) -> dict:
    return {k: dims[k] for k in spec.dims if k in dims}


def _inside(domain: dict, dims: dict, dtype: str) -> bool:
    for k, (lo, hi) in (domain.get("dims") or {}).items():
        if dims[k] < lo or (hi is not None and dims[k] > hi):
            return False
    return dtype in (domain.get("dtypes") or [dtype])


def _label(dims: dict, dtype: str) -> str:
    return ",".join([f"{k}={v}" for k, v in dims.items()] + [dtype])


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ChangeError(f"{what} {path}: cannot read: {exc.strerror}") from None


def _iso(now: datetime | str | None) -> str:
    if isinstance(now, str):
        return now
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refuse_secrets(files: Mapping[str, str | None]) -> None:
    """A change never carries a credential: the record was redacted; anything else that
    still holds one (a candidate that printed a token into its source) is refused."""
    from pytest_aina.sandbox.redact import Redactor

    r = Redactor()
    for path, text in files.items():
        if text is not None and r.text(text) != text:
            raise ChangeError(f"{path}: contains what looks like a credential (a secret of this environment or "
                              "a token's shape); the change is not written")
