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
