"""A hypothesis: where an improvement is worth having, with its evidence and expected gain.

:class:`Hypothesis` is what the Reasoner hands on: the Changer plans, searches and writes
from it, the GitHub App ranks, queues and shows it. It crosses process boundaries (the
App's job queue, ``aina reason --json``, the attestation of a change) in its JSON form::

    {"id": "hyp-3f2a9c1d7e4b5a60",          # digest of kind, kernel, domain and variant: stable across runs
     "kind": "far_from_limit",              # one of KINDS
     "kernel": "softmax",
     "variant": null,                       # the variant concerned (rollback, retire), else null
     "domain": {"dims": {"M": [1, 1], "N": [131072, 262143]}, "dtype": "bfloat16", "arch": "sm_90"},
     "title": "...",                        # one line for a person
     "expected_gain": 1234.5,               # GPU-seconds saved per day if the hypothesis holds
     "expected_gain_unit": "gpu_s_per_day",
     "expected_gain_share": 0.012,          # the gain over the fleet's GPU time in the telemetry (optional)
     "gain_basis": "...",                   # how the gain was estimated
     "evidence": {...}}                     # the numbers and the windows they came from

``domain.dims`` ranges are inclusive; a null upper bound means unbounded (a variant's
domain may say so). ``dtype`` and ``arch`` are null when the hypothesis is not about one.

:meth:`Hypothesis.from_json` reads that form back, checking it (a misspelt key is an error,
not a silently missing field). A hypothesis from a team's own reasoner may carry its own id
and kind: the id is kept as given (``external_id``); only :data:`ACTIONABLE` kinds are ones
the Changer acts on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

KINDS = ("far_from_limit", "hot_unspecialised", "shape_shift", "rollback", "retire")
#: The kinds the Changer acts on by specialising a variant for the hypothesis's shape
#: domain; the others (rollback, retire) take a variant out: the GitHub App opens their
#: revert and retire PRs (``github_app.jobs.removals``), ``aina reason`` lists them.
ACTIONABLE = ("far_from_limit", "hot_unspecialised", "shape_shift")
GAIN_UNIT = "gpu_s_per_day"

_REQUIRED = ("id", "kind", "kernel")
_KNOWN = frozenset(
    _REQUIRED
    + (
        "variant",
        "domain",
        "title",
        "expected_gain",
        "expected_gain_unit",
        "expected_gain_share",
        "gain_basis",
        "evidence",
    )
)


class HypothesisError(ValueError):
    """A hypothesis's JSON form is malformed; the message names the key."""


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
    #: The id another reasoner gave it; ours is derived (:func:`hypothesis_id`) and left None.
    external_id: str | None = None
    #: ``expected_gain`` over the fleet's GPU time per day in the telemetry it came from, so a
    #: gain reads in one unit with its weight beside it; None when not known (another reasoner's).
    gain_share: float | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return self.external_id or hypothesis_id(self.kind, self.kernel, self.domain, self.variant)

    @property
    def actionable(self) -> bool:
        """Whether the Changer can act on it (see :data:`ACTIONABLE`)."""
        return self.kind in ACTIONABLE

    @property
    def members(self) -> list[Hypothesis]:
        """The detectors' hypotheses this one was merged from (``evidence.merged``, see
        :mod:`pytest_aina.reasoner.merge`), else just itself."""
        merged = self.evidence.get("merged")
        return [Hypothesis.from_json(m) for m in merged] if isinstance(merged, list) and merged else [self]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "kernel": self.kernel,
            "variant": self.variant,
            "domain": self.domain,
            "title": self.title,
            "expected_gain": round(self.expected_gain, 3),
            "expected_gain_unit": GAIN_UNIT,
            **({} if self.gain_share is None else {"expected_gain_share": round(self.gain_share, 6)}),
            "gain_basis": self.gain_basis,
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Hypothesis:
        """The hypothesis in ``data`` (:meth:`to_json`'s form); raises :class:`HypothesisError`."""
        if not isinstance(data, Mapping):
            raise HypothesisError(f"a hypothesis must be a JSON object, got {type(data).__name__}")
        missing = [k for k in _REQUIRED if k not in data]
        if "id" in missing:
            raise HypothesisError(
                f"a hypothesis has no id (keys: {sorted(map(str, data))}); changes, branches and PRs are named by it"
            )
        if missing:
            raise HypothesisError(f"hypothesis {data['id']!r} lacks {missing}")
        unknown = sorted(set(map(str, data)) - _KNOWN)
        if unknown:
            raise HypothesisError(f"hypothesis {data['id']!r} has unknown keys {unknown}; known: {sorted(_KNOWN)}")
        hid = data["id"]
        for key in ("id", "kind", "kernel"):
            if not isinstance(data[key], str) or not data[key].strip():
                raise HypothesisError(f"hypothesis {hid!r}: {key} must be non-empty text, got {data[key]!r}")
        for key in ("title", "gain_basis"):
            if not isinstance(data.get(key, ""), str):
                raise HypothesisError(f"hypothesis {hid!r}: {key} must be text, got {data[key]!r}")
        for key in ("domain", "evidence"):
            if not isinstance(data.get(key, {}), dict):
                raise HypothesisError(f"hypothesis {hid!r}: {key} must be an object, got {data[key]!r}")
        gain = data.get("expected_gain", 0.0)
        if isinstance(gain, bool) or not isinstance(gain, (int, float)):
            raise HypothesisError(f"hypothesis {hid!r}: expected_gain must be a number ({GAIN_UNIT}), got {gain!r}")
        if data.get("expected_gain_unit", GAIN_UNIT) != GAIN_UNIT:
            raise HypothesisError(
                f"hypothesis {hid!r}: expected_gain_unit must be {GAIN_UNIT!r}, got {data['expected_gain_unit']!r}"
            )
        share = data.get("expected_gain_share")
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or share < 0):
            raise HypothesisError(
                f"hypothesis {hid!r}: expected_gain_share must be a non-negative number or null, got {share!r}"
            )
        variant = data.get("variant")
        if variant is not None and not isinstance(variant, str):
            raise HypothesisError(f"hypothesis {hid!r}: variant must be text or null, got {variant!r}")
        h = cls(
            kind=data["kind"],
            kernel=data["kernel"],
            domain=data.get("domain", {}),
            title=data.get("title", ""),
            expected_gain=float(gain),
            gain_basis=data.get("gain_basis", ""),
            evidence=data.get("evidence", {}),
            variant=variant,
            gain_share=None if share is None else float(share),
        )
        return h if h.id == hid else replace(h, external_id=hid)


def hypothesis_id(kind: str, kernel: str, domain: dict, variant: str | None = None) -> str:
    """A stable identity: the same kind, kernel, domain (and variant) always give the same id,
    whatever the figures, so the App keeps one PR per hypothesis."""
    canon = json.dumps(
        {"kind": kind, "kernel": kernel, "domain": domain, "variant": variant}, sort_keys=True, separators=(",", ":")
    )
    return "hyp-" + hashlib.sha256(canon.encode()).hexdigest()[:16]


def rank(hypotheses: list[Hypothesis]) -> list[Hypothesis]:
    """Most valuable first; deterministic: ties by kind (in KINDS order), kernel, then id."""
    return sorted(hypotheses, key=lambda h: (-round(h.expected_gain, 6), _kind_order(h.kind), h.kernel, h.id))


def _kind_order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)
