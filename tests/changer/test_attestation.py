"""The in-toto statement: digests of every file, the whole search in the predicate, honest
intervals, and nothing secret."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random

import pytest
from change_records import make_config_record, repo  # noqa: F401  (fixtures, from beside this module)

from pytest_aina.changer.change import attestation as att
from pytest_aina.changer.change import verify, write_change


def _change(record, repo, **kw):
    return write_change(record, repo, spec_path="specs/softmax.yaml", now="2025-01-07T10:05:00Z", **kw)


# ---------------------------------------------------------------------------------------
# Intervals


def _exact_level(n: int, j: int) -> float:
    """P(x_(j) <= true median <= x_(n+1-j)), by enumerating every sign pattern (small n)."""
    hits = sum(1 for signs in itertools.product((0, 1), repeat=n) if j <= sum(signs) <= n - j)
    return hits / 2**n


@pytest.mark.parametrize("n", [6, 9, 10, 15])
def test_median_interval_has_the_level_it_claims(n):
    xs = [float(i) for i in range(1, n + 1)]
    lo, hi, level = att.median_ci(xs, 0.95)
    j = int(lo)  # with samples 1..n, the value is the rank
    assert hi == n + 1 - j and level == pytest.approx(_exact_level(n, j))
    assert level >= 0.95 and _exact_level(n, j + 1) < 0.95  # the narrowest interval that reaches 95%


def test_median_interval_with_too_few_samples_says_its_lower_level():
    lo, hi, level = att.median_ci([3.0, 1.0, 2.0, 5.0, 4.0], 0.95)
    assert (lo, hi) == (1.0, 5.0) and level == pytest.approx(1 - 2 / 2**5)
    s = att.summarize([3.0, 1.0, 2.0, 5.0, 4.0])
    assert s["median_s"] == 3.0 and s["ci_level"] < 0.95
    with pytest.raises(ValueError, match="no samples"):
        att.median_ci([])


def test_median_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = random.Random(5)
    true_median = math.log(2)  # of an exponential distribution with rate 1
    trials = 2000
    covered = sum(
        1
        for _ in range(trials)
        if (lambda ci: ci[0] <= true_median <= ci[1])(att.median_ci([rng.expovariate(1) for _ in range(15)]))
    )
    level = att.median_ci([float(i) for i in range(15)])[2]
    assert abs(covered / trials - level) < 0.02  # 0.02 is > 3 standard errors of 2000 trials


def test_speedup_interval_brackets_the_ratio_of_medians():
    before = [10.0 + i * 0.1 for i in range(15)]
    after = [5.0 + i * 0.05 for i in range(15)]
    r = att.ratio_ci(before, after)
    assert r["value"] == pytest.approx(att.median(before) / att.median(after))
    assert r["ci95"][0] < r["value"] < r["ci95"][1] and r["ci_level"] >= 0.95
    assert att.ratio_ci([], after) is None


# ---------------------------------------------------------------------------------------
# The statement


def test_subjects_are_every_file_with_its_sha256(repo, make_config_record):
    change = _change(make_config_record(), repo, telemetry=repo / "telemetry/sample.jsonl")
    stmt = change.statement
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://pytest-aina.dev/evolution/v1"
    named = {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]}
    assert set(named) == set(change.files) - {change.attestation}  # a record cannot hold its own digest
    for path, digest in named.items():
        assert digest == hashlib.sha256(change.files[path].encode()).hexdigest()
    assert verify(change.files, attestation=change.attestation) == []
    tampered = dict(
        change.files,
        **{
            "kernels/variants/softmax.yaml": change.files["kernels/variants/softmax.yaml"].replace(
                "BLOCK_N: 8192", "BLOCK_N: 4096"
            )
        },
    )
    assert verify(tampered, attestation=change.attestation) == [
        f"kernels/variants/softmax.yaml: sha256 "
        f"{hashlib.sha256(tampered['kernels/variants/softmax.yaml'].encode()).hexdigest()[:12]}"
        f" but the attestation says {named['kernels/variants/softmax.yaml'][:12]}"
    ]


def test_predicate_holds_the_whole_search(repo, make_config_record):
    record = make_config_record()
    telemetry = repo / "telemetry/sample.jsonl"
    p = _change(record, repo, telemetry=telemetry).statement["predicate"]
    assert p["trigger"]["telemetry"] == {
        "path": "telemetry/sample.jsonl",
        "bytes": telemetry.stat().st_size,
        "sha256": hashlib.sha256(telemetry.read_bytes()).hexdigest(),
    }
    assert p["trigger"]["windows"] == {
        "count": 144,
        "refs": ["telemetry/sample.jsonl:12", "telemetry/sample.jsonl:13"],
        "start": "2025-06-02T00:00:00Z",
        "end": "2025-06-03T00:00:00Z",
    }
    assert p["hypothesis"]["id"] == "hyp-7f3a9c21d4e5b6a7" and p["hypothesis"]["expected_gain"] == 1843.5

    # every candidate, in order, with its score or its failure and reason
    rows = {c["id"]: c for c in p["candidates"]}
    assert [c["id"] for c in p["candidates"]] == [record.baseline.candidate.id] + [
        a.candidate.id for a in record.attempts
    ]
    for a in record.attempts:
        row = rows[a.candidate.id]
        assert row["outcome"] == ("passed" if a.verdict.passed else "failed")
        assert row.get("reason") == a.verdict.reason and row.get("failed_stage") == a.verdict.failed_stage
        assert row["score"] == a.verdict.score
    assert rows[record.winner]["role"] == "winner" and rows[record.baseline.candidate.id]["role"] == "baseline"
    llm = next(a.candidate for a in record.attempts if a.candidate.source and a.verdict.reason == "wrong_answer")
    assert rows[llm.id]["source_sha256"] == hashlib.sha256(llm.source.encode()).hexdigest()
    assert "source" not in rows[llm.id]  # the code of a loser is not part of the change
    timing = rows[record.winner]["timings"][0]
    assert timing["candidate"]["n"] == 15 and len(timing["candidate"]["ci95_s"]) == 2

    assert p["search"]["seed"] == 7 and p["search"]["budget"]["evaluations"] == 40
    assert p["search"]["failures_by_reason"] == {"syntax_error": 1, "timeout": 1, "wrong_answer": 1}
    assert p["search"]["repeat"].startswith("aina evolve --telemetry")
    assert p["llm"]["models"] == [
        {
            "model": "gpt-4o-mini",
            "candidates": 2,
            "no_candidate": 0,
            "requests": 2,  # the second candidate's meta records no calls
            "answers": 2,
            "prompt_sha256": ["ab" * 32, "cd" * 32],
            "template_sha256": ["99" * 32],
            "tokens": 2412 + 1980,
            "cost_usd": pytest.approx(0.0056),
        }
    ]
    assert p["llm"]["tokens"] == 2412 + 1980
    assert p["environment"]["packages"]["triton"] == "3.9.0"
    assert p["base"] == {"commit": "0" * 40, "dirty": False}
    assert p["device"]["kind"] == "cpu" and p["device"]["gpu_evidence"] is False
    assert p["reproduce"]["tests"] == f"python -m pytest {p['variant']['test']}"
    assert p["rollback"]["pin"] == "AINA_DISPATCH_PIN=softmax=generic"
    assert p["coverage"]["status"].startswith("not measured yet")


def test_meta_keys_that_look_like_credentials_are_dropped():
    kept = att.sanitize_meta(
        {
            "model": "m",
            "prompt_tokens": 10,
            "total_tokens": 12,
            "cost_usd": 0.1,
            "api_key": "x",
            "Authorization": "Bearer y",
            "session_cookie": "z",
            "temperature": 0.2,
            "route": "fast",
        }
    )
    # known keys stay even when their name contains TOKEN; unknown ones only with a harmless name
    assert kept == {
        "model": "m",
        "prompt_tokens": 10,
        "total_tokens": 12,
        "cost_usd": 0.1,
        "temperature": 0.2,
        "route": "fast",
    }


def test_the_record_is_stable_json(repo, make_config_record):
    a = _change(make_config_record(), repo)
    b = _change(make_config_record(), repo)
    assert a.files == b.files and a.body == b.body  # same record, same time: byte-identical
    text = a.files[a.attestation]
    assert text.endswith("}\n") and json.loads(text) == a.statement


def test_llm_answers_that_gave_no_candidate_are_counted_and_shown(repo, make_config_record):
    from pytest_aina.changer.change import prbody

    record = make_config_record()
    record.environment["proposer_failures"] = [
        {
            "proposer": "llm:gpt-4o-mini",
            "model": "gpt-4o-mini",
            "round": 1,
            "slot": 0,
            "reason": "malformed_answer",
            "detail": "no code block",
            "prompt_digest": "ee" * 32,
            "template_digest": "99" * 32,
            "tokens": {"total": 700},
            "cost_usd": 0.001,
        },
        {
            "proposer": "llm:gpt-4o-mini",
            "model": "gpt-4o-mini",
            "round": 2,
            "slot": 0,
            "reason": "provider_error",
            "detail": "HTTP 500",
            "prompt_digest": "ff" * 32,
            "tokens": {"total": 0},
            "cost_usd": 0.0,
        },
    ]
    stmt = _change(record, repo).statement
    [m] = stmt["predicate"]["llm"]["models"]
    assert m["candidates"] == 2 and m["no_candidate"] == 2
    assert m["no_candidate_reasons"] == {"malformed_answer": 1, "provider_error": 1}
    assert m["tokens"] == 2412 + 1980 + 700 and m["cost_usd"] == pytest.approx(0.0066)
    assert "ee" * 32 in m["prompt_sha256"]
    body = prbody.render(stmt)
    # two proposals gave no candidate; one of them got no answer at all (a provider error)
    assert (
        "2 candidate(s), 2 proposal(s) that gave none (malformed_answer x1, provider_error x1), "
        f"{2412 + 1980 + 700} tokens"
    ) in body


# ---------------------------------------------------------------------------------------
# The provenance check (aina evolve, the App's check run, the merge gate)


def _verified_change(repo, make_config_record):
    return _change(make_config_record(), repo, telemetry=repo / "telemetry/sample.jsonl")


def test_a_complete_change_verifies_against_its_base(repo, make_config_record):
    change = _verified_change(repo, make_config_record)
    base = change.statement["predicate"]["base"]["commit"]
    assert verify(change.files, attestation=change.attestation, base=base) == []
    # as the gate reads a PR: the statement given apart from the files changed, contents as bytes
    changed = {p: t.encode() for p, t in change.files.items() if p != change.attestation}
    assert verify(changed, attestation=change.attestation, base=base, statement=change.files[change.attestation]) == []


def test_an_undeclared_file_changed_is_a_problem(repo, make_config_record):
    change = _verified_change(repo, make_config_record)
    sneaky = dict(change.files, **{"kernels/softmax.py": "import os\n", "kernels/rowwise.py": None})
    assert verify(sneaky, attestation=change.attestation) == [
        "kernels/rowwise.py: deleted by the change but not declared in the attestation",
        "kernels/softmax.py: changed by the change but not declared in the attestation",
    ]
    missing = {p: t for p, t in change.files.items() if not p.startswith("tests/")}
    [problem] = verify(missing, attestation=change.attestation)
    assert problem.endswith(": named in the attestation but not in the change") and problem.startswith("tests/evolved/")


def test_a_tampered_attestation_is_a_problem(repo, make_config_record):
    change = _verified_change(repo, make_config_record)
    stmt = change.statement
    stmt["subject"][0]["digest"]["sha256"] = "0" * 64  # the record rewritten to match nothing
    name = stmt["subject"][0]["name"]
    [problem] = verify(dict(change.files, **{change.attestation: att.dumps(stmt)}), attestation=change.attestation)
    assert problem.startswith(f"{name}: sha256 ") and problem.endswith("but the attestation says 000000000000")
    assert verify(dict(change.files, **{change.attestation: "{not json"}), attestation=change.attestation)[
        0
    ].startswith(f"{change.attestation}: the attestation is not JSON")
    assert verify(
        {p: t for p, t in change.files.items() if p != change.attestation}, attestation=change.attestation
    ) == [f"{change.attestation}: the attestation is missing"]


def test_every_missing_part_of_the_provenance_is_named(repo, make_config_record):
    change = _change(make_config_record(), repo)  # no telemetry file given
    stmt = change.statement
    del stmt["predicate"]["hypothesis"]
    stmt["predicate"]["base"]["commit"] = None
    problems = verify(dict(change.files, **{change.attestation: att.dumps(stmt)}), attestation=change.attestation)
    assert len(problems) == 3, problems
    assert "names no readable hypothesis" in problems[0]
    assert "no sha256 of the telemetry that triggered the change" in problems[1]
    assert "does not name the commit the change was made on" in problems[2]


def test_a_change_made_on_another_base_is_a_problem(repo, make_config_record):
    change = _verified_change(repo, make_config_record)
    assert verify(change.files, attestation=change.attestation, base="1" * 40) == [
        f"the change was made on {'0' * 12} but sits on {'1' * 12}: its measurements are of another base "
        "(make the change again on this one)"
    ]


def test_deleted_files_are_declared_in_the_statement():
    files = {"kernels/old.py": None, "kernels/new.py": "x = 1\n"}
    predicate = {
        "hypothesis": {"id": "h", "kind": "retire", "kernel": "softmax"},
        "trigger": {"telemetry": {"sha256": "a" * 64}},
        "base": {"commit": "b" * 40},
    }
    stmt = att.statement(files=files, attestation_path="provenance/x.json", predicate=predicate)
    assert stmt["predicate"]["deleted"] == ["kernels/old.py"]
    assert [s["name"] for s in stmt["subject"]] == ["kernels/new.py"]
    written = dict(files, **{"provenance/x.json": att.dumps(stmt)})
    assert verify(written, attestation="provenance/x.json", base="b" * 40) == []
    assert verify(dict(written, **{"kernels/old.py": "back\n"}), attestation="provenance/x.json") == [
        "kernels/old.py: changed by the change but declared deleted in the attestation"
    ]
