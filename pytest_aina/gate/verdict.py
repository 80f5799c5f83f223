"""The gate's verdict: checks, their outcomes, and the one exit code they add up to.

A check ends in one of four states. The verdict is the worst of them, in this order:
``fail`` (exit 1) > ``needs-evidence`` (exit 2: a human or more evidence is needed) >
``pass`` (exit 0). ``skipped`` (the check does not apply to this change, e.g. provenance
of a human's change) never decides. A configuration error (exit 3) is raised as
:class:`GateConfigError` before any verdict exists. What has no evidence yet is never a
pass: a check that could not decide says ``needs-evidence``, not ``pass``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, NEEDS, SKIPPED = "pass", "fail", "needs-evidence", "skipped"
STATUSES = (FAIL, NEEDS, PASS, SKIPPED)
EXIT_CODES = {PASS: 0, FAIL: 1, NEEDS: 2}
CONFIG_ERROR = 3


class GateConfigError(Exception):
    """The gate cannot run as asked (a ref that does not exist, a bad policy or approvals
    file): exit 3 with this message, no verdict."""


def _escape_data(text: str) -> str:
    # GitHub's workflow-command encoding: the message may not contain raw newlines
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    """A finding at a line of a file: a GitHub Actions annotation in CI, ``file:line: ...`` locally."""

    file: str | None
    line: int | None
    message: str
    title: str = "aina gate"
    level: str = "error"  # error | warning | notice

    def github(self) -> str:
        props = []
        if self.file:
            props.append(f"file={_escape_property(self.file)}")
            if self.line:
                props.append(f"line={int(self.line)}")
        props.append(f"title={_escape_property(self.title)}")
        return f"::{self.level} {','.join(props)}::{_escape_data(self.message)}"

    def plain(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else (self.file or "")
        return f"{where + ': ' if where else ''}{self.level}: {self.title}: {self.message}"


@dataclass
class CheckResult:
    """One check's outcome: a one-line summary for the table, the details a reviewer needs,
    annotations at the lines at fault, and ``data`` for machines (the JSON verdict)."""

    name: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name}: status {self.status!r} is not one of {STATUSES}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["annotations"] = [asdict(a) for a in self.annotations]
        return d


def worst(statuses) -> str:
    """The verdict of a list of check statuses: fail > needs-evidence > pass; nothing
    decided (all skipped, or none) is a pass only because nothing needed evidence."""
    seen = set(statuses)
    for s in (FAIL, NEEDS):
        if s in seen:
            return s
    return PASS


@dataclass
class GateResult:
    base: str  # the commit the change is compared with (merge base of BASE and HEAD)
    head: str  # the head commit
    base_ref: str
    head_ref: str
    checks: list[CheckResult] = field(default_factory=list)
    evidence: list[dict] = field(default_factory=list)  # performance rows (performance.Row.as_dict)
    attestations: list[dict] = field(default_factory=list)  # {"path", "sha256"} of every attestation read
    policy: dict = field(default_factory=dict)  # {"source", "sha256"}
    scope: dict = field(default_factory=dict)
    started: str = ""
    wall_s: float = 0.0

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def annotations(self) -> list[Annotation]:
        return [a for c in self.checks for a in c.annotations]

    def reasons(self) -> list[str]:
        """One line per check that decided the verdict (failed or needs evidence)."""
        return [f"{c.name}: {c.summary}" for c in self.checks if c.status in (FAIL, NEEDS)]
