"""Per-repository policy: ``.github/aina.yml`` on the default branch, with defaults.

```yaml
max_open_prs: 3            # bot PRs open at once; more wait (deferred) for a slot
paths: [kernels/**, specs/**, tests/**, provenance/**, .aina/**]  # what the bot may change
kernels: ["*"]             # which kernels it may evolve (globs over kernel names)
min_expected_gain: 0       # GPU-seconds per day below which it does not start on its own
automatic: true            # false: only a maintainer's tick or /aina retry starts a run
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

POLICY_PATH = ".github/aina.yml"


class PolicyError(ValueError):
    """The policy file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Policy:
    max_open_prs: int = 3
    # The Changer writes variants and dispatch tables (kernels/), pinned shapes (specs/),
    # generated tests (tests/) and the in-toto record (provenance/).
    paths: tuple[str, ...] = ("kernels/**", "specs/**", "tests/**", "provenance/**", ".aina/**")
    kernels: tuple[str, ...] = ("*",)
    min_expected_gain: float = 0.0
    automatic: bool = True
    source: str = field(default="defaults", compare=False)

    def path_allowed(self, path: str) -> bool:
        return any(_glob(p).fullmatch(path) for p in self.paths)

    def kernel_allowed(self, kernel: str | None) -> bool:
        if kernel is None:
            return True
        return any(_glob(p).fullmatch(kernel) for p in self.kernels)

    def refused_paths(self, paths) -> list[str]:
        return sorted(p for p in paths if not self.path_allowed(p))


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


def parse_policy(text: str | None, *, source: str = POLICY_PATH) -> Policy:
    """The policy in ``text`` (YAML); defaults when there is no file."""
    if text is None:
        return Policy()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{source}{at}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return Policy(source=source)
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    known = {"max_open_prs", "paths", "kernels", "min_expected_gain", "automatic"}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise PolicyError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {"source": source}
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
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise PolicyError(f"{source}: min_expected_gain must be a number >= 0 (GPU-seconds per day), got {v!r}")
        values["min_expected_gain"] = float(v)
    if "automatic" in data:
        v = data["automatic"]
        if not isinstance(v, bool):
            raise PolicyError(f"{source}: automatic must be true or false, got {v!r}")
        values["automatic"] = v
    return Policy(**values)


def load_policy(repo, ref: str) -> Policy:
    """Read the policy from a github3 repository at ``ref``."""
    from github3.exceptions import NotFoundError

    try:
        contents = repo.file_contents(POLICY_PATH, ref=ref)
    except NotFoundError:
        return Policy()
    text = contents.decoded.decode("utf-8", "replace")
    return parse_policy(text, source=f"{POLICY_PATH}@{ref[:12]}")
