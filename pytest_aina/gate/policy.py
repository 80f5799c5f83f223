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


_KNOWN = ("max_open_prs", "paths", "kernels", "min_expected_gain", "automatic", "gate")
_GATE_KNOWN = ("review", "coverage", "noise", "confidence", "budget_s", "pairs", "max_pairs")


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
    return Policy(**values)


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
