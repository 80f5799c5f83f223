"""The gate's verdicts on real git repositories built here, one per case of issue 11's proof
list. Each case fails (or passes) for its own reason, and the test names it: the check
that decides, and that no other check failed.

The kernels are stand-ins (plain torch, tests/gate/gate_repos.py): ~10 ms a call on a CPU,
long enough that the sandbox's per-call round trip does not drown a 30% difference on a
busy machine. Cases whose verdict needs the performance measurement are marked slow; the
others stop at the first failure (``--fail-fast``) or have no kernel code to measure.
"""

import json
import time

import pytest
from gate_repos import COMMON, bot_change, checks, config_variant_files, failing, gate, make_repo, spec


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo")


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _only_failure(verdict: dict, name: str) -> dict:
    assert failing(verdict) == {name}, json.dumps(verdict.get("checks"), indent=1)[:4000]
    return checks(verdict)[name]


def test_docs_only_change_passes_without_a_benchmark_in_under_10_s(repo, tmp_path):
    repo.branch("docs")
    repo.commit("docs: more words", {"docs/guide.md": "# Guide\n\nMore words.\n", "README.md": "# stand-ins\n"})
    start = time.monotonic()
    done, verdict = gate(repo, head="docs")
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stdout + done.stderr
    assert verdict["verdict"] == "pass" and elapsed < 10, elapsed
    c = checks(verdict)
    assert c["scope"]["summary"].startswith("docs only")
    assert c["performance"]["status"] == "skipped" and verdict["evidence"] == []
    assert c["correctness"]["status"] == "skipped"


def test_loosened_tolerance_fails_annotated_at_the_spec_line(repo):
    repo.branch("loose")
    text = spec("scale", atol="1.0e-4")
    repo.commit("loosen", {"specs/scale.yaml": text})
    done, verdict = gate(repo, "--fail-fast", head="loose")
    assert done.returncode == 1
    ratchet = _only_failure(verdict, "ratchet")
    assert "1 boundary weakening(s) without an approval" in ratchet["summary"]
    line = _line(text, "float32: {atol")
    assert f"::error file=specs/scale.yaml,line={line},title=aina gate%3A boundary weakened::" in done.stdout
    assert "float32 atol loosened (1e-06 -> 0.0001)" in done.stdout


def test_dropped_invariant_fails_annotated_where_it_was(repo):
    repo.branch("drop")
    before = repo.read("specs/scale.yaml")
    repo.commit("drop finite", {"specs/scale.yaml": before.replace("  - finite\n", "")})
    done, verdict = gate(repo, "--fail-fast", head="drop")
    assert done.returncode == 1
    _only_failure(verdict, "ratchet")
    line = _line(before, "- finite")  # gone from the head: annotated at the base's line
    assert f"::error file=specs/scale.yaml,line={line},title=aina gate%3A boundary weakened::" in done.stdout
    assert "invariant finite dropped" in done.stdout


def test_deleted_pinned_example_fails_annotated(repo):
    repo.branch("unpin")
    before = repo.read("specs/scale.yaml")
    repo.commit("unpin", {"specs/scale.yaml": before.replace("  - {dims: {M: 16, N: 33}}\n", "")})
    done, verdict = gate(repo, "--fail-fast", head="unpin")
    assert done.returncode == 1
    ratchet = _only_failure(verdict, "ratchet")
    assert any("pinned example deleted" in d for d in ratchet["details"])
    assert f"file=specs/scale.yaml,line={_line(before, 'M: 16, N: 33')}" in done.stdout


def _digest(verdict: dict) -> str:
    (row,) = [r for r in checks(verdict)["ratchet"]["data"]["changes"] if "digest" in r]
    return row["digest"]


