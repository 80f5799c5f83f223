"""The evolution loop end to end: reason, pick, search, write the change.

``aina evolve`` and the GitHub App both come through here:

* :func:`plan` turns telemetry into the hypothesis to act on and what to measure;
* :func:`search` proposes and evaluates candidates for it (sandboxed, budgeted, resumable);
* :func:`evolve_to_change` is the App's seam: a repository checkout and a hypothesis in,
  the change (files, PR body, attestation) out, as the dict of ``Change.to_json()``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pytest_aina.changer.model import Candidate, SearchRecord

#: Hypotheses the Changer can act on by specialising a variant for a shape domain.
ACTIONABLE = ("far_from_limit", "hot_unspecialised", "shape_shift")

#: Meta-parameters Triton's interpreter cannot see: they change GPU code generation only,
#: so timing them on a CPU would be noise presented as a result. Searched on a GPU only.
GPU_ONLY_TUNABLES = ("num_warps", "num_stages")

#: Interpreter budget for one benchmark call (elements, rows): hot shapes are scaled down
#: to this on a CPU, keeping the row width, which is what block-size choices depend on.
CPU_BENCH_NUMEL = 1 << 16
CPU_BENCH_ROWS = 16


class EvolveError(RuntimeError):
    """The loop cannot go on; the message says why and what to do."""


@dataclass
class Plan:
    hypothesis: dict
    kernel: str
    spec_path: Path
    function: str                      # the public function a candidate defines
    generic: str                       # import path of the generic variant
    tunables: dict
    bench_cases: list[dict]
    notes: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)   # hypotheses passed over, and why


def _kernel_module(spec):

    module, _, attr = spec.implementation.partition(":")
    return module, attr


def _generic_of(repo: Path, kernel: str, module: str, attr: str) -> str:
    """The generic variant's import path, from the kernel's dispatch table (read as data:
    the repository's code never runs in this process; the sandbox runs it)."""
    from pytest_aina.runtime import dispatch

    table = repo / "kernels" / "variants" / f"{kernel}.yaml"
    if table.exists():
        try:
            return dispatch.load_table(table, kernel=kernel).generic.function
        except dispatch.DispatchTableError as exc:
            raise EvolveError(f"{table}: {'; '.join(exc.issues)}") from None
    return f"{module}:{attr}_generic"


def _tunables(repo: Path, module: str, device: str) -> tuple[dict, list[str]]:
    """The kernel module's TUNABLES, read from its source without importing it (the
    parent never executes kernel code; the sandbox does)."""
    import ast

    path = repo / Path(*module.split(".")).with_suffix(".py")
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError) as exc:
        raise EvolveError(f"cannot read the tunables of {module} ({path}): {exc}") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TUNABLES" for t in node.targets):
            tunables = ast.literal_eval(node.value)
            break
    else:
        raise EvolveError(f"{path} defines no TUNABLES: the meta-parameter search has nothing to vary")
    notes = []
    if device == "cpu":
        dropped = [k for k in GPU_ONLY_TUNABLES if k in tunables]
        tunables = {k: v for k, v in tunables.items() if k not in GPU_ONLY_TUNABLES}
        if dropped:
            notes.append(f"not searched on this CPU: {', '.join(dropped)} (they change GPU code generation only; "
                         "Triton's interpreter cannot measure them)")
    return tunables, notes


