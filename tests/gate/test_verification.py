"""Production verification of a change's claims, and the policy keys of issue 12."""

import random

import pytest

from pytest_aina.gate.claims import Claim
from pytest_aina.gate.policy import AutomergePolicy, PolicyError, RetirePolicy, VerifyPolicy, parse_policy
from pytest_aina.gate.verification import CONFIRMED, CONTRADICTED, NOT_ENOUGH_DATA, claims_in, verify
from pytest_aina.telemetry.window import Latency, Window

DEV = "NVIDIA H100 80GB HBM3"
POL = VerifyPolicy(min_calls=100, min_windows=12, max_days=2, noise=0.05, confidence=0.999)
DAY = 86400.0


def claim(dims, median, device="cuda", name=DEV):
    label = ",".join(f"{k}={v}" for k, v in dims.items()) + ",bfloat16"
    return Claim("p.intoto.json", "softmax", label, dims, "bfloat16", device, name, 1.2, (1.1, 1.3), median,
                 (median * 0.99, median * 1.01), "softmax_v")  # fmt: skip


def windows(dims, median, n, *, factor=1.0, seed=0, start=0.0, device=DEV, timing="cuda_event", variant="softmax_v",
            step=1200.0):  # fmt: skip
    """``n`` windows ``step`` seconds apart (three an hour by default: the method's unit is the hour)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p50 = median * factor * rng.lognormvariate(0, 0.04)
        out.append(
            Window(
                start + step * i,
                start + step * i + 60,
                "svc",
                "softmax",
                variant,
                tuple(dims.items()),
                "bfloat16",
                device,
                "sm_90",
                50,
                50 * p50,
                Latency(p50 * 0.9, p50, p50 * 1.2, p50 * 2, p50 * 5),
                timing,
                ref=f"tel.jsonl:{i + 1}",
            )  # fmt: skip
        )
    return out


A, B = {"M": 16, "N": 4096}, {"M": 64, "N": 8192}


def test_a_held_claim_is_confirmed_and_cites_its_windows():
    v = verify([claim(A, 2e-5)], windows(A, 2e-5, 60), policy=POL, since=0, now=DAY)
    assert v.status == CONFIRMED and v.final
    (s,) = v.shapes
    assert s.windows == 60 and s.blocks == 20 and s.calls == 3000 and s.refs[0] == "tel.jsonl:1" and len(s.refs) == 60
    assert s.measured_ci_s[1] <= s.threshold_s and abs(s.ratio - 1) < 0.03
    assert v.as_dict()["shapes"][0]["claimed_s"] == 2e-5


def test_a_slower_production_contradicts_it_and_says_by_how_much():
    v = verify([claim(A, 2e-5), claim(B, 5e-5)], windows(A, 2e-5, 60) + windows(B, 5e-5, 60, factor=1.25),
               policy=POL, since=0, now=DAY)  # fmt: skip
    assert v.status == CONTRADICTED and v.final
    assert [s.status for s in v.shapes] == [CONFIRMED, CONTRADICTED]
    assert "M=64,N=8192" in v.reason and v.shapes[1].measured_ci_s[0] > v.shapes[1].threshold_s
    assert 1.2 < v.shapes[1].ratio < 1.3


def test_within_the_noise_is_not_a_contradiction():
    v = verify([claim(A, 2e-5)], windows(A, 2e-5, 200, factor=1.03), policy=POL, since=0, now=DAY)
    assert v.status == CONFIRMED


def test_too_little_data_waits_then_a_shape_never_run_stops_blocking():
    few = windows(A, 2e-5, 5, factor=2.0)
    v = verify([claim(A, 2e-5)], few, policy=POL, since=0, now=DAY)
    assert v.status == NOT_ENOUGH_DATA and not v.final and "needs 12 windows" in v.shapes[0].note
    # shape B never ran: it keeps the claim open until max_days, then does not block
    both = [claim(A, 2e-5), claim(B, 5e-5)]
    assert verify(both, windows(A, 2e-5, 60), policy=POL, since=0, now=DAY).status == NOT_ENOUGH_DATA
    late = verify(both, windows(A, 2e-5, 60), policy=POL, since=0, now=3 * DAY)
    assert late.status == CONFIRMED
    # nothing ran enough when max_days are over: final, and the reason says so
    over = verify([claim(A, 2e-5)], few, policy=POL, since=0, now=3 * DAY)
    assert over.status == NOT_ENOUGH_DATA and over.final
    assert over.reason.startswith(f"not enough data after {POL.max_days:g} days: M=")


def test_only_comparable_windows_count():
    cl = [claim(A, 2e-5)]
    slow = dict(factor=2.0, seed=1)
    ignored = (
        windows(A, 2e-5, 60, device="NVIDIA L4", **slow)  # another device kind
        + windows(A, 2e-5, 60, timing="wall", **slow)  # launch time, not kernel time
        + windows(A, 2e-5, 60, variant="generic", **slow)  # another variant
        + windows(A, 2e-5, 60, start=-DAY, **slow)  # before the merge
    )
    v = verify(cl, windows(A, 2e-5, 60) + ignored, policy=POL, since=0, now=DAY)
    assert v.status == CONFIRMED and v.shapes[0].windows == 60
    assert "other devices" in v.shapes[0].note and "wall clock" in v.shapes[0].note
    # the device's name is compared without regard to case
    assert verify(cl, windows(A, 2e-5, 60, device=DEV.lower()), policy=POL, since=0, now=DAY).shapes[0].windows == 60


def test_interpreter_claims_are_not_compared_with_production():
    v = verify([claim(A, 2e-5, device="cpu", name="cpu")], windows(A, 2e-5, 60), policy=POL, since=0, now=DAY)
    assert v.status == NOT_ENOUGH_DATA and v.final and "interpreter" in v.reason
    assert verify([], [], policy=POL, since=0, now=0).status == NOT_ENOUGH_DATA


def test_more_shapes_need_more_confidence_per_shape():
    """Bonferroni: 12 hours contradict a one-shape claim at 99.9%, but not each shape of a
    claim of 30 (15 hours are needed then)."""
    hourly = windows(A, 2e-5, 12, factor=1.5, step=3600)
    assert verify([claim(A, 2e-5)], hourly, policy=POL, since=0, now=DAY).status == CONTRADICTED
    many = [claim(A, 2e-5)] + [claim({"M": m, "N": 1}, 1e-5) for m in range(1, 30)]
    v = verify(many, hourly, policy=POL, since=0, now=DAY)
    assert v.status == NOT_ENOUGH_DATA and "12 hour(s) reach no useful level" in v.shapes[0].note


def test_the_unit_is_the_hour_and_only_whole_hours_count():
    """Windows of one hour share their machines' load: 60 slow windows in one hour are one
    observation, not sixty; and the hour still running is left for the next look."""
    burst = windows(A, 2e-5, 60, factor=1.5, step=60)
    v = verify([claim(A, 2e-5)], burst, policy=POL, since=0, now=DAY)
    assert v.status == NOT_ENOUGH_DATA and v.shapes[0].blocks == 1
    running = verify([claim(A, 2e-5)], windows(A, 2e-5, 60), policy=POL, since=0, now=3600 * 19 + 10)
    assert running.shapes[0].blocks == 19 and running.shapes[0].windows == 57


def test_claims_come_from_the_attestation():
    stmt = {
        "predicate": {
            "kernel": "softmax",
            "variant": {"name": "softmax_v", "kind": "config"},
            "device": {"kind": "cuda", "name": DEV, "gpu_evidence": True},
            "measurements": [
                {
                    "case": "M=16,N=4096,bfloat16",
                    "after": {"median_s": 2e-5, "ci95_s": [1.9e-5, 2.1e-5]},
                    "speedup": {"value": 1.3, "ci95": [1.2, 1.4]},
                },  # fmt: skip
            ],
        }
    }
    (c,) = claims_in(stmt, "p.intoto.json")
    assert (c.variant, c.latency_s, c.latency_ci, c.dims, c.device_name) == (
        "softmax_v", 2e-5, (1.9e-5, 2.1e-5), A, DEV,
    )  # fmt: skip
    assert verify([c], windows(A, 2e-5, 60), policy=POL, since=0, now=DAY).status == CONFIRMED


# -- the policy keys --------------------------------------------------------------------------


def test_the_loop_policy_keys_and_their_defaults():
    p = parse_policy("")
    assert p.automerge == AutomergePolicy() and not p.automerge.enabled  # nothing merges on its own
    assert p.reviewers == () and p.prs_per_hour == 0 and p.retire == RetirePolicy() and not p.retire.automerge
    p = parse_policy(
        "automerge: {risk: [low, medium], min_age_hours: 12, merge_method: rebase, track_record: 3}\n"
        "reviewers: [alice, bob-2]\nteam_reviewers: [kernel-team]\nprs_per_hour: 4\n"
        "verify: {min_calls: 500, min_windows: 20, max_days: 3, noise: 0.08, confidence: 0.99}\n"
        "retire: {unused_days: 30, automerge: true}\n"
    )
    assert p.automerge == AutomergePolicy(("low", "medium"), 12.0, "rebase", 3) and p.automerge.enabled
    assert p.reviewers == ("alice", "bob-2") and p.team_reviewers == ("kernel-team",) and p.prs_per_hour == 4
    assert p.verify == VerifyPolicy(500, 20, 3.0, 0.08, 0.99)
    assert p.retire == RetirePolicy(30.0, True)
    assert parse_policy("automerge:\n").automerge == AutomergePolicy()


@pytest.mark.parametrize(
    "text, message",
    [
        ("automerge: {risc: [low]}", r"unknown key\(s\) \['automerge.risc'\]"),
        ("automerge: [low]", "automerge must be a mapping"),
        ("automerge: {risk: [trivial]}", "automerge.risk must be a list of risk tiers"),
        ("automerge: {risk: low}", "automerge.risk"),
        ("automerge: {min_age_hours: -1}", "automerge.min_age_hours must be hours"),
        ("automerge: {min_age_hours: '24'}", "automerge.min_age_hours"),
        ("automerge: {merge_method: fast-forward}", r"automerge.merge_method must be one of \['squash'"),
        ("automerge: {track_record: 1.5}", "automerge.track_record must be an integer"),
        ("automerge: {track_record: true}", "automerge.track_record"),
        ("reviewers: alice", "reviewers must be a list of GitHub logins"),
        ("reviewers: ['@alice']", "reviewers must be a list of GitHub logins"),
        ("team_reviewers: [org/team]", "team_reviewers must be a list of team slugs"),
        ("prs_per_hour: -1", "prs_per_hour must be an integer from 0"),
        ("verify: {min_call: 3}", r"unknown key\(s\) \['verify.min_call'\]"),
        ("verify: {min_windows: 3}", "verify.min_windows must be an integer from 6"),
        ("verify: {noise: 10}", "verify.noise must be a fraction"),
        ("verify: {confidence: 1}", "verify.confidence must be a level"),
        ("verify: {max_days: 0}", "verify.max_days"),
        ("retire: {automerge: yes please}", "retire.automerge must be true or false"),
        ("retire: {unused: 3}", r"unknown key\(s\) \['retire.unused'\]"),
        ("retire: {unused_days: 0}", "retire.unused_days"),
    ],
)
def test_loop_policy_errors_name_the_key(text, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, source=".github/aina.yml")


def test_median_ci_in_linear_time_keeps_its_answers():
    """median_ci keeps a running tail now (thousands of windows); the levels are the sums of
    the binomial's middle terms, exactly as before."""
    import math

    from pytest_aina.changer.change.attestation import median_ci

    for n in range(2, 90):
        for conf in (0.5, 0.95, 0.999):
            lo, hi, level = median_ci(range(n), conf)
            j = int(lo) + 1
            assert level == sum(math.comb(n, i) for i in range(j, n - j + 1)) / 2**n
            wider = sum(math.comb(n, i) for i in range(j + 1, n - j)) / 2**n
            assert j == 1 or level >= conf
            assert j > n // 2 - 1 or wider < conf  # the narrowest interval that reaches the level