@pytest.mark.slow
def test_weakening_with_a_valid_approval_passes(repo):
    repo.branch("loose")
    repo.commit("loosen", {"specs/scale.yaml": spec("scale", atol="1.0e-4")})
    _, first = gate(repo, "--fail-fast", head="loose")
    digest = _digest(first)
    done, verdict = gate(
        repo,
        head="loose",
        approvals={"approvals": [{"digest": digest[:16], "by": "alice", "permission": "write", "source": "comment"}]},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    c = checks(verdict)
    assert c["ratchet"]["status"] == "pass" and "approved by" in c["ratchet"]["summary"]
    assert c["correctness"]["status"] == "pass"  # the head's spec tests ran
    assert c["performance"]["status"] == "skipped" and "only its spec changed" in c["performance"]["summary"]


def test_approval_of_a_different_weakening_fails(repo):
    """Alice approved atol 1e-4; a later edit made it 1e-3: a new weakening, a new digest."""
    repo.branch("loose")
    repo.commit("loosen", {"specs/scale.yaml": spec("scale", atol="1.0e-4")})
    _, first = gate(repo, "--fail-fast", head="loose")
    approved = {"approvals": [{"digest": _digest(first), "by": "alice", "permission": "admin", "source": "label"}]}
    repo.commit("loosen more", {"specs/scale.yaml": spec("scale", atol="1.0e-3")})
    done, verdict = gate(repo, "--fail-fast", head="loose", approvals=approved)
    assert done.returncode == 1
    ratchet = _only_failure(verdict, "ratchet")
    assert "1 approval(s) name other weakenings" in ratchet["summary"]
    assert any("names no weakening of this change" in d for d in ratchet["details"])
    assert _digest(verdict) != _digest(first)


def test_tampered_attestation_fails(repo):
    repo.branch("aina/scale-h1234")
    files = bot_change(repo, config_variant_files(repo, {"waste": 0}))
    # the table is edited after the attestation was made
    files["kernels/variants/scale.yaml"] = files["kernels/variants/scale.yaml"].replace('{"waste": 0}', '{"waste": 1}')
    repo.commit("aina: scale variant", files)
    done, verdict = gate(repo, "--fail-fast", head="aina/scale-h1234")
    assert done.returncode == 1
    prov = _only_failure(verdict, "provenance")
    assert "kernels/variants/scale.yaml: sha256" in prov["summary"] and "but the attestation says" in prov["summary"]


def test_a_file_the_attestation_does_not_declare_fails(repo):
    repo.branch("aina/scale-h1234")
    files = config_variant_files(repo, {"waste": 0})
    sneaky = dict(files, **{"kernels/common.py": COMMON.replace("return y + 1.0", "return y + 1.0  # tweak")})
    repo.commit("aina: scale variant", bot_change(repo, sneaky, declare=files))
    done, verdict = gate(repo, "--fail-fast", head="aina/scale-h1234")
    assert done.returncode == 1
    prov = _only_failure(verdict, "provenance")
    assert "kernels/common.py: changed by the change but not declared in the attestation" in prov["summary"]


def test_a_bot_change_outside_its_paths_fails(repo):
    repo.branch("aina/scale-h1234")
    files = dict(config_variant_files(repo, {"waste": 0}), **{".github/workflows/deploy.yml": "on: push\njobs: {}\n"})
    repo.commit("aina: scale variant", bot_change(repo, files))
    done, verdict = gate(repo, "--fail-fast", head="aina/scale-h1234")
    assert done.returncode == 1
    pol = _only_failure(verdict, "policy")
    assert pol["data"]["refused_paths"] == [".github/workflows/deploy.yml"]
    assert "::error file=.github/workflows/deploy.yml,title=aina gate%3A policy::the bot may not change" in done.stdout


@pytest.mark.slow
def test_new_kernel_lines_that_no_test_runs_fail(repo):
    repo.branch("fastpath")
    scale = repo.read("kernels/scale.py").replace(
        "def scale_generic(x, *, waste=200):\n    return work(x, waste) * 2.0\n",
        "def scale_generic(x, *, waste=200, fast=False):\n    if fast:\n        y = torch.tanh(x)\n"
        "        return y + y\n    return work(x, waste) * 2.0\n",
    )
    assert "fast=False" in scale
    repo.commit("a fast path nobody calls", {"kernels/scale.py": scale})
    done, verdict = gate(repo, "--fail-fast", head="fastpath")
    assert done.returncode == 1
    cov = _only_failure(verdict, "coverage")
    assert cov["data"]["files"]["kernels/scale.py"]["missing"] == [
        _line(scale, "y = torch.tanh(x)"),
        _line(scale, "return y + y"),
    ]
    assert f"::error file=kernels/scale.py,line={_line(scale, 'y = torch.tanh(x)')}," in done.stdout
    assert checks(verdict)["correctness"]["status"] == "pass"


@pytest.mark.slow
def test_gpu_claim_on_a_cpu_runner_needs_evidence(repo):
    repo.branch("aina/scale-h1234")
    variant = {
        "name": "scale_c1",
        "kind": "config",
        "config": {"waste": 0},
        "domain": {"dims": {"M": [64, 64]}, "dtypes": ["float32"], "arch": ["sm_90"]},
    }
    files = bot_change(
        repo,
        config_variant_files(repo, {"waste": 0}),
        variant=variant,
        device={"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "gpu_evidence": True},
        measurements=[{"case": "M=4096,N=4096,float32", "speedup": {"value": 1.8, "ci95": [1.7, 1.9]}}],
    )
    repo.commit("aina: scale variant for sm_90", files)
    done, verdict = gate(repo, "--budget-s", "0", head="aina/scale-h1234")
    assert done.returncode == 2, done.stdout + done.stderr
    assert failing(verdict) == set()
    claims = checks(verdict)["claims"]
    assert claims["status"] == "needs-evidence"
    assert "claimed on a GPU (NVIDIA H100 80GB HBM3); this runner is cpu" in claims["summary"]


@pytest.mark.slow
def test_clean_config_variant_improvement_passes(repo):
    repo.branch("aina/scale-h1234")
    files = bot_change(
        repo,
        config_variant_files(repo, {"waste": 0}),
        measurements=[{"case": "M=64,N=1024,float32", "speedup": {"value": 3.0, "ci95": [2.5, 3.5]}}],
    )
    repo.commit("aina: scale variant", files)
    done, verdict = gate(repo, head="aina/scale-h1234")
    assert done.returncode == 0, done.stdout + done.stderr
    c = checks(verdict)
    assert [c[n]["status"] for n in ("ratchet", "provenance", "policy", "correctness", "performance", "claims")] == [
        "pass"
    ] * 6
    (row,) = verdict["evidence"]
    assert row["kernel"] == "scale" and row["comparison"]["outcome"] == "improvement"
    assert row["claim"]["reproduced"] is True
    assert verdict["statement"]["predicate"]["verificationResult"] == "PASSED"
    assert verdict["statement"]["predicate"]["inputAttestations"][0]["uri"] == "provenance/scale/scale_c1.intoto.json"


@pytest.mark.slow
def test_claimed_2x_that_measures_1x_fails(repo):
    repo.branch("aina/scale-h1234")
    files = bot_change(
        repo,
        config_variant_files(repo, {"waste": 200}),
        measurements=[{"case": "M=64,N=1024,float32", "speedup": {"value": 2.0, "ci95": [1.9, 2.1]}}],
    )
    repo.commit("aina: scale variant", files)
    done, verdict = gate(repo, head="aina/scale-h1234")
    assert done.returncode == 1, done.stdout + done.stderr
    claims = _only_failure(verdict, "claims")
    assert "claimed 2.00x [1.90, 2.10], measured" in claims["summary"] and "not reproduced" in claims["summary"]
    assert verdict["evidence"][0]["claim"]["reproduced"] is False


@pytest.mark.slow
def test_shared_helper_made_slower_fails_for_the_kernel_nobody_named(repo):
    """`bias` is used by shift only; the change touches kernels/common.py and names no kernel."""
    repo.branch("helper")
    slower = COMMON.replace("def bias(y):\n", "def bias(y):\n    for _ in range(60):\n        torch.tanh(y)\n")
    repo.commit("tidy the helpers", {"kernels/common.py": slower})
    done, verdict = gate(repo, head="helper")
    assert done.returncode == 1, done.stdout + done.stderr
    perf = _only_failure(verdict, "performance")
    rows = {r["kernel"]: r for r in verdict["evidence"]}
    assert rows["shift"]["comparison"]["outcome"] == "regression"
    assert rows["shift"]["comparison"]["ratio"] > 1.15
    assert rows["scale"]["comparison"]["outcome"] != "regression"
    assert "shift" in verdict["scope"]["affected"] and "kernels/common.py" in verdict["scope"]["affected"]["shift"]
    assert "slower beyond noise" in perf["summary"]
    assert "::error file=specs/shift.yaml,line=" in done.stdout