def bench_cases_for(hypothesis: dict, spec, device: str) -> tuple[list[dict], list[str]]:
    """The shapes to time: the hottest shape the evidence names, else the domain's lower
    corner; on a CPU scaled down to what the interpreter can afford (same row width)."""
    from pytest_aina.checking.strategies import primary

    ev = hypothesis.get("evidence", {})
    dims: dict[str, int] = {}
    if ev.get("groups"):
        dims = {k: int(v) for k, v in ev["groups"][0]["dims"].items()}
    elif ev.get("observed_dims"):
        dims = {k: int(v[1]) for k, v in ev["observed_dims"].items()}
    else:
        dims = {k: int(v[0]) for k, v in hypothesis["domain"]["dims"].items()}
    for name, d in spec.dims.items():
        dims[name] = max(d.min, min(d.max, dims.get(name, d.min)))
    dtype = hypothesis["domain"].get("dtype") or spec.dtypes[0]
    notes = []
    hot = dict(dims)
    if device == "cpu":
        x = primary(spec)
        width = math.prod(dims[d] for d in x.shape[-1:])
        rows_cap = max(1, min(CPU_BENCH_ROWS, CPU_BENCH_NUMEL // max(width, 1)))
        for name in x.shape[:-1]:
            dims[name] = min(dims[name], rows_cap)
            rows_cap = max(1, rows_cap // dims[name])
        if dims != hot:
            notes.append("timed at " + ",".join(f"{k}={v}" for k, v in dims.items()) + " instead of the hot shape "
                         + ",".join(f"{k}={v}" for k, v in hot.items())
                         + ": Triton's interpreter on a CPU cannot afford it (same row width)")
    label = ",".join(f"{k}={v}" for k, v in dims.items()) + f",{dtype}"
    return [{"dims": dims, "dtype": dtype, "label": label, "hot_dims": hot}], notes


def plan(repo: Path, hypotheses: list[dict], *, device: str, specs_dir: str = "specs") -> Plan:
    """The first hypothesis the Changer can act on, with what to search and measure."""
    from pytest_aina.spec.model import SpecError, load_spec

    skipped = []
    for h in hypotheses:
        if h["kind"] not in ACTIONABLE:
            skipped.append({"id": h["id"], "kind": h["kind"], "why": "not a specialisation: needs a human"})
            continue
        spec_path = repo / specs_dir / f"{h['kernel']}.yaml"
        try:
            spec = load_spec(spec_path)
        except SpecError as exc:
            skipped.append({"id": h["id"], "kind": h["kind"], "why": f"no usable spec: {exc}"})
            continue
        module, attr = _kernel_module(spec)
        try:
            tunables, notes = _tunables(repo, module, device)
        except EvolveError as exc:
            skipped.append({"id": h["id"], "kind": h["kind"], "why": str(exc)})
            continue
        cases, case_notes = bench_cases_for(h, spec, device)
        return Plan(h, h["kernel"], spec_path, attr, _generic_of(repo, h["kernel"], module, attr), tunables, cases,
                    notes + case_notes, skipped)
    raise EvolveError("no hypothesis the Changer can act on"
                      + (": " + "; ".join(f"{s['kind']} {s['id']}: {s['why']}" for s in skipped) if skipped else
                         " (the Reasoner found nothing worth improving)"))


def search(repo: Path, p: Plan, *, device: str, proposers: list[str], proposer_config: dict | None = None,
           budget=None, seed: int = 0, workers: int = 1, progress: Callable | None = None,
           resume: bool = True) -> SearchRecord:
    """Search for ``p`` and return the record, winner included when one beats the baseline."""
    from pytest_aina import environment
    from pytest_aina.changer import proposers as P
    from pytest_aina.changer.evaluate import Setup, evaluate, workdir_for
    from pytest_aina.changer.search import Budget, Checkpoint, best, run_search

    budget = budget or Budget()
    work = workdir_for(repo, f"{p.hypothesis['id']}-s{seed}")
    setup = Setup(spec_path=p.spec_path, repo=repo, function=p.function, generic=p.generic,
                  bench_cases=p.bench_cases, workdir=work, device=device, seed=seed)
    ctx = P.ProposalContext(kernel=p.kernel, spec=setup.spec, spec_text=p.spec_path.read_text(),
                            kernel_source=(repo / Path(*p.generic.split(":")[0].split("."))).with_suffix(".py").read_text(),
                            function=p.function, hypothesis=p.hypothesis, tunables=p.tunables, seed=seed)
    ctx.heuristic = _heuristic(setup, p)
    made = [_Baseline()] + [P.make(name, (proposer_config or {}).get(name)) for name in proposers]
    checkpoint = Checkpoint(work / "checkpoint.jsonl")
    if not resume and checkpoint.path.exists():
        checkpoint.path.unlink()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # the baseline: what dispatch serves today for this domain (the generic kernel with its
    # heuristic), measured in the same run as every candidate
    baseline_candidate = Candidate(kernel=p.kernel, proposer="baseline", config={})
    outcome = run_search(ctx, made, lambda c: evaluate(c, setup), budget, checkpoint=checkpoint,
                         workers=workers, progress=progress)
    base = next((a for a in outcome.attempts if a.candidate.id == baseline_candidate.id), None)
    top = best(outcome.attempts)
    winner = None
    if top and base and base.verdict.passed and top.candidate.id != base.candidate.id \
            and top.verdict.score > base.verdict.score * (1 + NOISE_MARGIN):
        winner = top.candidate.id
    failures = [f for m in made for f in getattr(m, "failures", None) or []]
    record = SearchRecord(
        kernel=p.kernel, spec_path=str(p.spec_path.relative_to(repo)), hypothesis=p.hypothesis, seed=seed,
        budget=budget.as_dict() | {"used": outcome.used, "stopped_by": outcome.stopped_by},
        proposers=proposers, baseline=base, attempts=outcome.attempts, winner=winner,
        benchmark_cases=[c["label"] for c in p.bench_cases],
        environment=environment.collect(with_torch=False, cwd=str(repo)) | {"notes": p.notes,
                                                                           "proposer_failures": failures or []},
        device=device, started=started, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        repeat=f"aina evolve --telemetry <the same file> --seed {seed} --budget-evals {budget.evaluations} "
               f"--proposer {','.join(proposers)}")
    return record


def _heuristic(setup, p: Plan) -> dict | None:
    """Ask the kernel, in the sandbox, which meta-parameters its heuristic picks at the
    benchmark shape: the search then starts from that point instead of exploring blindly."""
    from pytest_aina import sandbox
    from pytest_aina.changer.evaluate import _child_env

    bc = p.bench_cases[0]
    r = sandbox.run("pytest_aina.changer.harness:heuristic_config", args=[str(setup.spec_path.resolve())],
                    kwargs={"dims": bc["dims"], "dtype": bc["dtype"]}, pythonpath=[str(setup.repo)],
                    read_paths=[str(setup.repo)], env=_child_env(setup), limits=sandbox.Limits(wall_s=120))
    return r.value if r.ok and isinstance(r.value, dict) else None


class _Baseline:
    """Proposes, once, what dispatch serves today: the generic kernel with its heuristic."""

    name = "baseline"

    def propose(self, ctx, n):
        base = Candidate(kernel=ctx.kernel, proposer=self.name, config={})
        return [] if any(c.id == base.id for c, _ in ctx.history) else [base]


#: A winner must beat the baseline by more than this (relative, on medians measured in the
#: same run) to be worth a change; below it the difference is within this machine's noise.
NOISE_MARGIN = 0.05


def summarize_attempts(record) -> str:
    """One line per attempt, score relative to the baseline or why it failed: what a
    reader of a "no change" outcome needs to see that the search ran and what it found."""
    base = record.baseline.verdict.score if record.baseline and record.baseline.verdict.passed else None
    parts = []
    for a in record.attempts:
        v = a.verdict
        if not v.passed:
            how = f"failed at {v.failed_stage}: {v.reason}"
        elif base and v.score:
            how = f"{v.score / base:.2f}x the baseline"
        else:
            how = f"score {v.score}"
        who = "baseline" if record.baseline and a.candidate.id == record.baseline.candidate.id \
            else a.candidate.describe()
        parts.append(f"{who}: {how}")
    return "; ".join(parts) or "nothing was evaluated"


def evolve_to_change(checkout_dir: Path, hypothesis: dict, config: dict) -> dict:
    """The GitHub App's seam: search for ``hypothesis`` in ``checkout_dir`` and return the
    change as a dict (``github_app.change.Change.from_json``). Raises :class:`EvolveError`
    when no candidate beats the baseline."""
    from pytest_aina.checking.device import device as _device
    from pytest_aina.changer.change import write_change
    from pytest_aina.changer.search import Budget

    repo = Path(checkout_dir)
    dev = config.get("device") or _device()
    p = plan(repo, [hypothesis], device=dev)
    record = search(repo, p, device=dev, proposers=config.get("proposers", ["metaparams"]),
                    proposer_config=config.get("proposer_config"),
                    budget=Budget(**config.get("budget", {})), seed=int(config.get("seed", 0)),
                    workers=int(config.get("workers", min(2, os.cpu_count() or 1))))
    if record.winner is None:
        raise EvolveError(f"no candidate beat the baseline by more than {NOISE_MARGIN:.0%} for "
                          f"{hypothesis['id']} ({len(record.attempts)} evaluated): "
                          + summarize_attempts(record))
    change = write_change(record, repo, spec_path=p.spec_path, telemetry=config.get("telemetry"))
    # the checkout is the App's own scratch copy: the files can be written there to measure
    change.materialize(repo)
    return change.with_coverage(change.measure_coverage(repo)).to_json()
