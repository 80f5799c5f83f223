"""``run_gate``: the checks in order of cost, each on what the earlier ones found.

1. scope (git and :mod:`ast`: which kernels the change can reach), 2. the ratchet, 3.
provenance and 4. the policy (all read from git objects, seconds), then, only for a change
that reaches a kernel or carries tests: 5. correctness with 6. coverage (the tests run
once, under coverage.py), 7. performance (sandboxed, interleaved, minutes) and 8. the
claims, judged on 7's measurements. A docs-only change stops after 4 without importing
torch. Every check that applies runs, so the verdict carries every reason; ``fail_fast``
stops at the first failure instead.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pytest_aina.gate import approvals, boundaries, claims, correctness, diffcov, performance, provenance, rules
from pytest_aina.gate import scope as scopes
from pytest_aina.gate.measure import Session
from pytest_aina.gate.policy import POLICY_PATH, Policy, PolicyError, parse_policy
from pytest_aina.gate.repo import Repo
from pytest_aina.gate.verdict import FAIL, PASS, SKIPPED, CheckResult, GateConfigError, GateResult


@dataclass
class GateOptions:
    base: str
    head: str
    repo: str = "."
    reports: str | None = None
    approvals: str | None = None
    branch: str | None = None  # the head branch's name (default: $GITHUB_HEAD_REF, or HEAD if a branch name)
    specs: str = "specs"
    measure_only: bool = False  # scope and performance only: the GPU runner's report for --reports
    budget_s: float | None = None  # overrides the policy's gate.budget_s
    fail_fast: bool = False


def load_policy(repo: Repo, commit: str) -> Policy:
    text = repo.text(commit, POLICY_PATH)
    try:
        return parse_policy(text, source=f"{POLICY_PATH}@{commit[:12]}")
    except PolicyError as exc:
        raise GateConfigError(str(exc)) from None


def _branch(opts: GateOptions) -> str | None:
    if opts.branch:
        return opts.branch
    if os.environ.get("GITHUB_HEAD_REF"):
        return os.environ["GITHUB_HEAD_REF"]
    return opts.head.removeprefix("refs/heads/") if not all(c in "0123456789abcdef" for c in opts.head) else None


def _tops(files) -> list[str]:
    return sorted({p.split("/")[0] if "/" in p else p[:-3] for p in files if p.endswith(".py")})


class _Gate:
    def __init__(self, opts: GateOptions):
        self.opts = opts
        self.t0 = time.monotonic()
        self.repo = Repo(opts.repo)
        self.base_tip = self.repo.commit(opts.base)
        self.head = self.repo.commit(opts.head)
        self.base = self.repo.merge_base(self.base_tip, self.head)
        self.policy = load_policy(self.repo, self.base_tip)
        self.decisions = approvals.load(opts.approvals)
        self.branch = _branch(opts)
        self.result = GateResult(
            base=self.base,
            head=self.head,
            base_ref=opts.base,
            head_ref=opts.head,
            started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            policy={"source": self.policy.source, "sha256": self.policy.digest},
        )
        self.stack = ExitStack()
        self._checkouts: dict[str, Path] = {}
        self.workdir = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="aina-gate-")))

    def checkout(self, side: str) -> Path:
        if side not in self._checkouts:
            commit = self.base if side == "base" else self.head
            self._checkouts[side] = self.stack.enter_context(self.repo.checkout(commit, side))
        return self._checkouts[side]

    def add(self, check: CheckResult) -> bool:
        """Record ``check``; False when the gate should stop (fail_fast and a failure)."""
        self.result.checks.append(check)
        return not (self.opts.fail_fast and check.status == FAIL)

    def skip_rest(self, names: list[str], why: str) -> None:
        for n in names:
            if self.result.check(n) is None:
                self.result.checks.append(CheckResult(n, SKIPPED, why))

    def run(self) -> GateResult:
        with self.stack:
            try:
                self._run()
            finally:
                self.result.wall_s = time.monotonic() - self.t0
        return self.result

    # -- the checks, cheapest first
    def _run(self) -> None:
        order = ["scope", "ratchet", "provenance", "policy", "correctness", "coverage", "performance", "claims"]
        changes = self.repo.changes(self.base, self.head)
        sets = boundaries.load(self.repo, self.base, self.head, self.opts.specs)
        scope = scopes.compute(
            self.repo, self.base, self.head, changes, {"base": sets.base, "head": sets.head}, sets.paths
        )
        self.result.scope = scope.as_dict()
        tests = [p for p in scope.of_kind("test") if any(c.path == p and c.status != "D" for c in changes)]
        if not changes:
            summary = "the head changes nothing"
        elif scope.docs_only:
            summary = f"docs only ({len(scope.paths)} file(s)): no kernel can be affected, nothing to test or measure"
        elif scope.kernels:
            summary = f"{len(scope.kernels)} kernel(s) affected: " + "; ".join(
                f"{k} (via {', '.join(sorted(v)[:3])}{'...' if len(v) > 3 else ''})"
                for k, v in sorted(scope.affected.items())
            )
        else:
            summary = f"no kernel affected ({len(scope.paths)} file(s) changed): no benchmark needed"
        self.add(
            CheckResult(
                "scope", PASS, summary, [f"{p}: {scope.categories.get(p)}" for p in scope.paths], data=scope.as_dict()
            )
        )
        if self.opts.measure_only:
            self._performance(scope, sets, [], here_only=True)
            return
        # merge queues judge a merge commit: provenance is about the branch it merges
        tip = self.repo.branch_tip(self.base_tip, self.head)
        pbase = self.repo.merge_base(self.base_tip, tip)
        pscope = (
            scope
            if (tip, pbase) == (self.head, self.base)
            else scopes.compute(self.repo, pbase, tip, self.repo.changes(pbase, tip), {}, {"base": {}, "head": {}})
        )
        found, broken = provenance.attestations(self.repo, tip, pscope)
        self.result.attestations = [{"path": a.path, "sha256": a.sha256} for a in found]
        bot = provenance.is_bot_branch(self.branch) or bool(found or broken)
        cheap = [
            lambda: boundaries.check(self.repo, self.base, self.head, sets, self.decisions, bot=bot),
            lambda: provenance.check(self.repo, pbase, tip, pscope, self.branch, found, broken),
            lambda: rules.check(self.policy, pscope, self.branch, found, self.decisions),
        ]
        for make in cheap:
            if not self.add(make()):
                return self.skip_rest(order, "an earlier check failed (--fail-fast)")
        if not scope.kernels:
            # the change's own tests are its kernels' tests here; the project's CI runs the rest
            why = "no kernel affected" + (f" ({len(tests)} changed test file(s) are ci.yml's to run)" if tests else "")
            return self.skip_rest(order, why)
        run = None
        specs = [sets.paths["head"][k] for k in scope.kernels if k in sets.paths["head"]]
        cover = diffcov.kernel_sources(scope)
        if specs or tests:
            head_dir = self.checkout("head")
            run = correctness.run_tests(head_dir, specs, tests, cover, self.workdir)
        tested = correctness.check(run, specs, tests)
        if not self.add(tested):
            return self.skip_rest(order, "an earlier check failed (--fail-fast)")
        cov = diffcov.check(
            self.repo,
            self.base,
            self.head,
            scope,
            self._checkouts.get("head"),
            run.coverage_data if run else None,
            self.policy.gate.coverage,
        )
        if not self.add(cov):
            return self.skip_rest(order, "an earlier check failed (--fail-fast)")
        if tested.status == FAIL:
            return self.skip_rest(order, "the head's tests fail: its speed is not worth measuring")
        claimed = [c for a in found for c in claims.claims_of(a)]
        self._performance(scope, sets, claimed)
        verdict, table = claims.check(found, self._rows, noise=self.policy.gate.noise, here=self._here)
        for e in self.result.evidence:
            claim = table.get((e["kernel"], e["case"], e["device"]))
            if claim:
                e["claim"] = claim
        self.add(verdict)

    def _performance(self, scope, sets, claimed: list, here_only: bool = False) -> None:
        gate = self.policy.gate
        self._rows: list[performance.Row] = []
        self._here = "cpu"
        both = [k for k in scope.kernels if k in sets.base and k in sets.head]
        # a spec edit alone changes what is checked, not what runs: the cases come from the base's spec
        kernels = [
            k
            for k in both
            if sets.base[k].implementation != sets.head[k].implementation
            or any(p != sets.paths["head"].get(k) and p != sets.paths["base"].get(k) for p in scope.affected[k])
        ]
        new = [k for k in scope.kernels if k not in sets.base and k in sets.head]
        notes = [f"{k}: a new kernel, no base to compare with" for k in new]
        notes += [f"{k}: only its spec changed; the code that runs is the base's" for k in both if k not in kernels]
        if not kernels:
            why = "; ".join(notes) if notes else "no kernel affected"
            self.add(CheckResult("performance", SKIPPED, f"nothing to measure: {why}", notes))
            return
        self._here = performance.local_device()
        if self.opts.reports and not here_only:
            rows, more = performance.load_reports(
                self.opts.reports, self.base, self.head, noise=gate.noise, confidence=gate.confidence
            )
            self._rows += rows
            notes += more
        todo, unrunnable = [], {}
        for k in kernels:
            mine = [c for c in claimed if c.kernel == k]
            cases = performance.cases_of(
                k,
                sets.base[k],
                [{"label": c.label, "dims": c.dims, "dtype": c.dtype, "device": c.device} for c in mine if c.dtype],
            )
            runnable = [c for c in cases if self._here in c.devices]
            unrunnable[k] = [c.label for c in cases if self._here not in c.devices]
            todo += runnable
        budget = self.opts.budget_s if self.opts.budget_s is not None else gate.budget_s
        end = time.monotonic() + budget
        base_dir, head_dir = (self.checkout("base"), self.checkout("head")) if todo else (None, None)
        for i, case in enumerate(todo):
            remaining = end - time.monotonic()
            if remaining <= 0:
                row = performance.Row(
                    case.kernel,
                    case.label,
                    case.dims,
                    case.dtype,
                    self._here,
                    reason=f"the time budget ({budget:g} s) ran out before this case",
                )
            else:
                k = case.kernel
                closure = set(
                    scopes.kernel_files(scopes.Tree(self.repo, self.base), sets.base[k], sets.paths["base"][k])
                ) | set(scope.closures.get(k, {}))
                session = Session(
                    base_dir,
                    head_dir,
                    sets.base[k].implementation,
                    sets.head[k].implementation,
                    base_dir / sets.paths["base"][k],
                    _tops(closure),
                    self.workdir / f"perf-{i}",
                    device=self._here,
                    wall_s=max(60.0, min(600.0, remaining)),
                )
                row = performance.measure_case(
                    session,
                    case,
                    noise=gate.noise,
                    confidence=gate.confidence,
                    pairs=gate.pairs,
                    max_pairs=gate.max_pairs,
                    deadline=time.monotonic() + remaining / (len(todo) - i),
                    device=self._here,
                )
            row.spec_file = sets.paths["head"].get(case.kernel) or sets.paths["base"].get(case.kernel)
            self._rows.append(row)
        self.result.evidence = [r.as_dict() for r in self._rows]
        self.add(performance.check(self._rows, kernels, {k: v for k, v in unrunnable.items() if v}, notes, gate.noise))


def run_gate(opts: GateOptions) -> GateResult:
    """The verdict on ``opts.head`` against ``opts.base``. Raises :class:`GateConfigError`
    when it cannot run as asked (exit 3)."""
    return _Gate(opts).run()
