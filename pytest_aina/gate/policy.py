"""The repository's policy, ``.github/aina.yml``: what the bot may do and what the gate requires.

One model for every reader: the GitHub App (which kernels and paths the bot may touch, how
many PRs at once) and the merge gate (which risk tiers need a human, the coverage and
noise thresholds, the time the performance check may take). Parsed and validated here,
with no GitHub dependency; every mistake names the file and the key, and an unknown key
is an error (a misspelt threshold must not silently become a default)::

    max_open_prs: 3            # bot PRs open at once; more wait for a slot
    paths: [kernels/**, specs/**, tests/**, provenance/**, .aina/**]   # what the bot may change
    kernels: ["*"]             # which kernels it may evolve (globs over kernel names)
    min_expected_gain: 0       # GPU-seconds per day below which it does not start on its own
    automatic: true            # false: only a maintainer's tick or /aina retry starts a run
    gate:
      review: [medium, high]   # risk tiers of bot changes that need an approving review
      coverage: 80             # % of added/modified kernel lines the tests must run (0: off)
      noise: 0.05              # the smallest slowdown that counts (minimum effect size)
      confidence: 0.99         # level of the intervals the performance check reports
      budget_s: 900            # wall-clock budget of all performance measurements
      pairs: 24                # base/head pairs per measurement batch (one sandbox session)
      max_pairs: 288           # pairs per case before the answer must be given
    automerge:                 # absent: nothing merges on its own (a person or /aina merge does)
      risk: [low]              # risk tiers of gate-passed bot PRs that merge on their own
      min_age_hours: 24        # soak: a PR this young waits, so a person can still look
      merge_method: squash     # squash | merge | rebase
      track_record: 0          # claims of the kernel that held in production before any merges on its own
    reviewers: [alice]         # people asked to review a bot PR that does not merge on its own
    team_reviewers: [kernels]  # teams (slugs) asked likewise
    prs_per_hour: 4            # bot PRs opened per hour at most (0: no limit)
    verify:                    # checking a merged change's claims against production telemetry
      min_calls: 1000          # calls of the variant at a shape before it is judged there
      min_windows: 12          # telemetry windows at a shape before it is judged there
      max_days: 7              # after this, what is still undecided stays unverified
      noise: 0.05              # production may be this much slower than the claim's interval
      confidence: 0.999        # one-sided level, over all shapes of a claim (Bonferroni)
    retire:
      unused_days: 14          # a variant without a call this long is proposed for retirement
      automerge: false         # whether a retirement PR may merge on its own (under automerge's rules)

The gate reads the policy at the *base* commit: a pull request cannot relax the rules it
is judged by. ``docs/gate.md`` explains each key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

POLICY_PATH = ".github/aina.yml"
RISK_TIERS = ("low", "medium", "high")


class PolicyError(ValueError):
    """The policy file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class GatePolicy:
    # A new kernel source (medium) or one its tests barely run (high) waits for a person;
    # a meta-parameter variant of a tested kernel (low) does not.
    review: tuple[str, ...] = ("medium", "high")
    coverage: float = 80.0
    # Chosen from benchmarks/gate_calibration.py's measurements (docs/gate.md): the only
    # setting measured to keep A/A false regressions under 1% even when a whole comparison
    # shares one session's bias, while catching 25% always and 10% in ~96% of comparisons.
    noise: float = 0.05
    confidence: float = 0.99
    budget_s: float = 900.0
    pairs: int = 24
    max_pairs: int = 288


MERGE_METHODS = ("squash", "merge", "rebase")


@dataclass(frozen=True)
class AutomergePolicy:
    # No tier by default: nothing merges without a person until the repository says so.
    risk: tuple[str, ...] = ()
    min_age_hours: float = 24.0
    merge_method: str = "squash"
    # How many earlier claims of the kernel must have held in production (the streak since
    # its last contradicted claim) before a PR of that kernel merges on its own.
    track_record: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.risk)


@dataclass(frozen=True)
class VerifyPolicy:
    min_calls: int = 1000
    min_windows: int = 12
    max_days: float = 7.0
    # From benchmarks/verify_calibration.py's measurements (docs/github-app.md): no true
    # claim of 160 contradicted, a 10% slowdown caught in 98.8% of trials; at 0.10 no 10%
    # slowdown was caught (the margin swallows it).
    noise: float = 0.05
    confidence: float = 0.999


@dataclass(frozen=True)
class RetirePolicy:
    unused_days: float = 14.0
    automerge: bool = False


