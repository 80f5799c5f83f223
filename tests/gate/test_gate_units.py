"""The gate's parts on their own: policy, approvals, statistics, scope, outputs."""

import json
import math
import random

import pytest

from pytest_aina.gate import approvals, stats, vsa
from pytest_aina.gate.claims import parse_label
from pytest_aina.gate.measure import pattern
from pytest_aina.gate.policy import GatePolicy, Policy, PolicyError, parse_policy
from pytest_aina.gate.report import chart, markdown
from pytest_aina.gate.scope import _imports, is_doc, is_test
from pytest_aina.gate.verdict import (
    FAIL,
    NEEDS,
    PASS,
    SKIPPED,
    Annotation,
    CheckResult,
    GateConfigError,
    GateResult,
    worst,
)

# -- policy ---------------------------------------------------------------------------------


def test_policy_defaults_and_gate_keys():
    assert parse_policy(None) == Policy()
    assert Policy().gate == GatePolicy()
    p = parse_policy(
        "paths: [kernels/**]\ngate:\n  review: [high]\n  coverage: 90\n  noise: 0.1\n  pairs: 8\n"
        "  max_pairs: 40\n  budget_s: 120\n  confidence: 0.99\n"
    )
    assert p.gate == GatePolicy(
        review=("high",), coverage=90.0, noise=0.1, confidence=0.99, budget_s=120.0, pairs=8, max_pairs=40
    )
    assert p.path_allowed("kernels/a/b.py") and not p.path_allowed("setup.py")
    # the digest is the file's: any edit changes it; the defaults have one too
    assert p.digest != parse_policy("paths: [kernels/**]\n").digest and len(Policy().digest) == 64


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour: red", r"unknown key\(s\) \['colour'\]"),
        ("gate:\n  nois: 0.05\n", r"unknown key\(s\) \['gate.nois'\]"),
        ("gate: [1]", "gate must be a mapping"),
        ("gate:\n  review: [urgent]\n", "gate.review"),
        ("gate:\n  coverage: 120\n", "gate.coverage"),
        ("gate:\n  noise: 5\n", "gate.noise"),
        ("gate:\n  noise: true\n", "gate.noise"),
        ("gate:\n  pairs: 2\n", "gate.pairs"),
        ("gate:\n  pairs: 20\n  max_pairs: 10\n", "max_pairs"),
        ("gate:\n  confidence: 1.5\n", "gate.confidence"),
        ("max_open_prs: -1", "max_open_prs"),
        ("a: [", "not valid YAML"),
        ("[1, 2]", "mapping"),
    ],
)
def test_policy_errors_name_the_key(text, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, source=".github/aina.yml")


# -- approvals ------------------------------------------------------------------------------


def test_approvals_count_only_people_with_write_access(tmp_path):
    d = "a" * 64
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            {
                "approvals": [
                    {"digest": d[:16], "by": "reader", "permission": "read"},
                    {"digest": d[:16], "by": "aina-app[bot]", "permission": "write"},
                    {"digest": "sha256:" + d, "by": "alice", "permission": "Write", "source": "comment"},
                ],
                "reviews": [
                    {"by": "bob", "state": "APPROVED", "permission": "maintain"},
                    {"by": "carol", "state": "COMMENTED", "permission": "admin"},
                ],
            }
        )
    )
    dec = approvals.load(path)
    good, refused = dec.approval_of(d)
    assert good.by == "alice" and {a.by for a in refused} == {"reader", "aina-app[bot]"}
    assert dec.approval_of("b" * 64) == (None, [])
    assert dec.approving_reviewers == ["bob"]
    path.write_text(json.dumps([{"digest": d, "by": "x", "permission": "admin"}]))  # a bare list
    assert approvals.load(path).approval_of(d)[0].by == "x"


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"approvals": [{"digest": "abc", "by": "x", "permission": "write"}]}, "16 to 64 hex"),
        ({"approvals": [{"by": "x", "permission": "write"}]}, "'digest'"),
        ({"approvals": ["x"]}, "expected an object"),
        ({"aprovals": []}, r"unknown key\(s\) \['aprovals'\]"),
    ],
)
def test_malformed_approvals_are_a_configuration_error(tmp_path, doc, message):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(GateConfigError, match=message):
        approvals.load(path)
    with pytest.raises(GateConfigError, match="no such file"):
        approvals.load(tmp_path / "missing.json")


# -- statistics -----------------------------------------------------------------------------


def _ratios(rng, n, shift, sigma=0.03):
    return [shift + rng.gauss(0, sigma) for _ in range(n)]


