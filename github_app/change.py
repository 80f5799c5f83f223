"""A :class:`Change`: what the evolution loop hands the App to open (or update) a PR.

It is plain data so that it can wait in the job queue as JSON between the job that makes
it (evolution, minutes) and the job that publishes it (seconds, retried on GitHub errors).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BRANCH_PREFIX = "aina/"


class ChangeError(ValueError):
    """A change is malformed; the message names the field."""


@dataclass(frozen=True)
class Change:
    """One evolution PR's content.

    ``files`` maps repository paths to their new text; ``None`` deletes a path (a retired
    variant). ``attestation`` is the path, among ``files``, of the in-toto statement that
    records how the change was made.
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
        if not self.branch.startswith(BRANCH_PREFIX) or ".." in self.branch \
                or self.branch.endswith(("/", ".lock")) or any(c in self.branch for c in " ~^:?*[\\"):
            raise ChangeError(f"Change.branch {self.branch!r} must be a valid git branch "
                              f"name under {BRANCH_PREFIX!r}")
        if not isinstance(self.files, Mapping) or not self.files:
            raise ChangeError("Change.files must map at least one path to its content")
        for path, content in self.files.items():
            check_path(path, where="Change.files")
            if content is not None and not isinstance(content, str):
                raise ChangeError(f"Change.files[{path!r}] must be text or None (delete)")
        if self.attestation not in self.files or self.files[self.attestation] is None:
            raise ChangeError(f"Change.attestation {self.attestation!r} must be one of the "
                              "files the change writes")
        try:
            statement = json.loads(self.files[self.attestation])
        except ValueError as exc:
            raise ChangeError(f"Change.attestation {self.attestation!r} is not JSON: {exc}") \
                from None
        if not isinstance(statement, dict) or "_type" not in statement:
            raise ChangeError(f"Change.attestation {self.attestation!r} is not an in-toto "
                              "statement (no _type)")
        if not isinstance(self.labels, tuple) or not all(
                isinstance(x, str) and x and len(x) <= 50 for x in self.labels):
            raise ChangeError("Change.labels must be a tuple of label names (1-50 characters)")
        if self.kernel is not None and not isinstance(self.kernel, str):
            raise ChangeError("Change.kernel must be text or None")
        if not isinstance(self.supersedes, tuple) or not all(
                isinstance(x, str) for x in self.supersedes):
            raise ChangeError("Change.supersedes must be a tuple of hypothesis ids")

    def to_json(self) -> dict[str, Any]:
        return {
            "hypothesis_id": self.hypothesis_id, "branch": self.branch, "title": self.title,
            "body": self.body, "files": dict(self.files), "attestation": self.attestation,
            "labels": list(self.labels), "kernel": self.kernel,
            "supersedes": list(self.supersedes), "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        if not isinstance(data, Mapping):
            raise ChangeError(f"a change must be a JSON object, got {type(data).__name__}")
        known = {"hypothesis_id", "branch", "title", "body", "files", "attestation", "labels",
                 "kernel", "supersedes", "metadata"}
        unknown = set(data) - known
        if unknown:
            raise ChangeError(f"a change has unknown keys: {sorted(unknown)}")
        missing = {"hypothesis_id", "branch", "title", "body", "files", "attestation"} - set(data)
        if missing:
            raise ChangeError(f"a change lacks keys: {sorted(missing)}")
        return cls(
            hypothesis_id=data["hypothesis_id"], branch=data["branch"], title=data["title"],
            body=data["body"], files=dict(data["files"]) if isinstance(data["files"], Mapping)
            else data["files"], attestation=data["attestation"],
            labels=tuple(data.get("labels") or ()), kernel=data.get("kernel"),
            supersedes=tuple(data.get("supersedes") or ()),
            metadata=dict(data.get("metadata") or {}))


def check_path(path: Any, *, where: str) -> str:
    """A repository path: relative, normalised, no ``..``, not inside ``.git``."""
    if not isinstance(path, str) or not path:
        raise ChangeError(f"{where}: a path must be non-empty text, got {path!r}")
    if path.startswith("/") or posixpath.normpath(path) != path or path.startswith("../") \
            or path == ".." or "\\" in path or "\x00" in path:
        raise ChangeError(f"{where}: {path!r} is not a normalised relative path")
    if path.split("/")[0] == ".git":
        raise ChangeError(f"{where}: {path!r} is inside .git")
    return path
