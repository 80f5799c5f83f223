"""From a finished search to a change an engineer would make.

:func:`write_change` turns a :class:`~pytest_aina.changer.model.SearchRecord` whose winner
beat the baseline into a :class:`~pytest_aina.changer.change.model.Change`: the files to
commit (as text; the working tree is never touched), the PR title and body, labels and the
branch name. The files:

* the variant's dispatch entry appended to ``kernels/variants/<kernel>.yaml`` (comments
  kept, the table checked by :mod:`pytest_aina.runtime.dispatch`), for the hypothesis's shape
  domain (:mod:`.shapes`), with its evidence (:mod:`.evidence`); a source winner also gets
  its module ``kernels/evolved/<variant>.py``;
* the hot shapes appended to the spec's ``examples`` (:mod:`.pinning`);
* the generated test module ``tests/evolved/test_<variant>.py`` (:mod:`.testgen`);
* the in-toto statement ``provenance/<kernel>/<variant>.intoto.json`` (:mod:`.attestation`),
  from which the PR body is rendered (:mod:`.prbody`).

Coverage needs the files on disk: :meth:`Change.materialize` writes them into a scratch
checkout, :meth:`Change.measure_coverage` runs the generated tests there under coverage.py,
and :meth:`Change.with_coverage` puts the figures into the attestation and the body.
"""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_aina.changer.change.attestation as att
import pytest_aina.changer.change.evidence as evidence
import pytest_aina.changer.change.testgen as testgen
from pytest_aina.changer.change.model import Change, ChangeError
from pytest_aina.changer.change.pinning import pin_examples
from pytest_aina.changer.change.shapes import (
    concrete_arch,
    domain_edges,
    hot_shapes,
    inside,
    label,
    outside_calls,
    unique_shapes,
    variant_domain,
)
from pytest_aina.changer.change.testgen import Shape
from pytest_aina.changer.model import SearchRecord
from pytest_aina.reasoner.hypothesis import Hypothesis
from pytest_aina.runtime.dispatch import DispatchTableError, add_variant, parse_table
from pytest_aina.sandbox.redact import Redactor
from pytest_aina.spec.model import parse_spec
from pytest_aina.spec.reader import SpecError