def test_compare_decides_regression_improvement_and_noise():
    rng = random.Random(1)
    kw = dict(noise=0.05, confidence=0.95)
    slow = stats.compare(_ratios(rng, 30, math.log(1.25)), **kw)
    assert slow.outcome == stats.REGRESSION and slow.clear and slow.ci[0] > 1.05
    fast = stats.compare(_ratios(rng, 30, math.log(0.5)), **kw)
    assert fast.outcome == stats.IMPROVEMENT and fast.speedup_ci[0] > 1.8
    same = stats.compare(_ratios(rng, 30, 0.0), **kw)
    assert same.outcome == stats.NO_REGRESSION and same.clear
    # significant but below the minimum effect size: not a regression
    small = stats.compare(_ratios(rng, 200, math.log(1.02), sigma=0.01), **kw)
    assert small.ci[0] > 1.0 and small.outcome == stats.NO_REGRESSION
    # too few pairs, or too noisy: no answer, never a pass
    assert stats.compare(_ratios(rng, 4, math.log(1.5)), **kw).outcome == stats.INCONCLUSIVE
    noisy = stats.compare(_ratios(rng, 12, 0.0, sigma=0.5), **kw)
    assert noisy.outcome == stats.INCONCLUSIVE and not noisy.clear
    assert stats.compare([], **kw).outcome == stats.INCONCLUSIVE


def test_compare_is_robust_to_a_burst_of_noise():
    """A few pairs hit by another process move the median by a rank, not by their size."""
    rng = random.Random(2)
    lr = _ratios(rng, 40, 0.0) + [3.0, 2.5, 4.0]
    assert stats.compare(lr, noise=0.05, confidence=0.95).outcome == stats.NO_REGRESSION


def test_pairs_alternate_their_order():
    assert pattern(3) == "bhhbbh"
    assert stats.pair_log_ratios([1.0, 2.0], [2.0, 2.0]) == [math.log(2.0), 0.0]


# -- scope ----------------------------------------------------------------------------------


def test_imports_are_read_without_running_anything():
    src = (
        "import os, kernels.a\nfrom kernels import b as bee\nfrom . import c\nfrom .d import e\n"
        "def f():\n    import kernels.lazy\n    from ..up import g\n"
    )
    found = _imports(src, "kernels.pkg.mod", is_package=False)
    assert {
        "os",
        "kernels.a",
        "kernels",
        "kernels.b",
        "kernels.pkg",
        "kernels.pkg.c",
        "kernels.pkg.d",
        "kernels.pkg.d.e",
        "kernels.lazy",
        "kernels.up",
        "kernels.up.g",
    } <= found
    assert _imports("this is ( not python", "m", False) == set()


def test_docs_and_tests_are_told_apart():
    assert is_doc("README.md") and is_doc("docs/gate.md") and is_doc("docs/img/x.svg") and is_doc("LICENSE")
    assert not is_doc("docs/conf.py") and not is_doc("kernels/a.py")
    assert is_test("tests/test_a.py") and is_test("x/a_test.py") and not is_test("tests/helpers.py")


# -- verdict and outputs --------------------------------------------------------------------


def test_the_verdict_is_the_worst_check():
    assert worst([PASS, SKIPPED]) == PASS and worst([]) == PASS
    assert worst([PASS, NEEDS]) == NEEDS and worst([NEEDS, FAIL, PASS]) == FAIL
    with pytest.raises(ValueError):
        CheckResult("x", "maybe", "")


def test_annotations_escape_what_github_would_misread():
    a = Annotation("specs/a,b.yaml", 7, "100% wrong\nsecond line", title="t: x")
    assert a.github() == "::error file=specs/a%2Cb.yaml,line=7,title=t%3A x::100%25 wrong%0Asecond line"
    assert a.plain() == "specs/a,b.yaml:7: error: t: x: 100% wrong\nsecond line"
    assert Annotation(None, None, "m").github() == "::error title=aina gate::m"


def _result(status_checks):
    r = GateResult(
        base="b" * 40,
        head="h" * 40,
        base_ref="main",
        head_ref="HEAD",
        started="2025-01-01T00:00:00Z",
        policy={"source": ".github/aina.yml@bbbb", "sha256": "p" * 64},
        attestations=[{"path": "provenance/x.intoto.json", "sha256": "s" * 64}],
    )
    r.checks = [CheckResult(n, s, f"{n} says {s}") for n, s in status_checks]
    return r


