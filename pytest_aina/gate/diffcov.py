"""Diff coverage: the kernel lines a change adds or modifies, and whether its tests run them.

Counted over the statements coverage.py finds in the head's version of each changed kernel
file (a blank line, a comment or a docstring is not a statement), from the data the
correctness run collected (the affected kernels' spec tests and the change's own tests).
"""

from __future__ import annotations

from pathlib import Path

from pytest_aina.gate.repo import Repo
from pytest_aina.gate.scope import Scope
from pytest_aina.gate.verdict import FAIL, NEEDS, PASS, SKIPPED, Annotation, CheckResult

CHECK = "coverage"


def kernel_sources(scope: Scope) -> list[str]:
    """Changed Python files of the affected kernels that exist at the head (tests aside)."""
    return [
        p
        for p in scope.of_kind("kernel")
        if p.endswith(".py") and any(c.path == p and c.status != "D" for c in scope.changes)
    ]


def _ranges(lines: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in sorted(lines):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def check(
    repo: Repo, base: str, head: str, scope: Scope, checkout: Path | None, data_file: Path | None, threshold: float
) -> CheckResult:
    files = kernel_sources(scope)
    if not files:
        return CheckResult(CHECK, SKIPPED, "no kernel source changed")
    if threshold <= 0:
        return CheckResult(CHECK, SKIPPED, "switched off by the policy (gate.coverage: 0)")
    if data_file is None or checkout is None:
        return CheckResult(
            CHECK, NEEDS, "no coverage data: the tests did not run under coverage.py", data={"files": files}
        )
    import coverage

    cov = coverage.Coverage(data_file=str(data_file))
    cov.load()
    per_file, notes, details = {}, [], []
    total = covered = 0
    for path in files:
        change = next(c for c in scope.changes if c.path == path)
        added = set(repo.added_lines(base, head, path, change.old_path))
        try:
            _, statements, _, missing, _ = cov.analysis2(str(checkout / path))
        except coverage.CoverageException:
            statements, missing = [], []
        counted = sorted(added & set(statements))
        unrun = sorted(set(counted) & set(missing))
        total += len(counted)
        covered += len(counted) - len(unrun)
        per_file[path] = {"lines": len(counted), "covered": len(counted) - len(unrun), "missing": unrun}
        for a, b in _ranges(unrun):
            span = f"line {a}" if a == b else f"lines {a}-{b}"
            notes.append(
                Annotation(
                    path,
                    a,
                    f"{span}: added or modified, but no test runs {'it' if a == b else 'them'}",
                    title="aina gate: not covered",
                )
            )
        details.append(
            f"{path}: {len(counted) - len(unrun)}/{len(counted)} new statement line(s) run"
            + (f"; not run: {', '.join(f'{a}' if a == b else f'{a}-{b}' for a, b in _ranges(unrun))}" if unrun else "")
        )
    pct = 100.0 if total == 0 else 100.0 * covered / total
    data = {"percent": round(pct, 2), "lines": total, "covered": covered, "threshold": threshold, "files": per_file}
    summary = f"{pct:.1f}% of {total} added/modified kernel statement line(s) run by the tests (policy: {threshold:g}%)"
    if pct + 1e-9 < threshold:
        return CheckResult(CHECK, FAIL, summary, details, notes, data)
    return CheckResult(CHECK, PASS, summary, details, [], data)
