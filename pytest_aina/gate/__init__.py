"""The merge gate: ``aina gate`` decides what may merge, with evidence a reviewer can check.

    from pytest_aina.gate import GateOptions, run_gate
    result = run_gate(GateOptions(base="origin/main", head="HEAD"))
    result.status, result.exit_code, result.checks

Checks in order of cost (:mod:`.run`): scope, the ratchet with approvals, provenance,
policy, correctness, coverage, performance (interleaved, sandboxed, sequential) and the
claims. Outputs: :mod:`.report` (Markdown, text), annotations (:class:`.verdict.Annotation`),
JSON (:func:`as_json`) and an in-toto SLSA verification summary (:mod:`.vsa`).
docs/gate.md is the user's guide.

Layer: above ``changer`` (whose attestation it verifies, through :mod:`.provenance` only),
``spec`` (the ratchet, through :mod:`.boundaries` only) and ``sandbox``; below ``commands``.
"""

from __future__ import annotations

from pytest_aina.gate.run import GateOptions, run_gate
from pytest_aina.gate.verdict import (
    CONFIG_ERROR,
    EXIT_CODES,
    FAIL,
    NEEDS,
    PASS,
    SKIPPED,
    Annotation,
    CheckResult,
    GateConfigError,
    GateResult,
)

__all__ = [
    "GateOptions",
    "run_gate",
    "GateResult",
    "CheckResult",
    "Annotation",
    "GateConfigError",
    "as_json",
    "PASS",
    "FAIL",
    "NEEDS",
    "SKIPPED",
    "EXIT_CODES",
    "CONFIG_ERROR",
]


def as_json(result: GateResult, *, repository: str | None = None) -> dict:
    """The whole verdict for machines: checks, evidence, scope, and the VSA statement."""
    from pytest_aina.gate import vsa

    return {
        "format": "aina-gate/v1",
        "verdict": result.status,
        "exit_code": result.exit_code,
        "base": result.base,
        "head": result.head,
        "base_ref": result.base_ref,
        "head_ref": result.head_ref,
        "started": result.started,
        "wall_s": round(result.wall_s, 3),
        "policy": result.policy,
        "reasons": result.reasons(),
        "checks": [c.as_dict() for c in result.checks],
        "evidence": result.evidence,
        "attestations": result.attestations,
        "scope": result.scope,
        "statement": vsa.statement(result, repository=repository),
    }
