"""The verdict as an attestation: an in-toto statement with a SLSA Verification Summary.

https://slsa.dev/spec/v1.0/verification_summary: the subject is the head commit, the
predicate says who verified it (``verifier.id``), when, against which policy (its
digest), which attestations were read (``inputAttestations``), and ``PASSED`` or
``FAILED``. A verdict that needs a human or more evidence is not a pass: ``FAILED``, with
the gate's own three-way verdict under ``aina``. The App and later investigations read
this one format.
"""

from __future__ import annotations

from pytest_aina import __version__
from pytest_aina.gate.verdict import PASS, GateResult

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
VERIFIER_ID = "https://pytest-aina.dev/gate/v1"


def statement(result: GateResult, *, repository: str | None = None) -> dict:
    uri = f"git+{repository}@{result.head}" if repository else f"git+{result.head}"
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": uri, "digest": {"gitCommit": result.head}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "verifier": {"id": VERIFIER_ID, "version": {"pytest-aina": __version__}},
            "timeVerified": result.started,
            "resourceUri": uri,
            "policy": {"uri": result.policy.get("source"), "digest": {"sha256": result.policy.get("sha256")}},
            "inputAttestations": [{"uri": a["path"], "digest": {"sha256": a["sha256"]}} for a in result.attestations],
            "verificationResult": "PASSED" if result.status == PASS else "FAILED",
            "verifiedLevels": [f"AINA_GATE_{'PASSED' if result.status == PASS else 'FAILED'}"],
            "aina": {
                "verdict": result.status,
                "exit_code": result.exit_code,
                "base": result.base,
                "head": result.head,
                "checks": {c.name: c.status for c in result.checks},
                "reasons": result.reasons(),
            },
        },
    }