@dataclass(frozen=True)
class Policy:
    max_open_prs: int = 3
    # The Changer writes variants and dispatch tables (kernels/), pinned shapes (specs/),
    # generated tests (tests/) and the in-toto record (provenance/).
    paths: tuple[str, ...] = ("kernels/**", "specs/**", "tests/**", "provenance/**", ".aina/**")
    kernels: tuple[str, ...] = ("*",)
    min_expected_gain: float = 0.0
    automatic: bool = True
    gate: GatePolicy = field(default_factory=GatePolicy)
    automerge: AutomergePolicy = field(default_factory=AutomergePolicy)
    reviewers: tuple[str, ...] = ()
    team_reviewers: tuple[str, ...] = ()
    prs_per_hour: int = 0  # 0: no limit beyond max_open_prs
    verify: VerifyPolicy = field(default_factory=VerifyPolicy)
    retire: RetirePolicy = field(default_factory=RetirePolicy)
    source: str = field(default="defaults", compare=False)
    text: str | None = field(default=None, compare=False, repr=False)  # the file as read (None: defaults)

    def path_allowed(self, path: str) -> bool:
        return any(_glob(p).fullmatch(path) for p in self.paths)

    def kernel_allowed(self, kernel: str | None) -> bool:
        if kernel is None:
            return True
        return any(_glob(p).fullmatch(kernel) for p in self.kernels)

    def refused_paths(self, paths) -> list[str]:
        return sorted(p for p in paths if not self.path_allowed(p))

    @property
    def digest(self) -> str:
        """sha256 of the policy as read (the file's bytes), or of the defaults as canonical JSON."""
        if self.text is not None:
            return hashlib.sha256(self.text.encode()).hexdigest()
        data = {k: v for k, v in asdict(self).items() if k not in ("source", "text")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """``**`` crosses folders, ``*`` and ``?`` do not (unlike fnmatch)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


_KNOWN = (
    "max_open_prs",
    "paths",
    "kernels",
    "min_expected_gain",
    "automatic",
    "gate",
    "automerge",
    "reviewers",
    "team_reviewers",
    "prs_per_hour",
    "verify",
    "retire",
)
_GATE_KNOWN = ("review", "coverage", "noise", "confidence", "budget_s", "pairs", "max_pairs")
# GitHub logins: alphanumerics and single hyphens; team slugs: lower-case, digits, - and _.
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_policy(text: str | None, *, source: str = POLICY_PATH) -> Policy:
    """The policy in ``text`` (YAML); defaults when there is no file."""
    if text is None:
        return Policy()
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{source}{at}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return Policy(source=source, text=text)
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(_KNOWN))
    if unknown:
        raise PolicyError(f"{source}: unknown key(s) {unknown}; known: {sorted(_KNOWN)}")
    values: dict[str, Any] = {"source": source, "text": text}
    if "max_open_prs" in data:
        v = data["max_open_prs"]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100:
            raise PolicyError(f"{source}: max_open_prs must be an integer from 0 to 100, got {v!r}")
        values["max_open_prs"] = v
    for key in ("paths", "kernels"):
        if key in data:
            v = data[key]
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise PolicyError(f"{source}: {key} must be a list of glob patterns, got {v!r}")
            values[key] = tuple(v)
    if "min_expected_gain" in data:
        v = data["min_expected_gain"]
        if not _number(v) or v < 0:
            raise PolicyError(f"{source}: min_expected_gain must be a number >= 0 (GPU-seconds per day), got {v!r}")
        values["min_expected_gain"] = float(v)
    if "automatic" in data:
        v = data["automatic"]
        if not isinstance(v, bool):
            raise PolicyError(f"{source}: automatic must be true or false, got {v!r}")
        values["automatic"] = v
    if "gate" in data:
        values["gate"] = _parse_gate(data["gate"], source)
    for key, pattern, what in (
        ("reviewers", _LOGIN, "GitHub logins"),
        ("team_reviewers", _SLUG, "team slugs (the team's name in its URL, without the organisation)"),
    ):
        if key in data:
            v = data[key]
            if not isinstance(v, list) or not all(isinstance(x, str) and pattern.match(x) for x in v):
                raise PolicyError(f"{source}: {key} must be a list of {what}, got {v!r}")
            values[key] = tuple(v)
    if "prs_per_hour" in data:
        values["prs_per_hour"] = _integer(data["prs_per_hour"], "prs_per_hour", 0, 1000, source)
    if "automerge" in data:
        values["automerge"] = _parse_automerge(data["automerge"], source)
    if "verify" in data:
        values["verify"] = _parse_verify(data["verify"], source)
    if "retire" in data:
        values["retire"] = _parse_retire(data["retire"], source)
    return Policy(**values)


def _integer(v: Any, key: str, lo: int, hi: int, source: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise PolicyError(f"{source}: {key} must be an integer from {lo} to {hi}, got {v!r}")
    return v


def _bounded(v: Any, key: str, lo: float, hi: float, what: str, source: str) -> float:
    if not _number(v) or not lo <= v <= hi:
        raise PolicyError(f"{source}: {key} must be {what}, got {v!r}")
    return float(v)


def _section(data: Any, name: str, known: tuple[str, ...], source: str) -> dict | None:
    """The mapping under ``name`` (None when empty), its unknown keys named in full."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: {name} must be a mapping of settings, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(known))
    if unknown:
        raise PolicyError(
            f"{source}: unknown key(s) {[name + '.' + k for k in unknown]}; known under {name}: {sorted(known)}"
        )
    return data


def _parse_automerge(data: Any, source: str) -> AutomergePolicy:
    data = _section(data, "automerge", ("risk", "min_age_hours", "merge_method", "track_record"), source)
    if data is None:
        return AutomergePolicy()
    values: dict[str, Any] = {}
    if "risk" in data:
        v = data["risk"]
        if not isinstance(v, list) or not all(x in RISK_TIERS for x in v):
            raise PolicyError(
                f"{source}: automerge.risk must be a list of risk tiers from {list(RISK_TIERS)}, got {v!r}"
            )
        values["risk"] = tuple(v)
    if "min_age_hours" in data:
        values["min_age_hours"] = _bounded(
            data["min_age_hours"], "automerge.min_age_hours", 0, 24 * 365, "hours from 0 to 8760", source
        )
    if "merge_method" in data:
        v = data["merge_method"]
        if v not in MERGE_METHODS:
            raise PolicyError(f"{source}: automerge.merge_method must be one of {list(MERGE_METHODS)}, got {v!r}")
        values["merge_method"] = v
    if "track_record" in data:
        values["track_record"] = _integer(data["track_record"], "automerge.track_record", 0, 1000, source)
    return AutomergePolicy(**values)


def _parse_verify(data: Any, source: str) -> VerifyPolicy:
    data = _section(data, "verify", ("min_calls", "min_windows", "max_days", "noise", "confidence"), source)
    if data is None:
        return VerifyPolicy()
    values: dict[str, Any] = {}
    if "min_calls" in data:
        values["min_calls"] = _integer(data["min_calls"], "verify.min_calls", 1, 10**12, source)
    if "min_windows" in data:
        # the sign test cannot reach any useful level with fewer than 6 observations
        values["min_windows"] = _integer(data["min_windows"], "verify.min_windows", 6, 10**6, source)
    if "max_days" in data:
        values["max_days"] = _bounded(data["max_days"], "verify.max_days", 0.01, 365, "days from 0.01 to 365", source)
    if "noise" in data:
        values["noise"] = _bounded(data["noise"], "verify.noise", 0, 1, "a fraction from 0 to 1 (0.10: 10%)", source)
    if "confidence" in data:
        values["confidence"] = _bounded(
            data["confidence"], "verify.confidence", 0.5, 0.99999, "a level from 0.5 to 0.99999", source
        )
    return VerifyPolicy(**values)


def _parse_retire(data: Any, source: str) -> RetirePolicy:
    data = _section(data, "retire", ("unused_days", "automerge"), source)
    if data is None:
        return RetirePolicy()
    values: dict[str, Any] = {}
    if "unused_days" in data:
        values["unused_days"] = _bounded(
            data["unused_days"], "retire.unused_days", 1, 3650, "days from 1 to 3650", source
        )
    if "automerge" in data:
        v = data["automerge"]
        if not isinstance(v, bool):
            raise PolicyError(f"{source}: retire.automerge must be true or false, got {v!r}")
        values["automerge"] = v
    return RetirePolicy(**values)


def _parse_gate(data: Any, source: str) -> GatePolicy:
    if data is None:
        return GatePolicy()
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: gate must be a mapping of settings, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(_GATE_KNOWN))
    if unknown:
        raise PolicyError(
            f"{source}: unknown key(s) {['gate.' + k for k in unknown]}; known under gate: {sorted(_GATE_KNOWN)}"
        )
    values: dict[str, Any] = {}
    if "review" in data:
        v = data["review"]
        if not isinstance(v, list) or not all(x in RISK_TIERS for x in v):
            raise PolicyError(f"{source}: gate.review must be a list of risk tiers from {list(RISK_TIERS)}, got {v!r}")
        values["review"] = tuple(v)
    bounds = {
        "coverage": (0, 100, "a percentage from 0 to 100"),
        "noise": (0, 1, "a fraction from 0 to 1 (0.05: 5%)"),
        "confidence": (0.5, 0.9999, "a level from 0.5 to 0.9999"),
        "budget_s": (0, 86400, "seconds from 0 to 86400"),
    }
    for key, (lo, hi, what) in bounds.items():
        if key in data:
            v = data[key]
            if not _number(v) or not lo <= v <= hi:
                raise PolicyError(f"{source}: gate.{key} must be {what}, got {v!r}")
            values[key] = float(v)
    for key, lo in (("pairs", 4), ("max_pairs", 4)):
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 10000:
                raise PolicyError(f"{source}: gate.{key} must be an integer from {lo} to 10000, got {v!r}")
            values[key] = v
    gate = GatePolicy(**values)
    if gate.max_pairs < gate.pairs:
        raise PolicyError(f"{source}: gate.max_pairs ({gate.max_pairs}) is below gate.pairs ({gate.pairs})")
    return gate