def test_vsa_statement_follows_slsa_verification_summary():
    passed = vsa.statement(_result([("scope", PASS), ("ratchet", PASS)]), repository="https://github.com/o/r")
    assert passed["_type"] == "https://in-toto.io/Statement/v1"
    assert passed["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert passed["subject"] == [{"name": "git+https://github.com/o/r@" + "h" * 40, "digest": {"gitCommit": "h" * 40}}]
    p = passed["predicate"]
    assert p["verificationResult"] == "PASSED" and p["verifier"]["id"].startswith("https://")
    assert p["policy"] == {"uri": ".github/aina.yml@bbbb", "digest": {"sha256": "p" * 64}}
    assert p["inputAttestations"] == [{"uri": "provenance/x.intoto.json", "digest": {"sha256": "s" * 64}}]
    # needs-evidence is not a pass
    needs = vsa.statement(_result([("claims", NEEDS)]))["predicate"]
    assert needs["verificationResult"] == "FAILED" and needs["aina"]["verdict"] == NEEDS


def test_markdown_leads_with_the_verdict_and_charts_the_samples():
    r = _result([("scope", PASS), ("performance", FAIL)])
    r.evidence = [
        {
            "kernel": "scale",
            "case": "M=64,N=1024,float32",
            "device": "cpu",
            "base_s": [0.010, 0.011],
            "head_s": [0.013, 0.014],
            "status": "measured",
            "comparison": {"ratio": 1.3, "ci": [1.2, 1.4], "n": 2, "outcome": "regression"},
            "claim": {"claimed": 2.0, "reproduced": False},
        }
    ]
    md = markdown(r)
    assert md.startswith("## ❌ aina / gate: fail\n")
    assert "| performance | ❌ fail | performance says fail |" in md
    assert (
        "| scale M=64,N=1024,float32 | cpu | 10.5 ms | 13.5 ms | 1.300 [1.200, 1.400] n=2 | regression | 2.00x | **no** |"
        in md
    )
    block = chart(r.evidence[0])
    assert block[0] == "```mermaid" and block[1] == "xychart-beta" and block[-1] == "```"
    assert "    bar [10, 11]" in block and "    line [13, 14]" in block


def test_claim_labels_parse_like_the_changers():
    assert parse_label("M=64,N=1024,float32") == ({"M": 64, "N": 1024}, "float32")
    assert parse_label("M=4096, N=50304, dtype=bfloat16") == ({"M": 4096, "N": 50304}, "bfloat16")


# -- sequential sampling --------------------------------------------------------------------


def _case():
    from pytest_aina.gate.performance import Case

    return Case("k", "M=1,float32", {"M": 1}, "float32", ("cpu",))


def _run(batches, **kw):
    from pytest_aina.gate import performance

    it = iter(batches)
    return performance.measure_case(
        None,
        _case(),
        noise=0.05,
        confidence=0.95,
        pairs=12,
        max_pairs=kw.pop("max_pairs", 48),
        deadline=kw.pop("deadline", math.inf),
        device="cpu",
        batch=lambda seed: next(it),
    )


def _batch(ratio, n=12, sigma=0.02, seed=0, **kw):
    from pytest_aina.gate.measure import Batch

    rng = random.Random(seed)
    base = [0.01 * math.exp(rng.gauss(0, sigma)) for _ in range(n)]
    return Batch(base_s=base, head_s=[b * ratio * math.exp(rng.gauss(0, sigma)) for b in base], **kw)


def test_sampling_stops_as_soon_as_the_answer_is_clear():
    row = _run([_batch(1.5, seed=i) for i in range(4)])
    assert row.batches == 1 and row.comparison["outcome"] == stats.REGRESSION
    # a small effect near the threshold needs more batches, up to max_pairs
    row = _run([_batch(1.05, seed=i, sigma=0.05) for i in range(4)])
    assert row.batches == 4 and len(row.base_s) == 48


def test_a_batch_the_machine_may_have_spoiled_is_run_again_once():
    from pytest_aina.gate.measure import Batch

    spoiled = Batch(ok=False, status="deferred work", reason="deferred work: call 5 ...", side_at_fault="head")
    row = _run([spoiled, _batch(1.0, seed=1), _batch(1.0, seed=2), _batch(1.0, seed=3)])
    assert row.status == "measured" and row.retried == ["deferred work: call 5 ..."]
    row = _run([spoiled, spoiled])
    assert row.status == "failed" and row.side_at_fault == "head"
    wrong = Batch(ok=False, status="wrong answer", reason="wrong answer: call 3", side_at_fault="head")
    row = _run([wrong, _batch(1.0)])
    assert row.status == "failed" and row.retried == []  # a wrong answer is never the machine's fault


def test_the_interval_is_median_cis_whatever_the_count():
    from pytest_aina.changer.change.attestation import median_ci

    rng = random.Random(3)
    for n in (1, 2, 5, 6, 13, 24, 97):
        xs = [rng.gauss(0, 1) for _ in range(n)]
        c = stats.compare(xs, noise=0.05, confidence=0.99)
        lo, hi, level = median_ci(xs, 0.99)
        assert c.ci == (math.exp(lo), math.exp(hi)) and c.level == level


# -- reports of other jobs and the claims ---------------------------------------------------


def _row(kernel="scale", case="M=64,N=1024,float32", device="cpu", ratio=1.0, n=48, sigma=0.02, seed=0):
    from pytest_aina.gate.performance import Row

    b = _batch(ratio, n=n, sigma=sigma, seed=seed)
    return Row(kernel, case, {"M": 64, "N": 1024}, "float32", device, base_s=b.base_s, head_s=b.head_s)


def test_reports_of_other_jobs_are_judged_with_this_policy(tmp_path):
    from pytest_aina.gate import performance

    gpu = _row(device="cuda", ratio=0.5).as_dict()
    (tmp_path / "gpu.json").write_text(json.dumps({"base": "b" * 40, "head": "h" * 40, "evidence": [gpu]}))
    (tmp_path / "old.json").write_text(json.dumps({"base": "b" * 40, "head": "0" * 40, "evidence": [gpu]}))
    (tmp_path / "junk.json").write_text("{not json")
    rows, notes = performance.load_reports(tmp_path, "b" * 40, "h" * 40, noise=0.05, confidence=0.99)
    (row,) = rows
    assert row.source == "report gpu.json" and row.device == "cuda"
    assert row.comparison["outcome"] == stats.IMPROVEMENT and row.comparison["level"] >= 0.99
    assert any("old.json" in n and "ignored" in n for n in notes) and any("junk.json" in n for n in notes)
    assert performance.load_reports(tmp_path / "none", "b", "h", noise=0.05, confidence=0.99)[0] == []


def _attestation(device, measurements, arch=None):
    from pytest_aina.gate.provenance import Attestation

    domain = {"dtypes": ["float32"]} | ({"arch": arch} if arch else {})
    return Attestation(
        "provenance/scale/v.intoto.json",
        "0" * 64,
        {
            "predicate": {
                "kernel": "scale",
                "device": device,
                "measurements": measurements,
                "variant": {"kind": "config", "domain": domain},
            }
        },
    )


def _rows_for(rows):
    from pytest_aina.gate.performance import rejudge

    return [rejudge(r, noise=0.05, confidence=0.99) for r in rows]


CPU = {"kind": "cpu", "name": "cpu", "gpu_evidence": False}
GPU = {"kind": "cuda", "name": "NVIDIA H100", "gpu_evidence": True}


def _claim(value, lo, hi, case="M=64,N=1024,float32"):
    return [{"case": case, "speedup": {"value": value, "ci95": [lo, hi]}}]


def test_claims_are_reproduced_refuted_or_wait_for_evidence():
    from pytest_aina.gate import claims

    same = _rows_for([_row(ratio=1.0)])
    verdict, table = claims.check([_attestation(CPU, _claim(2.0, 1.9, 2.1))], same, noise=0.05, here="cpu")
    assert verdict.status == FAIL and "claimed 2.00x [1.90, 2.10], measured 1.01x" in verdict.summary
    assert table[("scale", "M=64,N=1024,float32", "cpu")]["reproduced"] is False
    faster = _rows_for([_row(ratio=0.5)])
    verdict, _ = claims.check([_attestation(CPU, _claim(2.0, 1.9, 2.1))], faster, noise=0.05, here="cpu")
    assert verdict.status == PASS and "reproduced" in verdict.summary
    noisy = _rows_for([_row(ratio=0.7, n=8, sigma=0.6)])
    verdict, _ = claims.check([_attestation(CPU, _claim(1.5, 1.4, 1.6))], noisy, noise=0.05, here="cpu")
    assert verdict.status == NEEDS and "too noisy" in verdict.summary


def test_gpu_claims_need_gpu_evidence():
    from pytest_aina.gate import claims

    cpu_rows = _rows_for([_row(ratio=0.5)])
    verdict, _ = claims.check([_attestation(GPU, _claim(2.0, 1.9, 2.1))], cpu_rows, noise=0.05, here="cpu")
    assert verdict.status == NEEDS and "claimed on a GPU (NVIDIA H100); this runner is cpu" in verdict.summary
    # the GPU runner's report reproduces it
    gpu_rows = _rows_for([_row(ratio=0.5, device="cuda")])
    verdict, _ = claims.check([_attestation(GPU, _claim(2.0, 1.9, 2.1))], gpu_rows, noise=0.05, here="cpu")
    assert verdict.status == PASS
    # CPU-interpreter evidence cannot back a variant for a GPU architecture, however good it is
    verdict, _ = claims.check(
        [_attestation(CPU, _claim(2.0, 1.9, 2.1), arch=["sm_90"])], cpu_rows, noise=0.05, here="cpu"
    )
    assert verdict.status == NEEDS and "a variant for sm_90 backed only by CPU-interpreter evidence" in verdict.summary