def write_change(
    record: SearchRecord,
    repo: str | Path,
    *,
    spec_path: str | Path,
    now: datetime | str | None = None,
    telemetry: str | Path | None = None,
) -> Change:
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
        raise ChangeError(
            f"search for {record.kernel}: no winner (nothing beat the baseline, "
            f"winner={record.winner!r}); there is no change to write"
        )
    if not winner.verdict.passed:
        raise ChangeError(
            f"search for {record.kernel}: winner {record.winner} did not pass the cascade "
            f"({winner.verdict.failed_stage}: {winner.verdict.reason})"
        )
    cand = winner.candidate
    if cand.kernel != record.kernel:
        raise ChangeError(f"winner {cand.id} is a candidate for {cand.kernel!r}, not {record.kernel!r}")
    if cand.config is None and cand.source is None:
        raise ChangeError(f"winner {cand.id} has neither config nor source")
    if cand.source is None and not cand.config:
        raise ChangeError(
            f"winner {cand.id} is the generic kernel with its heuristic defaults: it is what "
            "already serves these calls, so there is nothing to add"
        )
    hyp = record.hypothesis
    if not isinstance(hyp, Hypothesis):
        raise ChangeError(
            f"record.hypothesis must be a Hypothesis (the Reasoner's), got {type(hyp).__name__}; "
            "Hypothesis.from_json reads its JSON form"
        )
    hid = hyp.id
    created = _iso(now)

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
    domain = variant_domain(hyp, spec, hot)
    for s in hot:
        if not inside(domain, s.dims, s.dtype):
            raise ChangeError(
                f"hypothesis {hid}: hot shape {label(s.dims, s.dtype)} lies outside the domain "
                f"{domain}; dispatch would never send it to the new variant"
            )
    arch = concrete_arch(domain)

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
    measured, before_label = evidence.measurements(record, winner, spec, hot)
    entry_evidence = evidence.table_evidence(record, measured, created, stmt_rel)
    entry: dict[str, Any] = {"name": name, "function": fn_path or _generic_function(table_text, table_rel, kernel)}
    if cand.config:
        entry["config"] = dict(cand.config)
    entry["domain"] = domain
    if entry_evidence:
        entry["evidence"] = entry_evidence
    n_tried = len(record.attempts)
    comment = (
        f"added by pytest-aina for hypothesis {hid} ({hyp.kind}),\n"
        f"the best of {n_tried} candidate(s); evidence: {stmt_rel}"
    )
    new_table, table = append_variant(table_text, kernel, entry, comment, table_rel)
    for s in hot + [Shape(s.dims, dt) for s in hot for dt in domain["dtypes"]]:
        chosen = table.select(s.dims, s.dtype, arch).name
        if chosen != name:
            raise ChangeError(
                f"{table_rel}: {label(s.dims, s.dtype)} on {arch} would go to the existing variant "
                f"{chosen!r}, which is more specific than the new one; the change would not be used"
            )
    files[table_rel] = new_table

    # -- the spec: hot shapes pinned, nothing removed
    new_spec_text, added, already, spec_changes = pin_examples(spec_text, spec_rel, spec, hot, hid)
    if added:
        files[spec_rel] = new_spec_text

    # -- the generated tests
    # every hot shape in every dtype of the domain, then the domain's corners
    dtypes = domain.get("dtypes") or list(spec.dtypes)
    hot_tests = unique_shapes([Shape(s.dims, dt, "hot shape") for s in hot for dt in dtypes])
    seen = {(tuple(s.dims.items()), s.dtype) for s in hot_tests}
    edges = [
        e
        for e in unique_shapes(domain_edges(spec, domain, hot, dtypes))
        if (tuple(e.dims.items()), e.dtype) not in seen
    ]
    files[test_rel] = testgen.render_test(
        spec=spec,
        spec_rel=spec_rel,
        table_rel=table_rel,
        kernel=kernel,
        variant=entry,
        hypothesis_id=hid,
        attestation_rel=stmt_rel,
        hot=hot_tests,
        edges=edges,
        outside=outside_calls(spec, domain, hot, arch),
        arch=arch,
    )

    # -- the record, then the body rendered from it
    env = dict(record.environment or {})
    git = env.get("git") or {}
    predicate = {
        "kernel": kernel,
        "created": created,
        "attestation": stmt_rel,
        "variant": {
            "name": name,
            "kind": "config" if cand.source is None else "source",
            "function": entry["function"],
            "config": entry.get("config"),
            "domain": domain,
            "table": table_rel,
            "module": module_rel,
            "test": test_rel,
            "candidate": cand.id,
            "proposer": cand.proposer,
        },
        "hypothesis": hyp.to_json(),
        "trigger": evidence.trigger(hyp, repo, telemetry),
        "device": evidence.device(record, winner),
        "measurements": [dict(m, before_label=before_label) for m in measured],
        **att.predicate_of(record),
        "spec": {
            "path": spec_rel,
            "examples_added": added,
            "already_pinned": already,
            "diff": [c.as_dict() for c in spec_changes],
        },
        "environment": env,
        "base": {"commit": git.get("commit"), "dirty": git.get("dirty")},
        "coverage": {
            "status": "not measured yet: Change.measure_coverage runs the generated tests "
            "under coverage.py once the files are in a checkout"
        },
        "reproduce": {
            "tests": f"python -m pytest {test_rel}",
            "spec": f"python -m pytest --aina {spec_rel}",
            "search": record.repeat or "# the search did not record its command",
            "note": (
                "Without a GPU these run in Triton's interpreter (TRITON_INTERPRET=1 is set automatically); "
                "the full-size cases of the generated tests run only on a GPU runner."
                if record.device == "cpu"
                else ""
            ),
        },
        "rollback": {"pin": f"AINA_DISPATCH_PIN={kernel}=generic", "revert": "git revert <the commit of this change>"},
    }
    stmt = att.statement(files=files, attestation_path=stmt_rel, predicate=predicate)
    files[stmt_rel] = att.dumps(stmt)
    _refuse_secrets(files)
    return Change.from_files(files, attestation=stmt_rel)


# ---------------------------------------------------------------------------------------
# The dispatch table


def append_variant(table_text: str, kernel: str, entry: dict, comment: str, where: str):
    """(new text, parsed table): ``entry`` appended with :func:`pytest_aina.runtime.dispatch.add_variant`
    (comments kept, the table checked), applied to a copy in a temporary folder."""
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
    try:
        return parse_table(table_text, where, kernel=kernel).generic.function
    except DispatchTableError as exc:
        raise ChangeError(f"{where}: the dispatch table does not load, fix it first:\n{exc}") from None


def _new_table(spec, kernel: str) -> str:
    module = spec.implementation.partition(":")[0]
    return (
        f"# Dispatch table of {kernel}: which function serves which calls (format: pytest_aina/runtime/dispatch.py).\n"
        f"aina_dispatch: 1\nkernel: {kernel}\nvariants:\n"
        f"  - name: generic\n    function: {module}:{kernel}_generic\n"
    )


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
# Small helpers


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ChangeError(f"{what} {path}: cannot read: {exc.strerror}") from None


def _iso(now: datetime | str | None) -> str:
    if isinstance(now, str):
        return now
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refuse_secrets(files: Mapping[str, str | None]) -> None:
    """A change never carries a credential: the record was redacted; anything else that
    still holds one (a candidate that printed a token into its source) is refused."""
    r = Redactor()
    for path, text in files.items():
        if text is not None and r.text(text) != text:
            raise ChangeError(
                f"{path}: contains what looks like a credential (a secret of this environment or "
                "a token's shape); the change is not written"
            )
