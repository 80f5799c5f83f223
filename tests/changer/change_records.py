"""Search records built by hand, as the search would leave them, and a scratch repository:
fixtures for test_change, test_attestation and test_forge, which import them by name (a
conftest here would reach every test of the folder, most of them not ours).

The records are realistic: a baseline measured in the same run, a winner, candidates that
passed slower, and failures of several reasons (a timeout, a wrong answer from an LLM
source, a syntax error), timings with samples on the interpreter's clock.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_aina.changer.model import Attempt, Candidate, SearchRecord, Verdict
from pytest_aina.reasoner import Hypothesis

ROOT = Path(__file__).resolve().parents[2]

#: Secrets planted in the environment and in a candidate's meta: no output may carry them.
FAKE_GITHUB_TOKEN = "ghp_" + "Zq7" * 12
FAKE_ENV_SECRET = "hunter2-correct-horse-battery"
FAKE_META_KEY = "sk-" + "live" * 6

GOOD_SOURCE = '''"""Softmax with one row per program and the whole row in one block (N <= 1024)."""

import torch
import triton
import triton.language as tl


@triton.jit
def _row_softmax(x_ptr, y_ptr, stride, N, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(x_ptr + row * stride + cols, mask=mask, other=-float("inf")).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=0))
    y = e / tl.sum(e, axis=0)
    tl.store(y_ptr + row * N + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def softmax(x):
    n = x.shape[-1]
    rows = x.reshape(-1, n).contiguous()
    out = torch.empty_like(rows)
    _row_softmax[(rows.shape[0],)](rows, out, rows.stride(0), n, BLOCK=triton.next_power_of_2(n))
    return out.view(x.shape)
'''

WRONG_SOURCE = GOOD_SOURCE.replace("e / tl.sum(e, axis=0)", "e / tl.max(e, axis=0)")


def samples(median: float, n: int = 15, spread: float = 0.03, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [median * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def timing(case: str, median: float, ref: float, seed: int) -> dict:
    return {
        "case": case,
        "samples_s": samples(median, seed=seed),
        "reference_samples_s": samples(ref, seed=seed + 1),
        "clock": "wall (parent-side perf_counter)",
    }


def passed(c: Candidate, cases: dict[str, tuple[float, float]], seed: int) -> Attempt:
    timings = [timing(case, m, r, seed + i) for i, (case, (m, r)) in enumerate(cases.items())]
    speed = 1.0
    for t in timings:
        speed *= sorted(t["reference_samples_s"])[7] / sorted(t["samples_s"])[7]
    speed **= 1 / len(timings)
    return Attempt(
        c,
        Verdict(
            candidate=c.id,
            passed=True,
            stages=["import", "examples", "properties", "benchmarks"],
            timings=timings,
            speedup=speed,
            score=speed,
            wall_s=4.2,
            sandbox={"network": "none", "memory_limit": "2 GiB", "landlock": True},
        ),
    )


def failed(c: Candidate, stage: str, reason: str, detail: str, stages: list[str]) -> Attempt:
    return Attempt(
        c,
        Verdict(
            candidate=c.id, passed=False, stages=stages, failed_stage=stage, reason=reason, detail=detail, wall_s=1.5
        ),
    )


def environment(device: str = "cpu") -> dict:
    env = {
        "python": "3.11.7",
        "platform": "Linux-x86_64",
        "cpu_count": 2,
        "packages": {"pytest-aina": "0.1.0", "torch": "2.13.0", "triton": "3.9.0"},
        "triton_interpret": device == "cpu",
        "git": {"commit": "0" * 40, "dirty": False},
    }
    if device == "cpu":
        env["device"] = {
            "kind": "cpu",
            "name": "x86_64",
            "note": "no GPU: kernels ran in Triton's interpreter; timings are not GPU evidence",
        }
    else:
        env["device"] = {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "capability": "sm_90"}
    return env


def group(dims: dict, gpu_s: float, *, dtype: str = "bfloat16", arch: str = "sm_90") -> dict:
    """One row of a Reasoner hypothesis's evidence.groups, as pytest_aina.reasoner writes it."""
    return {
        "variant": "generic",
        "dims": dims,
        "dtype": dtype,
        "device": "NVIDIA H100 80GB HBM3",
        "arch": arch,
        "calls": int(gpu_s / 4e-5),
        "gpu_s": gpu_s,
        "share": round(gpu_s / 90000, 5),
        "windows": 72,
        "mean_latency_s": 4e-5,
        "efficiency": 0.41,
        "bound": "bandwidth",
        "pct_of_bandwidth": 41.0,
    }