# -- the track record ---------------------------------------------------------------------------


def _row(status: str, merged_at: float, *ratios: float) -> dict:
    shapes = [{"ratio": r} for r in ratios]
    return {"status": status, "merged_at": merged_at, "verification": {"shapes": shapes} if ratios else None}


def test_the_track_record_counts_claims_ratios_and_the_streak_since_the_last_contradiction():
    from pytest_aina.gate.verification import track_record

    rows = [
        _row("confirmed", 1, 0.9, 1.0, 1.1),  # its ratio: the median over shapes, 1.0
        _row("reverted", 2, 1.4),
        _row("confirmed", 3, 0.95),
        _row("confirmed", 4, 0.97),
        _row("verifying", 5),
        _row("inconclusive", 6),  # max_days over without a decision: neither held nor broken
    ]
    r = track_record(reversed(rows))  # ordered by merge time, whatever the input order
    assert (r.claims, r.confirmed, r.contradicted, r.inconclusive, r.streak) == (6, 3, 1, 1, 2)
    assert r.median_ratio == pytest.approx((0.97 + 1.0) / 2)  # of 0.95, 0.97, 1.0, 1.4
    assert r.sentence("softmax") == (
        "3 of 4 earlier claims for softmax held in production (median measured/claimed 0.98); "
        "1 inconclusive (not enough data); 1 still verifying"
    )
    empty = track_record([])
    assert (empty.claims, empty.streak, empty.median_ratio) == (0, 0, None)
    assert empty.sentence("softmax") == "no earlier claim for softmax has been verified in production yet"
    assert track_record([_row("inconclusive", 1), _row("verifying", 2)]).sentence("softmax") == (
        "no earlier claim for softmax has been decided in production; 1 inconclusive (not enough data); "
        "1 still verifying"
    )
    assert track_record([_row("contradicted", 1, 1.3)]).sentence("rms_norm") == (
        "0 of 1 earlier claims for rms_norm held in production (median measured/claimed 1.30)"
    )
