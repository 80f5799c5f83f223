"""The Changer's records: what was proposed, and what the evaluator found.

Plain dataclasses that round-trip through JSON: they are written to the search checkpoint,
the attestation and the PR body, so every field is data, never code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_aina.reasoner.hypothesis import Hypothesis

#: Stages of the evaluation cascade, cheapest first; a candidate stops at its first failure.
STAGES = ("import", "examples", "properties", "benchmarks")

#: The specific reasons a candidate can fail with (``Verdict.reason``): the sandbox's own
#: statuses (pytest_aina/sandbox/result.py: timeout, memory limit, crash by signal, syntax
#: error, stale result, partial result, tampered clock, measurement error, deferred work,
#: ...) and the cascade's: what the plugin's checks found.
CASCADE_REASONS = ("missing function", "wrong answer", "invariant broken", "reference failed", "failed")


def digest(obj: Any) -> str:
    """sha256 of a JSON-able object in canonical form."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Candidate:
    """A kernel to try: either the generic variant with meta-parameters (``config``), or a
    module's source text (``source``) defining the function the spec's implementation names."""

    kernel: str
    proposer: str  # "metaparams", "llm:<model>", "file", or a plugin's name
    config: dict | None = None  # meta-parameters bound to the generic variant
    source: str | None = None  # a whole Python module
    function: str | None = None  # the function in ``source`` to evaluate
    parent: str | None = None  # the candidate this one was derived from
    meta: dict = field(default_factory=dict)  # tokens, cost, model, prompt digest, attempts

    @property
    def id(self) -> str:
        return digest({"kernel": self.kernel, "config": self.config, "source": self.source, "function": self.function})[
            :12
        ]

    def describe(self) -> str:
        if self.config is not None:
            return ", ".join(f"{k}={v}" for k, v in sorted(self.config.items())) or "heuristic defaults"
        return f"{self.proposer} source ({len(self.source or '')} chars)"

    def to_json(self) -> dict:
        return asdict(self) | {"id": self.id}

    @classmethod
    def from_json(cls, d: dict) -> Candidate:
        return cls(**{k: v for k, v in d.items() if k != "id"})


@dataclass
class Timing:
    """A side-by-side measurement at one benchmark case, seconds per call."""

    case: str
    samples_s: list[float]
    reference_samples_s: list[float]
    clock: str

    @property
    def median_s(self) -> float:
        return _median(self.samples_s)

    @property
    def reference_median_s(self) -> float:
        return _median(self.reference_samples_s)

    @property
    def speedup(self) -> float:
        return self.reference_median_s / self.median_s


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


@dataclass
class Verdict:
    """What the evaluator found: the stages passed, or the first failure and its reason."""

    candidate: str  # Candidate.id
    passed: bool
    stages: list[str] = field(default_factory=list)
    failed_stage: str | None = None
    reason: str | None = None  # a sandbox status or one of CASCADE_REASONS
    detail: str = ""
    timings: list[dict] = field(default_factory=list)  # Timing as dicts, with medians and CIs
    speedup: float | None = None  # reference time / candidate time, geometric mean over cases
    score: float | None = None  # what the search maximises: calls/s, geometric mean over cases
    wall_s: float = 0.0
    stage_s: dict = field(default_factory=dict)  # wall seconds per stage reached ("checks", "benchmarks")
    checks_items_s: float | None = None  # of the checks' wall time, their test items' own (pytest's durations)
    # seconds per phase of each sandboxed run ("checks", "candidate", "reference": folder,
    # spawn, the child's start-up steps, the work, exit, clean-up), summed over the cases
    phases: dict = field(default_factory=dict)
    sandbox: dict = field(default_factory=dict)  # which protections were in force
    ran_on: dict = field(default_factory=dict)  # where it ran when not on this machine (executors.py): node, IP
    # every rule the candidate broke in the sandbox ({"kind", "detail"}: a write outside its
    # folder, a network attempt, ...), all of them: what makes it hostile
    violations: list[dict] = field(default_factory=list)

    @property
    def hostile(self) -> bool:
        """The candidate tried what no kernel does (wrote outside its folder, opened a socket):
        not an ordinary failure, and its author (a model) is told so."""
        return bool(self.violations)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Verdict:
        return cls(**d)


@dataclass
class Attempt:
    candidate: Candidate
    verdict: Verdict

    def to_json(self) -> dict:
        return {"candidate": self.candidate.to_json(), "verdict": self.verdict.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> Attempt:
        return cls(Candidate.from_json(d["candidate"]), Verdict.from_json(d["verdict"]))


@dataclass
class SearchRecord:
    """One search for one hypothesis: everything needed to judge and repeat it."""

    kernel: str
    spec_path: str
    hypothesis: Hypothesis  # what the search was for, as the Reasoner handed it on
    seed: int
    budget: dict  # evaluations, wall_s, tokens: what was allowed and what was used
    proposers: list[str]
    baseline: Attempt | None  # the current dispatch's choice, measured in the same run
    attempts: list[Attempt]  # in evaluation order, failures included
    winner: str | None  # Candidate.id of the candidate that beat the baseline side by side, if one did
    benchmark_cases: list[str]  # the cases timed (labels), hot shapes of the hypothesis
    environment: dict  # pytest_aina.environment.collect()
    device: str  # "cuda" or "cpu" (Triton interpreter: not GPU evidence)
    started: str = ""
    finished: str = ""
    repeat: str = ""  # the command that repeats this search
    # the baseline and the best candidates timed again, side by side, after the search
    # (sidebyside.side_by_side's record): what ``winner`` was decided on; None when nothing
    # passed beside a baseline that passed (and in records written before it existed)
    side_by_side: dict | None = None

    def winner_attempt(self) -> Attempt | None:
        return next((a for a in self.attempts if a.candidate.id == self.winner), None)

    def to_json(self) -> dict:
        d = asdict(self)
        d["hypothesis"] = self.hypothesis.to_json()
        d["baseline"] = self.baseline.to_json() if self.baseline else None
        d["attempts"] = [a.to_json() for a in self.attempts]
        return d

    @classmethod
    def from_json(cls, d: dict) -> SearchRecord:
        d = dict(d)
        d["hypothesis"] = Hypothesis.from_json(d["hypothesis"])
        d["baseline"] = Attempt.from_json(d["baseline"]) if d.get("baseline") else None
        d["attempts"] = [Attempt.from_json(a) for a in d["attempts"]]
        return cls(**d)
