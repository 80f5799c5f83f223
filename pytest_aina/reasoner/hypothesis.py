"""A hypothesis: where an improvement is worth having, with its evidence and expected gain.

The JSON form (``aina reason --json``; the Changer and the GitHub App read it) is::

    {"id": "hyp-3f2a9c1d7e4b5a60",          # digest of kind, kernel and domain: stable across runs
     "kind": "far_from_limit",              # one of KINDS
     "kernel": "softmax",
     "variant": null,                       # the variant concerned (rollback, retire), else null
     "domain": {"dims": {"M": [1, 1], "N": [131072, 262143]}, "dtype": "bfloat16", "arch": "sm_90"},
     "title": "...",                        # one line for a person
     "expected_gain": 1234.5,               # GPU-seconds saved per day if the hypothesis holds
     "expected_gain_unit": "gpu_s_per_day",
     "gain_basis": "...",                   # how the gain was estimated
     "evidence": {...}}                     # the numbers and the windows they came from

``domain.dims`` ranges are inclusive; a null upper bound means unbounded (a variant's
domain may say so). ``dtype`` and ``arch`` are null when the hypothesis is not about one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

KINDS = ("far_from_limit", "hot_unspecialised", "shape_shift", "rollback", "retire")
GAIN_UNIT = "gpu_s_per_day"


@dataclass(frozen=True)
class Hypothesis:
    kind: str
    kernel: str
    domain: dict
    title: str
    expected_gain: float
    gain_basis: str
    evidence: dict = field(hash=False)
    variant: str | None = None

    @property
    def id(self) -> str:
        return hypothesis_id(self.kind, self.kernel, self.domain, self.variant)

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "kernel": self.kernel, "variant": self.variant,
                "domain": self.domain, "title": self.title, "expected_gain": round(self.expected_gain, 3),
                "expected_gain_unit": GAIN_UNIT, "gain_basis": self.gain_basis, "evidence": self.evidence}


def hypothesis_id(kind: str, kernel: str, domain: dict, variant: str | None = None) -> str:
    """A stable identity: the same kind, kernel, domain (and variant) always give the same id,
    whatever the figures, so the App keeps one PR per hypothesis."""
    canon = json.dumps({"kind": kind, "kernel": kernel, "domain": domain, "variant": variant},
                       sort_keys=True, separators=(",", ":"))
    return "hyp-" + hashlib.sha256(canon.encode()).hexdigest()[:16]


def rank(hypotheses: list[Hypothesis]) -> list[Hypothesis]:
    """Most valuable first; deterministic: ties by kind (in KINDS order), kernel, then id."""
    return sorted(hypotheses, key=lambda h: (-round(h.expected_gain, 6), KINDS.index(h.kind), h.kernel, h.id))