def hypothesis() -> dict:
    """A hot_unspecialised hypothesis in the Reasoner's JSON form (``aina reason --json``)."""
    return {
        "id": "hyp-7f3a9c21d4e5b6a7",
        "kind": "hot_unspecialised",
        "kernel": "softmax",
        "variant": None,
        "domain": {"dims": {"M": [4096, 8191], "N": [32768, 65535]}, "dtype": "bfloat16", "arch": "sm_90"},
        "title": "softmax M=4096..8191 N=32768..65535 bfloat16 sm_90: 41% of GPU time, no variant specialised for it",
        "expected_gain": 1843.5,
        "expected_gain_unit": "gpu_s_per_day",
        "gain_basis": "roofline on 100% of the domain's time (to 80% of the limit), a 10% prior on the rest",
        "evidence": {
            "share_of_gpu_time": 0.41,
            "gpu_s_per_day": 36870.0,
            "generic_share": 1.0,
            "observed_dims": {"M": [4096, 4096], "N": [32768, 50304]},
            "variants_in_table": ["generic"],
            "groups": [group({"M": 4096, "N": 32768}, 3100.0), group({"M": 4096, "N": 50304}, 9200.0)],
            "windows": {
                "count": 144,
                "from": "2025-06-02T00:00:00Z",
                "to": "2025-06-03T00:00:00Z",
                "refs": ["telemetry/sample.jsonl:12", "telemetry/sample.jsonl:13"],
            },
        },
    }


def config_record(device: str = "cpu") -> SearchRecord:
    """A meta-parameter search for wide bfloat16 rows that found a better BLOCK_N."""
    case = "M=8,N=50304,bfloat16" if device == "cpu" else "M=4096,N=50304,bfloat16"
    scale = 1e-3 if device == "cpu" else 1e-6
    base = Candidate("softmax", "metaparams", config={})
    win = Candidate(
        "softmax", "metaparams", config={"BLOCK_N": 8192, "ROWS_PER_PROGRAM": 1, "num_warps": 16, "num_stages": 2}
    )
    slower = Candidate(
        "softmax", "metaparams", config={"BLOCK_N": 2048, "ROWS_PER_PROGRAM": 1, "num_warps": 8, "num_stages": 2}
    )
    hang = Candidate(
        "softmax", "metaparams", config={"BLOCK_N": 16, "ROWS_PER_PROGRAM": 1, "num_warps": 1, "num_stages": 1}
    )
    # meta as pytest_aina.changer.proposers.llm records it, plus what a careless proposer might add
    llm = Candidate(
        "softmax",
        "llm:gpt-4o-mini",
        source=WRONG_SOURCE,
        function="softmax",
        meta={
            "model": "gpt-4o-mini",
            "prompt_digest": "ab" * 32,
            "template_digest": "99" * 32,
            "tokens": {"prompt": 1900, "completion": 512, "total": 2412},
            "prompt_tokens": 1900,
            "completion_tokens": 512,
            "cost_usd": 0.0031,
            "seed": 7,
            "attempts": [
                {"outcome": "malformed", "reason": "no_code_block", "prompt_tokens": 900, "completion_tokens": 200},
                {"outcome": "ok", "prompt_tokens": 1000, "completion_tokens": 312},
            ],
            "api_key": FAKE_META_KEY,
            "authorization": "Bearer " + FAKE_META_KEY,
            "note": f"answered after 1 retry (token {FAKE_GITHUB_TOKEN} seen in a log)",
        },
    )
    garbage = Candidate(
        "softmax",
        "llm:gpt-4o-mini",
        source="def softmax(x:\n    return x",
        function="softmax",
        meta={
            "model": "gpt-4o-mini",
            "prompt_digest": "cd" * 32,
            "template_digest": "99" * 32,
            "tokens": {"prompt": 1700, "completion": 280, "total": 1980},
            "cost_usd": 0.0025,
        },
    )
    attempts = [
        passed(base, {case: (120 * scale, 300 * scale)}, 1),
        passed(slower, {case: (140 * scale, 300 * scale)}, 10),
        failed(
            hang,
            "benchmarks",
            "timeout",
            "no answer within the wall-clock limit of 60 s; process group killed",
            ["import", "examples", "properties"],
        ),
        failed(
            llm,
            "examples",
            "wrong_answer",
            "reference check failed for M=4,N=1000,float32 (seed 0): max abs error 0.41 at [2, 17]",
            ["import"],
        ),
        failed(garbage, "import", "syntax_error", "line 1: '(' was never closed", []),
        passed(win, {case: (80 * scale, 300 * scale)}, 20),
    ]
    return SearchRecord(
        kernel="softmax",
        spec_path="specs/softmax.yaml",
        hypothesis=Hypothesis.from_json(hypothesis()),
        seed=7,
        budget={
            "evaluations": 40,
            "used_evaluations": 6,
            "wall_s": 600,
            "used_wall_s": 31.4,
            "tokens": 20000,
            "used_tokens": 4392,
        },
        proposers=["metaparams", "llm"],
        baseline=attempts[0],
        attempts=attempts[1:],
        winner=win.id,
        benchmark_cases=[case],
        environment=environment(device),
        device=device,
        started="2025-01-07T10:00:00Z",
        finished="2025-01-07T10:00:31Z",
        repeat="aina evolve --telemetry telemetry/sample.jsonl --seed 7 --budget-evals 40",
    )


