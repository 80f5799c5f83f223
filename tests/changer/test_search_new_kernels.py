"""The meta-parameter search works on cross_entropy, matmul and attention as on the row-wise
kernels: the plan reads each kernel's TUNABLES (without importing it) and times its hot
shape, and a small search evaluates candidates in the sandbox and gives verdicts."""

import importlib.util
from pathlib import Path

import pytest

from pytest_aina.changer.pipeline import plan, search
from pytest_aina.changer.settings import Budget, EvolutionSettings
from pytest_aina.reasoner import Hypothesis

REPO = Path(__file__).resolve().parents[2]

HOT = {
    "cross_entropy": {"N": 512, "V": 32000},
    "matmul": {"M": 4096, "N": 4096, "K": 4096},
    "attention": {"B": 1, "H": 40, "S": 4096, "D": 128},
}


def hypothesis(kernel: str) -> Hypothesis:
    dims = HOT[kernel]
    return Hypothesis.from_json(
        {
            "id": f"hyp-test-{kernel}",
            "kind": "hot_unspecialised",
            "kernel": kernel,
            "domain": {"dims": {k: [v, v] for k, v in dims.items()}, "dtype": "float32"},
            "evidence": {},
        }
    )


@pytest.mark.parametrize("kernel", sorted(HOT))
def test_the_plan_searches_each_new_kernels_tunables(kernel):
    p = plan(REPO, [hypothesis(kernel)], device="cpu")
    assert p.kernel == kernel and p.function == kernel and p.generic == f"kernels.{kernel}:{kernel}_generic"
    # on a CPU the GPU-only meta-parameters are left out, the others are searched
    assert p.tunables and "num_warps" not in p.tunables and all(len(v) > 1 for v in p.tunables.values())
    [case] = p.bench_cases
    assert case["hot_dims"] == HOT[kernel] and case["dtype"] == "float32"
    # scaled down for the interpreter, keeping the primary input's row width
    primary_width = {"cross_entropy": "V", "matmul": "K", "attention": "D"}[kernel]
    assert case["dims"][primary_width] == HOT[kernel][primary_width]
    assert all(v <= 16 for k, v in case["dims"].items() if k != primary_width), case["dims"]


def _scratch_repo(dest: Path) -> Path:
    spec = importlib.util.spec_from_file_location("aina_demo", REPO / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo.make_scratch_repo(dest)


@pytest.mark.slow
def test_a_small_search_on_matmul_gives_verdicts(tmp_path):
    repo = _scratch_repo(tmp_path / "repo")
    p = plan(repo, [hypothesis("matmul")], device="cpu")
    settings = EvolutionSettings(budget=Budget(evaluations=2, wall_s=1500), workers=1, device="cpu")
    record = search(repo, p, settings, device="cpu", resume=False)
    assert len(record.attempts) == 2, record.budget
    baseline, other = record.attempts
    assert baseline.candidate.proposer == "baseline" and other.candidate.proposer == "metaparams"
    assert set(other.candidate.config) <= set(p.tunables)
    # the heuristic passes every stage and is timed; the candidate has a verdict either way
    assert baseline.verdict.passed, baseline.verdict
    assert baseline.verdict.stages[-1] == "benchmarks" and baseline.verdict.score
    assert other.verdict.passed or other.verdict.detail


def test_the_timing_protocol_calls_cross_entropy_as_pytest_aina_does():
    """The protocol passes positional arguments: the spec's args (reduction, label_smoothing,
    ignore_index, inplace_grad, in that order) are bound to the implementation's signature
    (ignore_index first), else the kernel would get reduction=-100."""
    import torch

    from pytest_aina.changer import harness
    from pytest_aina.checking import cases
    from pytest_aina.spec.model import Case, load_spec

    path = str(REPO / "specs" / "cross_entropy.yaml")
    made = harness.make_inputs(path, 3, dims={"N": 5, "V": 33}, dtype="float32")
    assert isinstance(made, list) and made[2:] == [-100, "mean", 0.0, False]
    spec = load_spec(path)
    inputs = cases.make_inputs(spec, Case(dims=(("N", 5), ("V", 33)), dtype="float32", seed=3))
    assert all(torch.equal(a, b) for a, b in zip(made[:2], inputs.tensors.values()))
    expected = cases.call(harness.resolve(spec.reference), spec, inputs)  # the plugin's way: args by name
    assert torch.equal(harness.reference(path, *made), expected)


def test_generated_tests_cover_each_alternative_of_the_call():
    from pytest_aina.changer.change.testgen import call_alternatives
    from pytest_aina.spec.model import load_spec

    ce = call_alternatives(load_spec(REPO / "specs" / "cross_entropy.yaml"), "bfloat16")
    assert [i for _, _, i in ce] == [
        "args.reduction=sum",
        "args.reduction=none",
        "args.label_smoothing=0.1",
        "args.ignore_index=3",
        "args.inplace_grad=True",
        "dtype.target=int32",
    ]
    assert ce[-1][:2] == ({}, {"target": "int32"})
    assert call_alternatives(load_spec(REPO / "specs" / "rms_norm.yaml"), "float32") == []
