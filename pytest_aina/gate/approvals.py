"""Human decisions the gate reads: approvals of named weakenings, and approving reviews.

The gate runs in CI and talks to no API; the workflow collects what people said on the
pull request (``gh api``, see ``.github/workflows/gate.yml``) into one JSON file, given
with ``--approvals FILE``::

    {
      "approvals": [   # a label "aina-approve:<digest>" or a comment/review "/aina approve <digest>"
        {"digest": "9c1e5b0f6a7d2e41", "by": "alice", "permission": "write", "source": "comment"}
      ],
      "reviews": [     # the pull request's approving reviews
        {"by": "bob", "state": "APPROVED", "permission": "admin"}
      ]
    }

(a bare list is read as ``approvals``). ``permission`` is the person's permission on the
repository as GitHub reports it; only ``write``, ``maintain`` and ``admin`` count, and never
a bot account (``...[bot]``), so the App cannot approve its own weakening. A digest may be
shortened to 16 hex digits (a label holds at most 50 characters).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pytest_aina.gate.verdict import GateConfigError

WRITE_PERMISSIONS = frozenset({"write", "maintain", "admin"})
MIN_DIGEST_CHARS = 16
_HEX = re.compile(r"^[0-9a-f]{16,64}$")


@dataclass(frozen=True)
class Approval:
    digest: str
    by: str
    permission: str
    source: str = "unknown"

    @property
    def counts(self) -> bool:
        return self.permission in WRITE_PERMISSIONS and not self.by.endswith("[bot]")

    def names(self, digest: str) -> bool:
        return digest.startswith(self.digest)


@dataclass(frozen=True)
class Review:
    by: str
    state: str
    permission: str

    @property
    def counts(self) -> bool:
        return (
            self.state.upper() == "APPROVED" and self.permission in WRITE_PERMISSIONS and not self.by.endswith("[bot]")
        )


@dataclass(frozen=True)
class Decisions:
    approvals: tuple[Approval, ...] = ()
    reviews: tuple[Review, ...] = ()
    source: str | None = None

    def approval_of(self, digest: str) -> tuple[Approval | None, list[Approval]]:
        """(the approval that counts for ``digest`` or None, approvals naming it that do not count)."""
        naming = [a for a in self.approvals if a.names(digest)]
        good = next((a for a in naming if a.counts), None)
        return good, [a for a in naming if not a.counts]

    @property
    def approving_reviewers(self) -> list[str]:
        return sorted({r.by for r in self.reviews if r.counts})


def _str(entry: dict, key: str, where: str) -> str:
    v = entry.get(key)
    if not isinstance(v, str) or not v:
        raise GateConfigError(f"{where}: {key!r} must be a non-empty string, got {v!r}")
    return v


def load(path: str | Path | None) -> Decisions:
    """The decisions in ``path`` (none when ``path`` is None); a malformed file is a configuration error."""
    if path is None:
        return Decisions()
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GateConfigError(f"--approvals {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise GateConfigError(f"--approvals {path}: not JSON ({exc})") from None
    if isinstance(data, list):
        data = {"approvals": data}
    if not isinstance(data, dict):
        raise GateConfigError(f"--approvals {path}: expected an object with 'approvals' and 'reviews', or a list")
    unknown = sorted(set(data) - {"approvals", "reviews"})
    if unknown:
        raise GateConfigError(f"--approvals {path}: unknown key(s) {unknown}; known: ['approvals', 'reviews']")
    approvals, reviews = [], []
    for i, entry in enumerate(data.get("approvals") or []):
        where = f"--approvals {path}: approvals[{i}]"
        if not isinstance(entry, dict):
            raise GateConfigError(f"{where}: expected an object, got {entry!r}")
        digest = _str(entry, "digest", where).lower().removeprefix("sha256:")
        if not _HEX.match(digest):
            raise GateConfigError(f"{where}: digest {digest!r} must be {MIN_DIGEST_CHARS} to 64 hex digits")
        approvals.append(
            Approval(
                digest,
                _str(entry, "by", where),
                _str(entry, "permission", where).lower(),
                str(entry.get("source") or "unknown"),
            )
        )
    for i, entry in enumerate(data.get("reviews") or []):
        where = f"--approvals {path}: reviews[{i}]"
        if not isinstance(entry, dict):
            raise GateConfigError(f"{where}: expected an object, got {entry!r}")
        reviews.append(
            Review(_str(entry, "by", where), _str(entry, "state", where), _str(entry, "permission", where).lower())
        )
    return Decisions(tuple(approvals), tuple(reviews), str(path))
