"""THE change a PR makes: its type, how it is written from a search, and its provenance.

* :mod:`.model` — :class:`Change` (the one type ``aina evolve``, the App and the merge gate
  pass around), :class:`ChangeError`, the bot branches (:data:`BRANCH_PREFIX`,
  :func:`branch_name`, :func:`is_bot_branch`);
* :mod:`.write` — :func:`write_change`: a search's winner becomes the change's files;
  :mod:`.shapes` (which shapes and domain), :mod:`.evidence` (what triggered it, what was
  measured), :mod:`.pinning` (the spec's pinned examples) and :mod:`.testgen` (the generated
  tests, their coverage) do the parts;
* :mod:`.attestation` — the in-toto statement, and :func:`verify`: THE provenance check;
* :mod:`.prbody` — the PR body, rendered from the statement alone.

The names below load on first use, so that reading a :class:`Change` (the App's web
process checks bot branch names) does not load the writer and everything it reads.
"""

from __future__ import annotations

import importlib

__all__ = ["BRANCH_PREFIX", "Change", "ChangeError", "branch_name", "is_bot_branch", "verify", "write_change"]

_WHERE = {
    "BRANCH_PREFIX": "pytest_aina.changer.change.model",
    "Change": "pytest_aina.changer.change.model",
    "ChangeError": "pytest_aina.changer.change.model",
    "branch_name": "pytest_aina.changer.change.model",
    "is_bot_branch": "pytest_aina.changer.change.model",
    "verify": "pytest_aina.changer.change.attestation",
    "write_change": "pytest_aina.changer.change.write",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pytest_aina.changer.change' has no attribute {name!r}")
