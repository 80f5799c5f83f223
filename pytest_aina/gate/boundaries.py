"""The ratchet in the gate: boundary changes from base to head, and who approved which weakening.

The rule is ``aina spec diff``'s (:mod:`pytest_aina.spec.ratchet`; this module is the gate's
one use of it): a boundary removed or weakened fails the gate, unless a person with write
access approved *exactly that* weakening.

**The weakening's digest** names it: sha256 over the canonical JSON (sorted keys, no
spaces) of ``{"spec", "kind", "path", "before", "after", "base_spec_sha256",
"head_spec_sha256"}``, the last two being the sha256 of the spec file's bytes on each side
(``null`` when absent). An approval names a digest (or its first 16 hex digits); since the
digest covers the whole spec file on both sides, *any* later edit of that spec (or of its
base) gives every weakening in it a new digest, and the old approval no longer matches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from pytest_aina.gate.approvals import Decisions
from pytest_aina.gate.repo import Repo
from pytest_aina.gate.verdict import FAIL, NEEDS, PASS, Annotation, CheckResult
from pytest_aina.spec.ratchet import SpecSetError, diff_specs, load_spec_set

CHECK = "ratchet"
SHORT = 16  # hex digits of a digest shown for approving (fits a label)


@dataclass
class SpecSets:
    """The specs at the base and at the head: ``{name: Spec}`` each, their paths in the
    repository, and what did not load."""

    base: dict = field(default_factory=dict)
    head: dict = field(default_factory=dict)
    paths: dict = field(default_factory=lambda: {"base": {}, "head": {}})
    errors: dict = field(default_factory=dict)  # side -> SpecSetError


def _path(spec, commit: str) -> str:
    return str(spec.path).removeprefix(f"{commit}:")


def load(repo: Repo, base: str, head: str, folder: str = "specs") -> SpecSets:
    sets = SpecSets()
    for side, commit in (("base", base), ("head", head)):
        try:
            loaded = load_spec_set(commit, specs=folder, repo=repo.root)
        except SpecSetError as exc:
            sets.errors[side] = exc
            continue
        setattr(sets, side, loaded)
        sets.paths[side] = {name: _path(spec, commit) for name, spec in loaded.items()}
    return sets


def weakening_record(change, base_sha: str | None, head_sha: str | None) -> dict:
    return {
        "spec": change.spec,
        "kind": change.kind,
        "path": change.path,
        "before": change.before,
        "after": change.after,
        "base_spec_sha256": base_sha,
        "head_spec_sha256": head_sha,
    }


def digest(record: dict) -> str:
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_sha(repo: Repo, commit: str, path: str | None) -> str | None:
    data = repo.read(commit, path) if path else None
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _where(change, base: str, head: str) -> str | None:
    if not change.file:
        return None
    return change.file.removeprefix(f"{head}:").removeprefix(f"{base}:")


def check(repo: Repo, base: str, head: str, sets: SpecSets, decisions: Decisions, *, bot: bool) -> CheckResult:
    """The ratchet's verdict. ``bot``: a bot's change, for which a neutral boundary change
    (an implementation moved, a benchmark case removed) also waits for an approving review."""
    for side in ("head", "base"):
        if side in sets.errors:
            err = sets.errors[side]
            notes = [
                Annotation(
                    i.file.removeprefix(f"{head}:").removeprefix(f"{base}:"),
                    i.line,
                    f"{i.message}",
                    title="aina gate: spec does not load",
                )
                for i in err.issues
            ]
            return CheckResult(
                CHECK, FAIL, f"the specs at the {side} do not load", details=[str(err)], annotations=notes
            )
    changes = diff_specs(sets.base, sets.head)
    rows, notes = [], []
    unapproved, approved, neutral = 0, 0, 0
    matched: set[str] = set()
    for c in changes:
        where = _where(c, base, head)
        row = {
            "spec": c.spec,
            "kind": c.kind,
            "path": c.path,
            "message": c.message,
            "before": c.before,
            "after": c.after,
            "file": where,
            "line": c.line,
        }
        if c.weakening:
            record = weakening_record(
                c,
                _file_sha(repo, base, sets.paths["base"].get(c.spec)),
                _file_sha(repo, head, sets.paths["head"].get(c.spec)),
            )
            d = digest(record)
            row["digest"] = d
            good, other = decisions.approval_of(d)
            if good is not None:
                approved += 1
                matched.add(good.digest)
                row["approved_by"] = good.by
                notes.append(
                    Annotation(
                        where,
                        c.line,
                        f"{c.message}: approved by {good.by} ({good.source})",
                        title="aina gate: weakening approved",
                        level="notice",
                    )
                )
            else:
                unapproved += 1
                denied = "".join(f"; {a.by} named it but has {a.permission} permission" for a in other)
                row["approval_refused"] = [a.by for a in other]
                values = f" ({c.before} -> {c.after})" if c.kind == "weakened" else ""
                notes.append(
                    Annotation(
                        where,
                        c.line,
                        f"{c.spec}: {c.path}: {c.message}{values}. A weakening needs "
                        f"the approval of a person with write access: comment '/aina approve "
                        f"{d[:SHORT]}' or add the label 'aina-approve:{d[:SHORT]}'{denied}",
                        title="aina gate: boundary weakened",
                    )
                )
        elif c.direction == "neutral":
            neutral += 1
            notes.append(
                Annotation(
                    where,
                    c.line,
                    f"{c.spec}: {c.path}: {c.message}",
                    title="aina gate: boundary changed",
                    level="warning",
                )
            )
        rows.append(row)
    stale = [a for a in decisions.approvals if a.counts and a.digest not in matched]
    details = [
        f"{r['spec']}: {r['kind']} {r['path']}: {r['message']}"
        + (f" [digest {r['digest'][:SHORT]}]" if "digest" in r else "")
        + (f" approved by {r['approved_by']}" if "approved_by" in r else "")
        for r in rows
    ]
    details += [
        f"approval {a.digest[:SHORT]} by {a.by} names no weakening of this change (a different one, or "
        "one a later edit of the spec voided)"
        for a in stale
    ]
    data = {
        "changes": rows,
        "weakenings": unapproved + approved,
        "approved": approved,
        "unapproved_approvals": [a.digest for a in stale],
    }
    if unapproved:
        return CheckResult(
            CHECK,
            FAIL,
            f"{unapproved} boundary weakening(s) without an approval"
            + (f" ({len(stale)} approval(s) name other weakenings)" if stale else ""),
            details,
            notes,
            data,
        )
    if bot and neutral and not decisions.approving_reviewers:
        return CheckResult(
            CHECK,
            NEEDS,
            f"{neutral} boundary change(s) a person should review (a bot change; no approving review yet)",
            details,
            notes,
            data,
        )
    if not changes:
        return CheckResult(CHECK, PASS, "no boundary changed", details, notes, data)
    summary = (
        f"{len(changes)} boundary change(s), none weakening"
        if not approved
        else f"{approved} weakening(s), each approved by a person with write access"
    )
    return CheckResult(CHECK, PASS, summary, details, notes, data)
