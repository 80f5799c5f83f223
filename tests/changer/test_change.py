"""write_change: a search record becomes the files of a change, computed without touching
the repository; the generated tests run in a scratch copy of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

# fixtures (and the group row maker) from the module beside this one
from change_records import (  # noqa: F401
    ROOT,
    environment,
    git,
    group,
    make_config_record,
    make_source_record,
    passed,
    repo,
    secrets_in_env,
    wrong_source,
)

from pytest_aina.changer.change import Change, ChangeError, prbody, write_change
from pytest_aina.changer.change.pinning import append_to_list
from pytest_aina.changer.forge import scratch_checkout
from pytest_aina.runtime.dispatch import parse_table
from pytest_aina.spec.model import load_spec, parse_spec
from pytest_aina.spec.ratchet import diff_specs

NOW = "2025-01-07T10:05:00Z"


def _write(record, repo, **kw):
    return write_change(record, repo, spec_path="specs/softmax.yaml", now=NOW, **kw)


def _snapshot(repo: Path) -> dict:
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts
    }


def test_config_winner_becomes_a_table_entry_examples_tests_and_a_record(repo, git, make_config_record):
    before = _snapshot(repo)
    record = make_config_record()
    change = _write(record, repo, telemetry=repo / "telemetry/sample.jsonl")
    assert _snapshot(repo) == before and git(repo, "status", "--porcelain") == ""  # nothing written

    name = "softmax_" + record.winner
    assert change.branch == "aina/softmax-hyp-7f3a9c21d4e5b6a7"
    assert set(change.files) == {
        "kernels/variants/softmax.yaml",
        "specs/softmax.yaml",
        f"tests/evolved/test_{name}.py",
        f"provenance/softmax/{name}.intoto.json",
    }
    assert change.attestation == f"provenance/softmax/{name}.intoto.json"
    assert change.labels == ("aina", "kernel:softmax", "risk:low")

    # the table: the old text untouched, the entry appended and valid
    old_table = (repo / "kernels/variants/softmax.yaml").read_text()
    new_table = change.files["kernels/variants/softmax.yaml"]
    assert new_table.startswith(old_table)
    assert "# added by pytest-aina for hypothesis hyp-7f3a9c21d4e5b6a7" in new_table
    v = parse_table(new_table, "softmax.yaml", kernel="softmax").get(name)
    assert v.function == "kernels.softmax:softmax_generic"
    assert v.config == {"BLOCK_N": 8192, "ROWS_PER_PROGRAM": 1, "num_warps": 16, "num_stages": 2}
    assert v.dims == {"M": (4096, 8191), "N": (32768, 65535)} and v.dtypes == ("bfloat16",) and v.arch == ("sm_90",)
    assert v.evidence["dims"] == {"M": 8, "N": 50304} and v.evidence["dtype"] == "bfloat16"
    assert v.evidence["latency_s"] < v.evidence["baseline_latency_s"]
    assert change.attestation in v.evidence["note"] and "not GPU evidence" in v.evidence["note"]

    # the spec: the hot shapes, hottest first, appended after the last example with a comment; added only
    old_spec = (repo / "specs/softmax.yaml").read_text()
    new_spec = change.files["specs/softmax.yaml"]
    assert (
        new_spec.replace(
            "  # pinned by pytest-aina: the shapes hypothesis hyp-7f3a9c21d4e5b6a7 specialised a variant for\n"
            "  - {dims: {M: 4096, N: 50304}, dtype: bfloat16, note: hot shape in production telemetry "
            "(hypothesis hyp-7f3a9c21d4e5b6a7)}\n"
            "  - {dims: {M: 4096, N: 32768}, dtype: bfloat16, note: hot shape in production telemetry "
            "(hypothesis hyp-7f3a9c21d4e5b6a7)}\n",
            "",
        )
        == old_spec
    )
    base, head = load_spec(repo / "specs/softmax.yaml"), parse_spec(new_spec, "specs/softmax.yaml")
    diff = diff_specs({"softmax": base}, {"softmax": head})
    assert sorted((c.kind, c.path) for c in diff) == [
        ("added", "examples[M=4096,N=32768,bfloat16]"),
        ("added", "examples[M=4096,N=50304,bfloat16]"),
    ]

    # the same shape as the App would publish it, and as the gate reads it back from the branch
    published = Change.from_json(change.to_json())
    assert published.to_json() == change.to_json()
    assert Change.from_json(json.loads(json.dumps(change.to_json()))) == change
    assert Change.from_files(change.files) == change


def test_the_generated_test_passes_and_covers_the_launcher_it_binds(repo, make_config_record):
    change = _write(make_config_record(), repo)
    test = next(p for p in change.files if p.startswith("tests/evolved/"))
    text = change.files[test]
    # a reviewer's reading: where the CPU stand-ins come from, and the full size under the gpu mark
    assert (
        "pytest.param({'M': 8, 'N': 50304}, 'bfloat16', id='M=8,N=50304,bfloat16 (stand-in for "
        "M=4096,N=50304,bfloat16, hot shape)')" in text
    )
    assert (
        "pytest.param({'M': 7, 'N': 65535}, 'bfloat16', id='M=7,N=65535,bfloat16 (stand-in for "
        "M=8191,N=65535,bfloat16, domain corner, high)')" in text
    )  # 8191 = 7 mod 8: a partial last tile
    assert "@pytest.mark.gpu" in text and "({'M': 4096, 'N': 32767}, 'bfloat16', 'sm_90')" in text
    change.materialize(repo)

    # pytest in a subprocess, under coverage.py (the interpreter: no GPU here)
    figures = change.measure_coverage(repo)
    assert figures["tests_passed"], figures["output_tail"]
    assert figures["tests_summary"].startswith("10 passed, 3 skipped")  # the skips: full size, GPU only
    assert figures["target"] == "kernels/softmax.py"
    assert figures["scope"] == "softmax_generic (the launcher the variant binds)"
    assert 50 < figures["percent"] < 100  # the empty-input early return is not a case of this domain
    # BLOCK_N=8192 < N everywhere in the domain: the looped kernel runs, the fused one never
    assert figures["functions"]["_softmax_looped_kernel"]["percent"] == 100.0
    assert figures["functions"]["_softmax_fused_kernel"]["covered"] == 0

    # the same tests catch a variant that routes nowhere and one whose config is refused
    table = repo / "kernels/variants/softmax.yaml"
    table.write_text(
        table.read_text().replace("N: [32768, 65535]", "N: [32768, 40000]").replace("BLOCK_N: 8192", "BLOCK_N: 3000")
    )
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    done = subprocess.run(
        run, cwd=repo, env=dict(os.environ, TRITON_INTERPRET="1"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1
    assert "goes to generic, not softmax_" in done.stdout and "BLOCK_N=3000 is not allowed" in done.stdout


def test_the_top_hypothesis_of_the_sample_telemetry_becomes_a_change_whose_tests_pass(repo):
    """End to end from the Reasoner's own output on the committed sample: its top hypothesis
    (rms_norm, small bfloat16 batches) with a config winner, as the search would record it."""
    from pytest_aina.changer.model import Candidate, SearchRecord
    from pytest_aina.reasoner import reason_about_file

    telemetry = ROOT / "telemetry/sample-fleet-day.jsonl"
    report = reason_about_file(telemetry, specs=ROOT / "specs", variants=ROOT / "kernels/variants")
    top = next(h for h in report.hypotheses if h.kind in ("shape_shift", "hot_unspecialised"))
    hyp = top.to_json()
    kernel = hyp["kernel"]
    case = next(g for g in hyp["evidence"]["groups"])
    label = ",".join(f"{k}={v}" for k, v in case["dims"].items()) + f",{case['dtype']}"
    base = Candidate(kernel, "metaparams", config={})
    win = Candidate(kernel, "metaparams", config={"BLOCK_N": 8192, "ROWS_PER_PROGRAM": 4})
    attempts = [passed(base, {label: (2.0e-3, 4.0e-3)}, 1), passed(win, {label: (1.5e-3, 4.0e-3)}, 2)]
    record = SearchRecord(
        kernel=kernel,
        spec_path=f"specs/{kernel}.yaml",
        hypothesis=top,
        seed=0,
        budget={"evaluations": 2},
        proposers=["metaparams"],
        baseline=attempts[0],
        attempts=attempts[1:],
        winner=win.id,
        benchmark_cases=[label],
        environment=environment(),
        device="cpu",
        repeat=f"aina evolve --telemetry {telemetry.name}",
    )
    change = write_change(record, repo, spec_path=f"specs/{kernel}.yaml", telemetry=telemetry)

    p = change.statement["predicate"]
    domain = {"dims": hyp["domain"]["dims"], "dtypes": [hyp["domain"]["dtype"]], "arch": [hyp["domain"]["arch"]]}
    assert p["variant"]["domain"] == domain
    assert p["trigger"]["windows"]["count"] == hyp["evidence"]["windows"]["count"] > 0
    hot = [{"dims": g["dims"], "dtype": g["dtype"]} for g in hyp["evidence"]["groups"]]
    assert p["spec"]["examples_added"] == hot[:4]
    change.materialize(repo)
    test = p["variant"]["test"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=repo,
        env=dict(os.environ, TRITON_INTERPRET="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_source_winner_gets_its_module_and_coverage_of_it(repo, git, make_source_record, wrong_source):
    record = make_source_record()
    change = _write(record, repo)
    name = "softmax_" + record.winner
    module = f"kernels/evolved/{name}.py"
    assert change.files[module].startswith(
        f"# softmax variant {name}: written by pytest-aina's evolution loop for hypothesis short-rows-02.\n"
    )
    assert change.files[module].endswith(record.winner_attempt().candidate.source)
    assert "kernels/evolved/__init__.py" in change.files
    entry = parse_table(change.files["kernels/variants/softmax.yaml"], "softmax.yaml").get(name)
    assert entry.function == f"kernels.evolved.{name}:softmax" and entry.config == {}
    assert entry.dims == {"N": (1, 1024)} and entry.dtypes == ("float32", "float16") and entry.arch is None
    assert change.labels[-1] == "risk:medium"
    assert change.branch == "aina/softmax-short-rows-02"

    with scratch_checkout(repo, change) as checkout:
        figures = change.measure_coverage(checkout)
    assert figures["tests_passed"], figures["output_tail"]
    assert figures["scope"] == "the whole module" and figures["target"] == module
    assert figures["percent"] == 100.0 and figures["statements"] == figures["covered"] > 10
    assert figures["functions"]["_row_softmax"]["triton_jit"] is True
    measured = change.with_coverage(figures)
    assert measured.statement["predicate"]["coverage"]["percent"] == 100.0
    assert f"100.0% of the statements of the whole module in `{module}`" in measured.body
    assert measured.metadata["coverage_percent"] == 100.0 and measured.labels[-1] == "risk:medium"
    assert git(repo, "status", "--porcelain") == ""  # the scratch copy was elsewhere

    # a wrong kernel in the same place: the generated tests fail, and the change says so
    broken = replace(change, files=dict(change.files, **{module: wrong_source}))
    with scratch_checkout(repo, broken) as checkout:
        figures = broken.measure_coverage(checkout)
    assert not figures["tests_passed"] and "reference check failed" in figures["output_tail"]
    flagged = broken.with_coverage(figures)
    assert flagged.labels[-1] == "risk:high" and "the tests **failed**" in flagged.body


def test_a_source_winners_tests_run_in_the_sandbox(repo, make_source_record, monkeypatch):
    # its code passed the evaluation's sandbox, and coverage runs it again: sandboxed too
    monkeypatch.setenv("AINA_FAKE_TOKEN", "ghs_" + "c" * 36)
    record = make_source_record()
    change = _write(record, repo)
    module = f"kernels/evolved/softmax_{record.winner}.py"
    sneaky = change.files[module] + (
        "\nimport os\n"
        "_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))\n"
        "if any('ghs_' in v for v in os.environ.values()):\n"
        "    raise RuntimeError('saw a token')\n"
        "open(os.path.join(_root, 'PWNED'), 'w').write('x')\n"
    )
    hostile = replace(change, files=dict(change.files, **{module: sneaky}))
    with scratch_checkout(repo, hostile) as checkout:
        figures = hostile.measure_coverage(checkout)
        assert not (checkout / "PWNED").exists()
    assert figures["sandboxed"] is True and not figures["tests_passed"]
    assert "write outside sandbox" in figures["tests_summary"], figures["output_tail"]
    assert "saw a token" not in figures["output_tail"]


def test_hot_shapes_already_pinned_are_not_pinned_again(repo, make_config_record):
    record = make_config_record()
    record.hypothesis = replace(
        record.hypothesis, domain={"dims": {"M": [2, 3], "N": [16384, 32767]}, "dtype": "float32", "arch": None}
    )
    record.hypothesis.evidence["groups"] = [{"dims": {"N": 20000, "M": 2}, "dtype": "float32", "gpu_s": 10.0}]
    change = _write(record, repo)
    assert "specs/softmax.yaml" not in change.files  # {M: 2, N: 20000, float32} is an example already
    spec = change.statement["predicate"]["spec"]
    assert spec["examples_added"] == [] and spec["already_pinned"] == [
        {"dims": {"M": 2, "N": 20000}, "dtype": "float32"}
    ]
    assert "Already pinned, left as they were: `M=2,N=20000,float32`" in change.body


def test_far_from_limit_groups_outside_the_domain_are_not_hot_shapes(repo, make_config_record):
    record = make_config_record()
    record.hypothesis = replace(record.hypothesis, kind="far_from_limit")
    record.hypothesis.evidence["groups"] += [
        group({"M": 64, "N": 1024}, 99999.0, dtype="float16"),
        group({"M": 4096, "N": 50304}, 50000.0, arch="sm_80"),
    ]
    change = _write(record, repo)
    added = change.statement["predicate"]["spec"]["examples_added"]
    assert added == [
        {"dims": {"M": 4096, "N": 50304}, "dtype": "bfloat16"},
        {"dims": {"M": 4096, "N": 32768}, "dtype": "bfloat16"},
    ]


def test_spec_edits_keep_the_text_for_flow_and_missing_lists(repo):
    assert (
        append_to_list("a: 1\nexamples: []  # none yet\nb: 2\n", "examples", ["{x: 1}"], "c", "f")
        == "a: 1\nexamples: [{x: 1}]  # none yet\nb: 2\n"
    )
    assert (
        append_to_list("examples: [{x: 0}]\n", "examples", ["{x: 1}", "{x: 2}"], "c", "f")
        == "examples: [{x: 0}, {x: 1}, {x: 2}]\n"
    )
    assert (
        append_to_list("a: 1  # keep\n", "examples", ["{x: 1}"], "why", "f")
        == "a: 1  # keep\n# why\nexamples:\n  - {x: 1}\n"
    )
    # a block list whose last item is a block mapping, followed by a comment of the next key
    text = "examples:\n  - dims: {M: 1}\n    note: a\n# benchmarks follow\nbenchmarks: []\n"
    assert append_to_list(text, "examples", ["{x: 1}"], "why", "f") == (
        "examples:\n  - dims: {M: 1}\n    note: a\n  # why\n  - {x: 1}\n# benchmarks follow\nbenchmarks: []\n"
    )


def _winner_with_defaults(r):
    """The winner replaced by the generic kernel with its heuristic defaults (config {})."""
    a = r.attempts[-1]
    c = replace(a.candidate, config={})
    r.attempts[-1] = type(a)(c, replace(a.verdict, candidate=c.id))
    r.winner = c.id


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: setattr(r, "winner", None), "no winner"),
        (lambda r: setattr(r, "winner", r.baseline.candidate.id), "no winner"),  # the baseline is not an attempt
        (_winner_with_defaults, "heuristic defaults"),
        (lambda r: setattr(r, "hypothesis", r.hypothesis.to_json()), "must be a Hypothesis"),
        (lambda r: [g["dims"].update(N=1000) for g in r.hypothesis.evidence["groups"]], "none of its evidence.groups"),
        (lambda r: r.hypothesis.evidence["groups"][0]["dims"].update(N=10**7), "outside softmax's domain"),
        (lambda r: r.hypothesis.evidence["groups"][0].update(dtype="int8"), "is not one of softmax's dtypes"),
        (
            lambda r: r.hypothesis.evidence.update(
                groups=[], hot_shapes=[{"dims": {"M": 4096, "N": 1000}, "dtype": "bfloat16"}]
            ),
            "lies outside the domain",
        ),
        (lambda r: r.hypothesis.domain["dims"].update(K=[1, 2]), "'K' is not a dim of softmax"),
    ],
)
def test_bad_records_are_refused_with_the_reason(repo, make_config_record, edit, message):
    record = make_config_record()
    edit(record)
    with pytest.raises(ChangeError, match=message):
        _write(record, repo)


def test_a_more_specific_existing_variant_would_shadow_the_new_one(repo, make_config_record):
    table = repo / "kernels/variants/softmax.yaml"
    table.write_text(
        table.read_text() + "  - name: hand_tuned\n    function: kernels.softmax:softmax_generic\n"
        "    config: {BLOCK_N: 4096}\n    domain:\n      dims: {M: [4096, 4096], N: [50304, 50304]}\n"
        "      dtypes: [bfloat16]\n      arch: [sm_90]\n"
    )
    with pytest.raises(ChangeError, match="would go to the existing variant 'hand_tuned'"):
        _write(make_config_record(), repo)


def test_body_is_rendered_from_the_attestation_and_warns_on_cpu(repo, make_config_record):
    change = _write(make_config_record(), repo)
    stmt = change.statement
    assert prbody.render(stmt) == change.body and prbody.title(stmt) == change.title
    body = change.body
    assert body.index(
        "**Measured on a CPU, in Triton's interpreter: these timings are not GPU evidence.**"
    ) < body.index("### What changes")
    row = next(line for line in body.splitlines() if line.startswith("| `M=8,N=50304,bfloat16` |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    m = stmt["predicate"]["measurements"][0]
    assert cells[1].startswith(prbody._s(m["before"]["median_s"])) and cells[2].startswith(
        prbody._s(m["after"]["median_s"])
    )
    assert (
        cells[3] == f"**{m['speedup']['value']:.2f}x** [{m['speedup']['ci95'][0]:.2f}, {m['speedup']['ci95'][1]:.2f}]"
    )
    assert cells[4] == "n/a (CPU interpreter)"
    for text in (
        "### What was tried",
        "failed at benchmarks: timeout",
        "failed at examples: wrong_answer",
        "failed at import: syntax_error",
        "passed, **winner**",
        "AINA_DISPATCH_PIN=softmax=generic",
        "git revert",
        "aina evolve --telemetry telemetry/sample.jsonl --seed 7",
        "### Reproduce",
    ):
        assert text in body
    # what was tried: each passing candidate against the baseline, on its own times
    rows = {c["id"]: c for c in stmt["predicate"]["candidates"]}
    base = next(c for c in rows.values() if c["role"] == "baseline")
    winner = next(c for c in rows.values() if c["role"] == "winner")
    tried = next(line for line in body.splitlines() if line.startswith(f"| `{winner['id']}` |"))
    cells = [c.strip() for c in tried.strip("|").split("|")]
    assert cells[3] == f"passed, **winner**, score {winner['score']:.3g} calls/s"
    assert cells[4] == f"{winner['score'] / base['score']:.3g}x"
    assert "budget 40 evaluations" in body and "score: calls/s" in body


def test_gpu_record_reports_the_share_of_the_hardware_limit(repo, make_config_record):
    from pytest_aina.devices import lookup

    change = _write(make_config_record(device="cuda"), repo)
    assert "not GPU evidence" not in change.body and "on NVIDIA H100 80GB HBM3" in change.title
    m = change.statement["predicate"]["measurements"][0]
    # the spec's bytes model, 2*M*N*elem, moved in the winner's median time, against the datasheet peak
    peak = lookup("NVIDIA H100 80GB HBM3").hbm_bytes_per_s
    want = 100 * (2 * 4096 * 50304 * 2 / m["after"]["median_s"]) / peak
    assert m["pct_of_limit"] == pytest.approx(want, abs=0.01) and m["limit"]["what"] == "HBM bandwidth"
    assert f"| {m['pct_of_limit']:.1f}% |" in change.body


def test_no_secret_reaches_any_output(repo, secrets_in_env, make_config_record):
    record = make_config_record()
    change = _write(record, repo)
    everything = json.dumps(change.to_json())
    for secret in secrets_in_env:
        assert secret not in everything
    metas = {c["id"]: c["meta"] for c in change.statement["predicate"]["candidates"]}
    llm = next(a.candidate for a in record.attempts if a.candidate.meta.get("api_key"))
    assert "api_key" not in metas[llm.id] and "authorization" not in metas[llm.id]  # dropped, not just masked
    assert metas[llm.id]["model"] == "gpt-4o-mini" and metas[llm.id]["tokens"]["total"] == 2412
    assert metas[llm.id]["prompt_tokens"] == 1900 and len(metas[llm.id]["attempts"]) == 2
    assert "[REDACTED]" in metas[llm.id]["note"]  # a known key keeps its text, with the token masked


def test_a_source_holding_a_credential_is_refused(repo, secrets_in_env, make_source_record):
    record = make_source_record()
    win = record.winner_attempt()
    leaked = replace(win.candidate, source=win.candidate.source + f"\n_TOKEN = {secrets_in_env[2]!r}\n")
    record.attempts[-1] = replace(win, candidate=leaked)
    record.winner = leaked.id
    with pytest.raises(ChangeError, match="looks like a credential"):
        _write(record, repo)
