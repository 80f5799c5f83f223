"""The policy's rules for bot changes: the paths the bot may change, the kernels it may
evolve, and the risk tiers that wait for a person's approving review.

People's changes are governed by branch protection (required reviews, CODEOWNERS); these
rules bound what the App may do on its own.
"""

from __future__ import annotations

from pytest_aina.gate.approvals import Decisions
from pytest_aina.gate.policy import Policy
from pytest_aina.gate.provenance import Attestation, is_bot_branch, risk_of
from pytest_aina.gate.scope import Scope
from pytest_aina.gate.verdict import FAIL, NEEDS, PASS, SKIPPED, Annotation, CheckResult

CHECK = "policy"


def check(
    policy: Policy, scope: Scope, branch: str | None, found: list[Attestation], decisions: Decisions
) -> CheckResult:
    if not is_bot_branch(branch) and not found:
        return CheckResult(
            CHECK,
            SKIPPED,
            "not a bot change: branch protection governs people's changes",
            data={"policy": policy.source},
        )
    refused = policy.refused_paths(scope.paths)
    notes = [
        Annotation(
            p,
            None,
            f"the bot may not change {p}: {policy.source} allows {', '.join(policy.paths)}",
            title="aina gate: policy",
        )
        for p in refused
    ]
    details = [f"outside the bot's paths: {p}" for p in refused]
    kernels = sorted({a.predicate.get("kernel") for a in found if a.predicate.get("kernel")})
    barred = [k for k in kernels if not policy.kernel_allowed(k)]
    details += [
        f"kernel {k}: {policy.source} does not let the bot evolve it (kernels: {list(policy.kernels)})" for k in barred
    ]
    tiers = sorted({risk_of(a.predicate) for a in found}, key=("low", "medium", "high").index)
    risk = tiers[-1] if tiers else "high"  # a bot branch without a record: the highest tier
    data = {
        "policy": policy.source,
        "refused_paths": refused,
        "barred_kernels": barred,
        "risk": risk,
        "reviewers": decisions.approving_reviewers,
    }
    if refused or barred:
        what = [f"{len(refused)} path(s) outside policy.paths"] if refused else []
        what += [f"kernel(s) {', '.join(barred)} not allowed"] if barred else []
        return CheckResult(CHECK, FAIL, "; ".join(what) + f" ({policy.source})", details, notes, data)
    if risk in policy.gate.review:
        if not decisions.approving_reviewers:
            return CheckResult(
                CHECK,
                NEEDS,
                f"risk {risk}: {policy.source} wants an approving review by a person with write access",
                details,
                notes,
                data,
            )
        details.append(f"risk {risk}: approved by {', '.join(decisions.approving_reviewers)}")
    return CheckResult(
        CHECK,
        PASS,
        f"within the bot's paths and kernels; risk {risk}"
        + (" (reviewed)" if risk in policy.gate.review else " (no review required)"),
        details,
        notes,
        data,
    )
