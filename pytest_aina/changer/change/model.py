"""The change an evolution run makes: THE type ``aina evolve``, the GitHub App and the merge
gate pass around.

A :class:`Change` is plain data: the files to commit (path -> text; None deletes the path),
the in-toto statement among them (:mod:`.attestation`), and what a PR needs besides (branch,
title, body, labels). It waits in the App's job queue as JSON (:meth:`Change.to_json`) and is
read back with :meth:`Change.from_json`, checked field by field.

Everything but the branch and ``supersedes`` follows from the files: the title and the body
are rendered from the statement (:mod:`.prbody`), the labels and ``metadata`` are read from
its predicate. So a change can also be read back from a commit, the files it changes on top
of its base (:meth:`Change.from_files`), which is what the merge gate does with a PR's head.

Bot branches are named under :data:`BRANCH_PREFIX` (:func:`branch_name`, :func:`is_bot_branch`):
the same hypothesis always maps to the same branch, hence the same PR.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest_aina.changer.change.attestation as att
import pytest_aina.changer.change.prbody as prbody
import pytest_aina.changer.change.testgen as testgen
from pytest_aina.reasoner.hypothesis import Hypothesis, HypothesisError

#: Every branch pytest-aina makes (the local forge's and the App's) starts with this.
BRANCH_PREFIX = "aina/"
#: Below this coverage of a new source module, a change is labelled high risk.
SOURCE_COVERAGE_FLOOR = 80.0
#: Label every bot PR carries (and the first of a change's labels).
BOT_LABEL = "aina"

_FIELDS = (
    "hypothesis_id",
    "branch",
    "title",
    "body",
    "files",
    "attestation",
    "labels",
    "kernel",
    "supersedes",
    "metadata",
)
_REQUIRED = ("hypothesis_id", "branch", "title", "body", "files", "attestation")


class ChangeError(ValueError):
    """A change cannot be made, or is malformed; the message says which part and why."""


def is_bot_branch(name: Any) -> bool:
    """Whether ``name`` (a branch name, without ``refs/heads/``) is one pytest-aina makes."""
    return isinstance(name, str) and name.startswith(BRANCH_PREFIX)


def branch_name(kernel: str, hypothesis_id: str) -> str:
    """``aina/<kernel>-<short hypothesis id>``: the same hypothesis always gets the same branch."""
    short = re.sub(r"[^a-z0-9]+", "-", hypothesis_id.lower()).strip("-")
    if len(short) > 32 or not short:
        short = short[:15].rstrip("-") + "-" + hashlib.sha256(hypothesis_id.encode()).hexdigest()[:8]
    return f"{BRANCH_PREFIX}{kernel}-{short.strip('-')}"


def check_path(path: Any, *, where: str) -> str:
    """A repository path: relative, normalised, no ``..``, not inside ``.git``."""
    if not isinstance(path, str) or not path:
        raise ChangeError(f"{where}: a path must be non-empty text, got {path!r}")
    if (
        path.startswith("/")
        or posixpath.normpath(path) != path
        or path.startswith("../")
        or path == ".."
        or "\\" in path
        or "\x00" in path
        or "\n" in path
    ):
        raise ChangeError(f"{where}: {path!r} is not a normalised relative path")
    if path.split("/")[0] == ".git":
        raise ChangeError(f"{where}: {path!r} is inside .git")
    return path


def risk(kind: str | None, coverage: Mapping[str, Any] | None) -> str:
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


@dataclass(frozen=True)
class Change:
    """One evolution PR's content.

    ``files`` maps repository paths to their new text; ``None`` deletes a path (a retired
    variant). ``attestation`` is the path, among ``files``, of the in-toto statement that
    records how the change was made. ``supersedes`` names hypotheses whose open PRs this
    one replaces; ``metadata`` is a summary of the statement for logs and the App's store.
    """

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

    def __post_init__(self):
        for name in ("hypothesis_id", "branch", "title", "attestation"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ChangeError(f"Change.{name} must be non-empty text, got {value!r}")
        if not isinstance(self.body, str):
            raise ChangeError("Change.body must be text (markdown)")
        if (
            not is_bot_branch(self.branch)
            or ".." in self.branch
            or self.branch.endswith(("/", ".lock"))
            or any(c in self.branch for c in " ~^:?*[\\")
        ):
            raise ChangeError(f"Change.branch {self.branch!r} must be a valid git branch name under {BRANCH_PREFIX!r}")
        if not isinstance(self.files, Mapping) or not self.files:
            raise ChangeError("Change.files must map at least one path to its content")
        for path, content in self.files.items():
            check_path(path, where="Change.files")
            if content is not None and not isinstance(content, str):
                raise ChangeError(f"Change.files[{path!r}] must be text or None (delete)")
        if self.attestation not in self.files or self.files[self.attestation] is None:
            raise ChangeError(f"Change.attestation {self.attestation!r} must be one of the files the change writes")
        try:
            statement = json.loads(self.files[self.attestation])
        except ValueError as exc:
            raise ChangeError(f"Change.attestation {self.attestation!r} is not JSON: {exc}") from None
        if not isinstance(statement, dict) or "_type" not in statement:
            raise ChangeError(f"Change.attestation {self.attestation!r} is not an in-toto statement (no _type)")
        if not isinstance(self.labels, tuple) or not all(
            isinstance(x, str) and x and len(x) <= 50 for x in self.labels
        ):
            raise ChangeError("Change.labels must be a tuple of label names (1-50 characters)")
        if self.kernel is not None and not isinstance(self.kernel, str):
            raise ChangeError("Change.kernel must be text or None")
        if not isinstance(self.supersedes, tuple) or not all(isinstance(x, str) for x in self.supersedes):
            raise ChangeError("Change.supersedes must be a tuple of hypothesis ids")
        if not isinstance(self.metadata, Mapping):
            raise ChangeError("Change.metadata must be a mapping")

    # -- JSON, for the App's job queue and store, and the local forge's record ----------

    def to_json(self) -> dict[str, Any]:
        return {
            "hypothesis_id": self.hypothesis_id,
            "branch": self.branch,
            "title": self.title,
            "body": self.body,
            "files": dict(self.files),
            "attestation": self.attestation,
            "labels": list(self.labels),
            "kernel": self.kernel,
            "supersedes": list(self.supersedes),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        if not isinstance(data, Mapping):
            raise ChangeError(f"a change must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise ChangeError(f"a change has unknown keys: {sorted(unknown)}")
        missing = set(_REQUIRED) - set(data)
        if missing:
            raise ChangeError(f"a change lacks keys: {sorted(missing)}")
        files = data["files"]
        return cls(
            hypothesis_id=data["hypothesis_id"],
            branch=data["branch"],
            title=data["title"],
            body=data["body"],
            files=dict(files) if isinstance(files, Mapping) else files,
            attestation=data["attestation"],
            labels=tuple(data.get("labels") or ()),
            kernel=data.get("kernel"),
            supersedes=tuple(data.get("supersedes") or ()),
            metadata=dict(data.get("metadata") or {}),
        )

    # -- Read back from the statement ----------------------------------------------------

    @classmethod
    def from_files(
        cls,
        files: Mapping[str, str | None],
        *,
        attestation: str | None = None,
        branch: str | None = None,
        supersedes: tuple[str, ...] = (),
    ) -> Change:
        """The change that writes ``files`` (path -> text, None: deleted), everything else
        read from its in-toto statement: the one at ``attestation``, or else the one file
        among ``files`` that is a statement of pytest-aina's predicate type. ``branch``
        defaults to the hypothesis's (:func:`branch_name`). Raises :class:`ChangeError`
        when the statement is missing or does not say what a change needs."""
        if attestation is None:
            found = [p for p, text in files.items() if text is not None and att.is_statement(text)]
            if len(found) != 1:
                raise ChangeError(
                    f"expected one attestation ({att.PREDICATE_TYPE}) among the files, found "
                    f"{len(found)}: {sorted(found)}"
                )
            attestation = found[0]
        text = files.get(attestation)
        if text is None:
            raise ChangeError(f"the attestation {attestation} is not among the files the change writes")
        try:
            stmt = json.loads(text)
            p = stmt["predicate"]
            kernel, hid = p["kernel"], p["hypothesis"]["id"]
            title, body = prbody.title(stmt), prbody.render(stmt)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ChangeError(
                f"{attestation}: not a statement a change can be read from ({type(exc).__name__}: {exc})"
            ) from None
        coverage = p.get("coverage") if isinstance(p.get("coverage"), dict) and "percent" in p["coverage"] else None
        labels = (BOT_LABEL, f"kernel:{kernel}", f"risk:{risk((p.get('variant') or {}).get('kind'), coverage)}")
        return cls(
            hypothesis_id=hid,
            branch=branch or branch_name(kernel, hid),
            title=title,
            body=body,
            files=dict(files),
            attestation=attestation,
            labels=labels,
            kernel=kernel,
            supersedes=tuple(supersedes),
            metadata=summary(p),
        )

    @property
    def statement(self) -> dict:
        return json.loads(self.files[self.attestation])

    @property
    def hypothesis(self) -> Hypothesis:
        """The hypothesis the change was made for, as its statement records it."""
        try:
            return Hypothesis.from_json(self.statement["predicate"]["hypothesis"])
        except (KeyError, TypeError, HypothesisError) as exc:
            raise ChangeError(f"{self.attestation}: no readable hypothesis: {exc}") from None

    # -- On disk: coverage needs the files in a checkout ---------------------------------

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
        were materialised (see :func:`pytest_aina.changer.change.testgen.measure_coverage`)."""
        v = self.statement["predicate"]["variant"]
        target, function = testgen.coverage_target(v, v.get("module"))
        return testgen.measure_coverage(root, test=v["test"], target=target, function=function, timeout_s=timeout_s)

    def with_coverage(self, figures: dict) -> Change:
        """This change with ``figures`` recorded in the attestation, the body and the labels."""
        stmt = self.statement
        stmt["predicate"]["coverage"] = att.redact(figures)
        files = dict(self.files)
        files[self.attestation] = att.dumps(stmt)
        kind = stmt["predicate"]["variant"]["kind"]
        labels = tuple(x for x in self.labels if not x.startswith("risk:")) + (f"risk:{risk(kind, figures)}",)
        return replace(self, files=files, body=prbody.render(stmt), labels=labels, metadata=summary(stmt["predicate"]))


def summary(p: Mapping[str, Any]) -> dict[str, Any]:
    """A change's metadata: the predicate's figures a log line or the App's store shows."""
    v, dev, cov = p.get("variant") or {}, p.get("device") or {}, p.get("coverage") or {}
    speedups = [m["speedup"]["value"] for m in p.get("measurements") or [] if m.get("speedup")]
    return {
        "variant": v.get("name"),
        "kind": v.get("kind"),
        "candidate": v.get("candidate"),
        "speedup": max(speedups, default=None),
        "device": dev.get("kind"),
        "gpu_evidence": dev.get("gpu_evidence"),
        "base_commit": (p.get("base") or {}).get("commit"),
        "examples_added": len((p.get("spec") or {}).get("examples_added") or []),
        "candidates_tried": (p.get("search") or {}).get("evaluated"),
        "coverage_percent": cov.get("percent"),
        "generated_tests_passed": cov.get("tests_passed"),
        "created": p.get("created"),
    }