def source_record() -> SearchRecord:
    """An LLM search for short float16/float32 rows whose winner is new kernel source."""
    cases = {"M=32,N=1000,float16": (2.1e-3, 3.0e-3), "M=20,N=256,float32": (1.4e-3, 2.2e-3)}
    base = Candidate("softmax", "metaparams", config={})
    win = Candidate(
        "softmax",
        "llm:qwen2.5-coder",
        source=GOOD_SOURCE,
        function="softmax",
        meta={"model": "qwen2.5-coder", "prompt_digest": "ef" * 32, "tokens": {"total": 3100}, "cost_usd": 0.0},
    )
    wrong = Candidate(
        "softmax",
        "llm:qwen2.5-coder",
        source=WRONG_SOURCE,
        function="softmax",
        parent=win.id,
        meta={"model": "qwen2.5-coder", "prompt_digest": "12" * 32, "tokens": {"total": 2900}},
    )
    attempts = [
        passed(base, {k: (v[0] * 1.4, v[1]) for k, v in cases.items()}, 3),
        failed(wrong, "examples", "wrong_answer", "reference check failed for M=3,N=1,float16", ["import"]),
        failed(
            Candidate(
                "softmax",
                "llm:qwen2.5-coder",
                source="import os\nos.kill(os.getpid(), 9)\n",
                function="softmax",
                meta={"model": "qwen2.5-coder"},
            ),
            "import",
            "killed_by_signal",
            "SIGKILL",
            [],
        ),
        passed(win, cases, 30),
    ]
    return SearchRecord(
        kernel="softmax",
        spec_path="specs/softmax.yaml",
        # a team's own reasoner: hot shapes listed as such, a domain over two dtypes and any arch
        hypothesis=Hypothesis.from_json(
            {
                "id": "short-rows-02",
                "kind": "hot_shape",
                "kernel": "softmax",
                "expected_gain": 96.0,
                "domain": {"dims": {"N": [1, 1024]}, "dtypes": ["float32", "float16"]},
                "evidence": {
                    "shapes": [
                        {"dims": {"M": 512, "N": 1000}, "dtype": "float16"},
                        {"dims": {"M": 20, "N": 256}, "dtype": "float32"},
                    ]
                },
            }
        ),
        seed=11,
        budget={"evaluations": 10, "used_evaluations": 3},
        proposers=["llm"],
        baseline=attempts[0],
        attempts=attempts[1:],
        winner=win.id,
        benchmark_cases=list(cases),
        environment=environment("cpu"),
        device="cpu",
        started="2025-01-07T11:00:00Z",
        finished="2025-01-07T11:02:10Z",
        repeat="aina evolve --telemetry telemetry/sample.jsonl --proposer llm --seed 11",
    )


def run_git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def git():
    return run_git


@pytest.fixture
def make_config_record():
    return config_record


@pytest.fixture
def make_source_record():
    return source_record


@pytest.fixture
def wrong_source() -> str:
    return WRONG_SOURCE


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of this project's kernels, specs and pyproject.toml."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(ROOT / "kernels", root / "kernels", ignore=shutil.ignore_patterns("__pycache__", "evolved"))
    shutil.copytree(ROOT / "specs", root / "specs")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / ".gitignore").write_text("__pycache__/\n.aina/\n")
    (root / "telemetry").mkdir()
    (root / "telemetry" / "sample.jsonl").write_text('{"aina_telemetry": 1, "kernel": "softmax"}\n' * 20)
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", "-A")
    run_git(root, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "base")
    return root


@pytest.fixture
def secrets_in_env(monkeypatch):
    """Credentials in the parent's environment, as a developer's shell would have them."""
    monkeypatch.setenv("GITHUB_TOKEN", FAKE_GITHUB_TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_META_KEY)
    monkeypatch.setenv("AINA_WEBHOOK_SECRET", FAKE_ENV_SECRET)
    return [FAKE_GITHUB_TOKEN, FAKE_META_KEY, FAKE_ENV_SECRET]
