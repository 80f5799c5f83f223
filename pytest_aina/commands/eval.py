"""``aina eval SPEC CANDIDATE.py``: one candidate through the evolution loop's sandbox and cascade."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate one candidate kernel file the way the evolution loop does",
        description="Run CANDIDATE.py (a module defining the function the spec's implementation "
        "names) through the sandbox and the evaluation cascade: import, pinned "
        "examples, properties and invariants, benchmarks against the spec's reference "
        "and against the implementation it would replace (the spec's implementation, "
        "as the repository serves it today), side by side. Each step is announced on "
        "stderr as it starts. Exit 0 when it passes every stage, 1 when it fails.",
    )
    p.add_argument("spec", metavar="SPEC", help="the spec file, e.g. specs/softmax.yaml")
    p.add_argument("candidate", metavar="CANDIDATE.py", help="the candidate module")
    p.add_argument("--repo", default=".", metavar="DIR", help="the repository the kernels import from (default: .)")
    p.add_argument(
        "--profile", default="ci", choices=("ci", "dev", "thorough"), help="property-test profile (default: ci)"
    )
    p.add_argument("--calls", type=int, default=7, help="timed calls per benchmark case (default: 7)")
    p.add_argument("--seed", type=int, default=0, help="seed of the timing inputs (default: 0)")
    p.add_argument(
        "--timeout", type=float, default=240, metavar="S", help="wall-clock limit of the checks (default: 240)"
    )
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(run=run)


def bench_cases(spec, device: str) -> list[dict]:
    """The spec's benchmark cases for this device; on a CPU, a small one if the spec has none."""
    from pytest_aina.changer.pipeline import bench_cases_for

    cases = [{"dims": b.dim_map, "dtype": b.dtype, "label": b.label()} for b in spec.benchmarks if device in b.devices]
    if cases:
        return cases
    return bench_cases_for(spec, device, dims={k: d.max for k, d in spec.dims.items()}, dtype=spec.dtypes[0])[0]


def run(args: argparse.Namespace) -> int:
    # the loop's modules load here, not when `aina --help` lists the commands
    from pytest_aina.changer.evaluate import Setup, evaluate, workdir_for
    from pytest_aina.changer.model import Candidate
    from pytest_aina.checking.device import device as _device
    from pytest_aina.spec.model import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(f"aina eval: invalid spec:\n{exc}", file=sys.stderr)
        return 2
    path = Path(args.candidate)
    try:
        source = path.read_text()
    except OSError as exc:
        print(f"aina eval: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    repo = Path(args.repo).resolve()
    device = _device()
    function = spec.implementation.rsplit(":", 1)[1].split(".")[-1]
    cand = Candidate(kernel=spec.name, proposer="file", source=source, function=function, meta={"file": str(path)})
    setup = Setup(
        spec_path=Path(args.spec).resolve(),
        repo=repo,
        function=function,
        generic=spec.implementation,
        bench_cases=bench_cases(spec, device),
        workdir=workdir_for(repo, f"eval-{cand.id}"),
        device=device,
        profile=args.profile,
        calls=args.calls,
        seed=args.seed,
        check_wall_s=args.timeout,
        spec=spec,
        current=spec.implementation,
    )
    start = time.monotonic()

    def progress(line: str) -> None:
        # stderr, so that --json keeps stdout to the verdict
        print(f"[{time.monotonic() - start:6.1f}s] {line}", file=sys.stderr, flush=True)

    v = evaluate(cand, setup, progress=progress)
    if args.json:
        print(json.dumps(v.to_json() | {"device": device}, indent=2, default=str))
    else:
        _print(v, spec, path, device)
    return 0 if v.passed else 1


def _print(v, spec, path: Path, device: str) -> None:
    from pytest_aina.changer.evaluate import geomean
    from pytest_aina.changer.model import STAGES

    print(f"{path} against {spec.name} ({device}{', Triton interpreter' if device == 'cpu' else ''})")
    for stage in STAGES:
        mark = "passed" if stage in v.stages else ("FAILED" if stage == v.failed_stage else "not run")
        print(f"  {stage:<11} {mark}")
    if not v.passed:
        print(f"verdict: FAILED at {v.failed_stage}: {v.reason}")
        if v.detail:
            print("  " + v.detail.strip().replace("\n", "\n  ")[:3000])
        return
    current = [t for t in v.timings if t.get("current_median_s")]
    for t in v.timings:
        beside = f"reference {t['reference_median_s'] * 1e3:.3f} ms ({t['speedup']:.3f}x)"
        if t.get("current_median_s"):
            ratio = t["current_median_s"] / t["median_s"]
            beside = f"current {t['current_median_s'] * 1e3:.3f} ms ({ratio:.3f}x), " + beside
        elif t.get("current_error"):
            beside = f"current: not timed ({t['current_error']}), " + beside
        print(f"  {t['case']}: candidate {t['median_s'] * 1e3:.3f} ms, {beside} (median of {len(t['samples_s'])})")
    against = f"{v.speedup:.3f}x over the spec's reference"
    if current and len(current) == len(v.timings):
        against = (
            f"{geomean([t['current_median_s'] / t['median_s'] for t in current]):.3f}x over the current {spec.implementation}, "
            + against
        )
    if device == "cpu":
        cpu = all("CPU time" in (t.get("clock") or "") for t in v.timings)
        against += f" (interpreter {'CPU time' if cpu else 'wall clock'}: not GPU evidence)"
    print(f"verdict: PASSED, speedup {against}")
