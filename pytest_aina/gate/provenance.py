"""Provenance of a bot change: its in-toto attestation, checked against the change itself.

This module is the gate's one seam to the Changer's record (:mod:`pytest_aina.changer`):
the branch prefix of bot changes and the one provenance verifier, through
:func:`verify_statement`.

A change is a bot change when its branch starts with ``aina/`` or it adds or modifies an
attestation (``provenance/**.intoto.json``). Its attestation must then say exactly what
the change is:

* the files changed are exactly the files the statement declares as subjects (the
  attestation itself aside), each with the sha256 of the committed content;
* the base it names is the pull request's base (the commit the branch forked from);
* it carries the hypothesis (with its id) and the digest of the telemetry that triggered it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from pytest_aina.changer.change import BRANCH_PREFIX, verify
from pytest_aina.changer.change.model import risk
from pytest_aina.gate.repo import Repo
from pytest_aina.gate.scope import Scope
from pytest_aina.gate.verdict import FAIL, PASS, SKIPPED, Annotation, CheckResult

CHECK = "provenance"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_bot_branch(branch: str | None) -> bool:
    return bool(branch) and branch.startswith(BRANCH_PREFIX)


def verify_statement(
    statement: dict, files: dict[str, str | None], *, changed: set[str], attestation_path: str, base_commit: str
) -> list[str]:
    """Every way ``statement`` does not describe the change ([] when it does), by the core's
    one provenance verifier (:func:`pytest_aina.changer.change.verify`, which ``aina evolve``
    and the App use too). ``files``: the head's content of every path changed or declared
    (None: absent at the head)."""
    return verify(
        {path: files.get(path) for path in changed},
        attestation=attestation_path,
        statement=json.dumps(statement),
        base=base_commit,
    )


@dataclass
class Attestation:
    path: str
    sha256: str
    statement: dict = field(default_factory=dict)

    @property
    def predicate(self) -> dict:
        p = self.statement.get("predicate")
        return p if isinstance(p, dict) else {}


def attestations(repo: Repo, head: str, scope: Scope) -> tuple[list[Attestation], list[str]]:
    """The attestations the change adds or modifies, parsed; and the ones that do not parse."""
    found, broken = [], []
    for path in scope.of_kind("attestation"):
        data = repo.read(head, path)
        if data is None:
            continue  # deleted: a change removing a record is judged by its other files
        try:
            stmt = json.loads(data)
            if not isinstance(stmt, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            broken.append(f"{path}: not a JSON in-toto statement ({exc})")
            continue
        found.append(Attestation(path, hashlib.sha256(data).hexdigest(), stmt))
    return found, broken


def check(
    repo: Repo, base: str, head: str, scope: Scope, branch: str | None, found: list[Attestation], broken: list[str]
) -> CheckResult:
    bot = is_bot_branch(branch)
    if not bot and not found and not broken:
        return CheckResult(CHECK, SKIPPED, "not a bot change (no aina/ branch, no attestation)")
    if not found and not broken:
        return CheckResult(
            CHECK,
            FAIL,
            f"bot branch {branch} carries no attestation (provenance/**.intoto.json)",
            annotations=[
                Annotation(None, None, f"branch {branch}: no attestation in the change", title="aina gate: provenance")
            ],
        )
    changed = set(scope.paths) - {a.path for a in found}
    problems = list(broken)
    notes = []
    for a in found:
        declared = {s.get("name") for s in a.statement.get("subject", []) if isinstance(s, dict)}
        files = {p: repo.text(head, p) for p in sorted((changed | declared) - {None})}
        for problem in verify_statement(a.statement, files, changed=changed, attestation_path=a.path, base_commit=base):
            problems.append(f"{a.path}: {problem}")
            file = problem.partition(":")[0] if problem.partition(":")[0] in files else a.path
            notes.append(Annotation(file, None, problem, title="aina gate: provenance"))
    data = {
        "bot_branch": bot,
        "attestations": [{"path": a.path, "sha256": a.sha256} for a in found],
        "problems": problems,
    }
    if problems:
        return CheckResult(CHECK, FAIL, f"{len(problems)} provenance problem(s): {problems[0]}", problems, notes, data)
    return CheckResult(
        CHECK,
        PASS,
        f"{len(found)} attestation(s) match the change exactly",
        [f"{a.path}: sha256 {a.sha256[:12]}" for a in found],
        notes,
        data,
    )


def risk_of(predicate: dict) -> str:
    """The risk tier the Changer gave its change (the ``risk:`` label), from its record, by
    the Changer's own rule (:func:`pytest_aina.changer.change.model.risk`)."""
    variant = predicate.get("variant") if isinstance(predicate.get("variant"), dict) else {}
    cov = predicate.get("coverage") if isinstance(predicate.get("coverage"), dict) else {}
    measured = "percent" in cov or "tests_passed" in cov
    return risk(variant.get("kind"), cov if measured else None)
