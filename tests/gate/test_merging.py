"""The merge decision: every rule as a table row, and the property that nothing merges
without a passed gate."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_aina.gate.merging import MERGE, REFUSE, REVIEW, WAIT, Decision, MergeCommand, decide
from pytest_aina.gate.policy import RISK_TIERS, Policy, parse_policy
from pytest_aina.gate.verdict import FAIL, NEEDS, PASS, SKIPPED

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
HEAD = "a" * 40


def verdict(status=PASS, checks=None, head=HEAD):
    if checks is None:
        checks = {PASS: [("scope", PASS)], FAIL: [("performance", FAIL)], NEEDS: [("claims", NEEDS)]}.get(status, [])
    return {
        "format": "aina-gate/v1",
        "verdict": status,
        "head": head,
        "reasons": [f"{n}: why {n}" for n, s in checks if s in (FAIL, NEEDS)],
        "checks": [{"name": n, "status": s, "summary": ""} for n, s in checks],
    }


AUTO = parse_policy(
    "automerge: {risk: [low], min_age_hours: 24, merge_method: rebase, track_record: 2}\n"
    "reviewers: [alice, bob]\nteam_reviewers: [kernels]\n"
)
AUTO_RETIRE = parse_policy("automerge: {risk: [low], min_age_hours: 24}\nretire: {automerge: true}\n")
OFF = Policy()
WRITER, READER = MergeCommand("carol", True), MergeCommand("mallory", False)
OLD, YOUNG = NOW - timedelta(hours=30), NOW - timedelta(hours=3)


@pytest.mark.parametrize(
    "v, risk, opened, policy, record, command, retire, action, says",
    [
        # 1. the gate has not spoken, or spoke about another commit
        (None, "low", OLD, AUTO, 5, WRITER, False, WAIT, "not reported"),
        (verdict(head="b" * 40), "low", OLD, AUTO, 5, WRITER, False, WAIT, "bbbbbbbbbbbb"),
        ({"verdict": "pass"}, "low", OLD, AUTO, 5, WRITER, False, REFUSE, "aina-gate/v1"),
        # 2. failed: refused, even on command
        (verdict(FAIL), "low", OLD, AUTO, 5, None, False, REFUSE, "performance: why performance"),
        (verdict(FAIL), "low", OLD, AUTO, 5, WRITER, False, REFUSE, "gate failed"),
        # 3. needs evidence: refused, even on command; review when only the review is missing
        (verdict(NEEDS), "low", OLD, AUTO, 5, WRITER, False, REFUSE, "claims: why claims"),
        (verdict(NEEDS, [("policy", NEEDS), ("claims", NEEDS)]), "medium", OLD, AUTO, 5, WRITER, False, REFUSE, ""),
        (verdict(NEEDS, [("scope", PASS), ("policy", NEEDS)]), "medium", OLD, AUTO, 5, None, False, REVIEW, "@alice"),
        (verdict(NEEDS, [("policy", NEEDS), ("performance", FAIL)]), "medium", OLD, AUTO, 5, None, False, REFUSE, ""),
        (verdict("strange"), "low", OLD, AUTO, 5, WRITER, False, REFUSE, "'strange'"),
        # 4. passed, commanded by a writer: merged whatever the tier, soak and record
        (verdict(), "high", YOUNG, OFF, 0, WRITER, False, MERGE, "@carol"),
        (verdict(), "medium", YOUNG, AUTO, 0, WRITER, False, MERGE, "@carol"),
        # ... a command without write access changes nothing
        (verdict(), "high", OLD, AUTO, 5, READER, False, REVIEW, "ignored"),
        (verdict(), "low", OLD, AUTO, 5, READER, False, MERGE, "ignored"),
        # 5. passed, on its own
        (verdict(), "low", OLD, OFF, 5, None, False, REVIEW, "automerge is off"),
        (verdict(), "medium", OLD, AUTO, 5, None, False, REVIEW, "not among automerge.risk"),
        (verdict(), "high", OLD, AUTO, 5, None, False, REVIEW, "team kernels"),
        (verdict(), "urgent", OLD, AUTO, 5, None, False, REVIEW, "unknown risk tier"),
        (verdict(), "low", OLD, AUTO, 1, None, False, REVIEW, "1 time(s) in a row; automerge.track_record wants 2"),
        (verdict(), "low", YOUNG, AUTO, 2, None, False, WAIT, "21.0 h"),
        (verdict(), "low", OLD, AUTO, 2, None, False, MERGE, "soak of 24 h over"),
        (verdict(), "low", NOW - timedelta(hours=24), AUTO, 2, None, False, MERGE, ""),
        # retirements: their own switch
        (verdict(), "low", OLD, AUTO, 5, None, True, REVIEW, "retire.automerge"),
        (verdict(), "high", OLD, AUTO_RETIRE, 0, None, True, MERGE, "retirement"),
        (verdict(), "low", YOUNG, AUTO_RETIRE, 0, None, True, WAIT, "soak"),
        (verdict(FAIL), "low", OLD, AUTO_RETIRE, 0, None, True, REFUSE, ""),
    ],
)
def test_the_decision(v, risk, opened, policy, record, command, retire, action, says):
    d = decide(
        v,
        risk=risk,
        opened_at=opened,
        now=NOW,
        policy=policy,
        track_record=record,
        command=command,
        head=HEAD,
        retire=retire,
    )
    assert d.action == action, d
    assert says in d.reason, d


def test_what_each_action_carries():
    review = decide(verdict(), risk="medium", opened_at=OLD, now=NOW, policy=AUTO, track_record=5)
    assert review.reviewers == ("alice", "bob") and review.team_reviewers == ("kernels",)
    nobody = decide(verdict(), risk="medium", opened_at=OLD, now=NOW, policy=OFF)
    assert nobody.reviewers == () and "anyone with write access" in nobody.reason
    wait = decide(verdict(), risk="low", opened_at=YOUNG, now=NOW, policy=AUTO, track_record=2)
    assert wait.until == YOUNG + timedelta(hours=24)
    merge = decide(verdict(), risk="low", opened_at=OLD, now=NOW, policy=AUTO, track_record=2)
    assert merge.merge_method == "rebase" and merge.as_dict()["action"] == "merge"
    refuse = decide(verdict(FAIL), risk="low", opened_at=OLD, now=NOW, policy=AUTO)
    assert refuse.reasons == ("performance: why performance",)
    # the verdict's head is checked only when the caller knows the PR's head
    assert decide(verdict(head="b" * 40), risk="high", opened_at=OLD, now=NOW, policy=OFF).action == REVIEW


STATUSES = st.sampled_from([PASS, FAIL, NEEDS, SKIPPED, "pending"])


@st.composite
def verdicts(draw):
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    checks = draw(
        st.lists(st.tuples(st.sampled_from(["scope", "policy", "claims", "performance"]), STATUSES), max_size=5)
    )
    return verdict(draw(STATUSES), checks, head=draw(st.sampled_from([HEAD, "b" * 40])))


@st.composite
def policies(draw):
    tiers = draw(st.lists(st.sampled_from(RISK_TIERS), unique=True))
    return parse_policy(
        f"automerge: {{risk: {tiers}, min_age_hours: {draw(st.integers(0, 72))}, "
        f"track_record: {draw(st.integers(0, 3))}}}\nretire: {{automerge: {str(draw(st.booleans())).lower()}}}\n"
    )


@settings(max_examples=400, deadline=None)
@given(
    v=verdicts(),
    risk=st.sampled_from([*RISK_TIERS, "unknown"]),
    age_h=st.floats(0, 200),
    policy=policies(),
    record=st.integers(0, 5),
    command=st.none() | st.builds(MergeCommand, st.just("x"), st.booleans()),
    retire=st.booleans(),
)
def test_nothing_merges_unless_the_gate_passed_this_head(v, risk, age_h, policy, record, command, retire):
    d = decide(
        v,
        risk=risk,
        opened_at=NOW - timedelta(hours=age_h),
        now=NOW,
        policy=policy,
        track_record=record,
        command=command,
        head=HEAD,
        retire=retire,
    )
    assert isinstance(d, Decision) and d.reason
    if d.action == MERGE:
        assert v is not None and v["verdict"] == PASS and v["head"] == HEAD
        # on its own (no writer's command) only after the soak, within the policy
        if not (command and command.can_write):
            assert age_h >= policy.automerge.min_age_hours
            assert policy.retire.automerge if retire else risk in policy.automerge.risk
    if v is not None and v["head"] == HEAD and v["verdict"] == PASS and command and command.can_write:
        assert d.action == MERGE
