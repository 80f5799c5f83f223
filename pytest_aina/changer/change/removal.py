"""A change that takes a variant out: the revert of a claim production contradicted, or the
retirement of a variant no call uses any more.

The opposite of :func:`~pytest_aina.changer.change.write.write_change`, built from the same
pieces so that it reads, commits and passes the gate like any change:

* the variant leaves its dispatch table (:func:`pytest_aina.runtime.dispatch.without_variant`:
  the rest of the file and its comments as they were; the generic variant always remains);
* its generated test module ``tests/evolved/test_<variant>.py`` and, for a source variant, its
  module ``kernels/evolved/<variant>.py`` are deleted;
* the spec's pinned examples stay: they are boundaries every variant (the generic one now)
  must still pass, and removing them would weaken the spec;
* an in-toto statement of its own (``provenance/<kernel>/<variant>.<kind>.intoto.json``) names
  the hypothesis (kind ``rollback`` or ``retire``, the variant, the evidence), the digest of
  the telemetry it rests on and the commit it was made on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import pytest_aina.changer.change.attestation as att
from pytest_aina.changer.change.model import BOT_LABEL, Change, ChangeError, branch_name
from pytest_aina.reasoner.hypothesis import Hypothesis
from pytest_aina.runtime.dispatch import DispatchTableError, without_variant

KINDS = ("rollback", "retire")


def table_path(kernel: str) -> str:
    return f"kernels/variants/{kernel}.yaml"


def removal_hypothesis(kind: str, kernel: str, variant: str, *, title: str, evidence: Mapping[str, Any]) -> Hypothesis:
    """The hypothesis a removal acts on; its id depends on kind, kernel and variant only, so
    one contradiction (one variant) gets one PR however often it is looked at."""
    if kind not in KINDS:
        raise ChangeError(f"a removal is one of {KINDS}, not {kind!r}")
    return Hypothesis(
        kind=kind,
        kernel=kernel,
        domain={},
        title=title,
        expected_gain=0.0,
        gain_basis="production telemetry: "
        + ("the variant is slower than it claimed" if kind == "rollback" else "no call used the variant"),
        evidence=dict(evidence),
        variant=variant,
    )


def removal_change(
    *,
    kind: str,
    kernel: str,
    variant: str,
    base: str,
    table_text: str,
    present: Iterable[str],
    title: str,
    body: str,
    evidence: Mapping[str, Any],
    telemetry: bytes,
    labels: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> Change:
    """The change removing ``variant`` of ``kernel`` on commit ``base``, whose dispatch table
    reads ``table_text`` and which holds the paths ``present``. ``telemetry``: the bytes the
    decision rests on (digested into the statement); ``evidence``: what it found, as data.
    Raises :class:`ChangeError` when the table has no such variant, or it is the generic one."""
    hyp = removal_hypothesis(kind, kernel, variant, title=title, evidence=evidence)
    table = table_path(kernel)
    try:
        files: dict[str, str | None] = {table: without_variant(table_text, variant, table)}
    except DispatchTableError as exc:
        raise ChangeError(f"cannot remove {variant!r} from {table}: {exc}") from None
    present = set(present)
    for path in (f"tests/evolved/test_{variant}.py", f"kernels/evolved/{variant}.py"):
        if path in present:
            files[path] = None
    stmt_rel = f"provenance/{kernel}/{variant}.{kind}.intoto.json"
    predicate = {
        "kernel": kernel,
        "hypothesis": hyp.to_json(),
        "variant": {"name": variant, "kind": kind},
        "trigger": {
            "telemetry": {
                "path": "the App's store (telemetry_windows)",
                "sha256": hashlib.sha256(telemetry).hexdigest(),
                "bytes": len(telemetry),
            }
        },
        "base": {"commit": base, "dirty": False},
        kind: dict(evidence),
    }
    files[stmt_rel] = att.dumps(att.statement(files=files, attestation_path=stmt_rel, predicate=predicate))
    return Change(
        hypothesis_id=hyp.id,
        branch=branch_name(kernel, hyp.id),
        title=title,
        body=body,
        files=files,
        attestation=stmt_rel,
        labels=tuple(dict.fromkeys((BOT_LABEL, f"kernel:{kernel}", f"aina:{kind}", *labels))),
        kernel=kernel,
        metadata={"kind": kind, "variant": variant, **(metadata or {})},
    )
