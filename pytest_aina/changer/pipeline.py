"""THE evolution loop, end to end: plan, search, write, measure, verify.

``aina evolve`` (:mod:`pytest_aina.commands.evolve`) and the GitHub App
(``github_app.bridge``) both run :func:`evolve`; what differs between them is only where the
hypotheses come from, where the change goes, and how progress is shown (a :class:`Progress`).

1. :func:`plan`: the first hypothesis the Changer can act on, the spec, the tunables, and
   the shapes to time;
2. :func:`search`: propose and evaluate candidates (sandboxed, budgeted, resumable), the
   baseline measured in the same run, on the executor the settings name (this machine, or
   a Ray cluster: :mod:`pytest_aina.changer.executors`);
3. the baseline and the search's best few are timed again side by side, one session at a
   time (:mod:`~pytest_aina.changer.sidebyside`), and a candidate that beats the baseline
   there by more than :data:`NOISE_MARGIN` becomes a
   :class:`~pytest_aina.changer.change.Change` (:func:`~pytest_aina.changer.change.write_change`);
4. its generated tests run under coverage in a scratch copy of the base with the change
   applied (:func:`~pytest_aina.changer.forge.scratch_checkout`: the repository is never
   written), and the figures go into its attestation;
5. its provenance is checked with :func:`~pytest_aina.changer.change.verify`, against the
   commit the change will sit on.
"""

from __future__ import annotations

import ast
import math
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_aina import environment, sandbox
from pytest_aina.changer import forge, sidebyside
from pytest_aina.changer.change import Change, verify, write_change
from pytest_aina.changer.evaluate import Setup, child_env, workdir_for
from pytest_aina.changer.executors import Evaluation, Executor, SideBySide, open_executor
from pytest_aina.changer.model import Attempt, Candidate, SearchRecord
from pytest_aina.changer.proposers import prompts
from pytest_aina.changer.proposers.base import ProposalContext, make
from pytest_aina.changer.proposers.llm import public_url  # litellm itself loads on the first call only
from pytest_aina.changer.search import Checkpoint, run_search
from pytest_aina.changer.settings import EvolutionSettings
from pytest_aina.checking.strategies import primary
from pytest_aina.reasoner.hypothesis import Hypothesis
from pytest_aina.runtime import dispatch
from pytest_aina.spec.model import Spec, SpecError, load_spec

#: Meta-parameters Triton's interpreter cannot see: they change GPU code generation only,
#: so timing them on a CPU would be noise presented as a result. Searched on a GPU only.
GPU_ONLY_TUNABLES = ("num_warps", "num_stages")

#: Interpreter budget for one benchmark call (elements, rows): hot shapes are scaled down
#: to this on a CPU, keeping the row width, which is what block-size choices depend on.
CPU_BENCH_NUMEL = 1 << 16
CPU_BENCH_ROWS = 16

#: A winner must beat the baseline by more than this (relative, on the medians of their
#: side-by-side timing) to be worth a change; below it the difference is within the noise.
NOISE_MARGIN = 0.05


class EvolveError(RuntimeError):
    """The loop cannot go on; the message says why and what to do."""


@dataclass
class Plan:
    hypothesis: Hypothesis
    kernel: str
    spec_path: Path
    function: str  # the public function a candidate defines
    generic: str  # import path of the generic variant
    tunables: dict
    bench_cases: list[dict]
    notes: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # hypotheses passed over, and why

    def setup(self, repo: Path, *, workdir: Path, device: str, seed: int = 0) -> Setup:
        """What every evaluation of this plan's search shares (the benchmarks build theirs here too)."""
        return Setup(
            spec_path=self.spec_path,
            repo=repo,
            function=self.function,
            generic=self.generic,
            bench_cases=self.bench_cases,
            workdir=workdir,
            device=device,
            seed=seed,
        )


class Progress:
    """What the loop tells its caller as it goes; every method does nothing here, a caller
    overrides what it shows (``aina evolve`` prints, the App logs)."""

    def running_on(self, executor: Executor) -> None:
        pass

    def planned(self, plan: Plan) -> None:
        pass

    def evaluated(self, attempt: Attempt, done: int, total: int) -> None:
        pass

    def confirming(self, challengers: list[Attempt], rounds: int) -> None:
        """The search is over; ``challengers`` are being timed beside the baseline."""

    def searched(self, record: SearchRecord) -> None:
        pass

    def measuring(self, change: Change) -> None:
        pass


@dataclass
class Evolution:
    """What one run of the loop came to."""

    plan: Plan
    record: SearchRecord
    change: Change | None  # None: no candidate beat the baseline
    problems: list[str] = field(default_factory=list)  # the provenance check's findings on the change

    @property
    def silent_proposers(self) -> list[str]:
        """The requested proposers that never produced a candidate in this search."""
        return list((self.record.environment or {}).get("proposers_without_candidate") or [])

    def silent_because(self, name: str) -> str:
        """Why ``name`` produced nothing: its recorded failures, by reason."""
        reasons: dict[str, int] = {}
        for f in (self.record.environment or {}).get("proposer_failures") or []:
            if str(f.get("proposer") or "").partition(":")[0] == name:
                reasons[str(f.get("reason"))] = reasons.get(str(f.get("reason")), 0) + 1
        return ", ".join(f"{k} x{v}" for k, v in reasons.items()) or "it proposed nothing new"

    @property
    def why_no_change(self) -> str:
        return (
            f"no candidate beat the baseline by more than {NOISE_MARGIN:.0%} for {self.plan.hypothesis.id} "
            f"({len(self.record.attempts)} evaluated): "
            + summarize_attempts(self.record)
            # the App says this on the issue: a proposer that never answered must not look like a search
            + "".join(
                f"; proposer {n} never produced a candidate ({self.silent_because(n)})" for n in self.silent_proposers
            )
        )


# ---------------------------------------------------------------------------------------
# The whole


def evolve(
    repo: Path,
    hypotheses: Sequence[Hypothesis],
    settings: EvolutionSettings,
    *,
    specs_dir: str = "specs",
    base: str | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> Evolution:
    """Run the loop on the repository at ``repo`` for the first of ``hypotheses`` it can act on.

    ``base`` is the commit the change will sit on (the forge's HEAD, the PR's base); it is
    recorded when ``repo`` is not a git checkout (the App's tarball) and the provenance is
    checked against it. The repository is only read, but for pytest-aina's working files
    under ``.aina/`` (the search's checkpoint, from which ``resume`` continues).
    Raises :class:`EvolveError` when no hypothesis is actionable,
    :class:`~pytest_aina.changer.change.ChangeError` when the winner cannot become a
    change, ``ValueError`` for a proposer's configuration,
    :class:`~pytest_aina.changer.executors.ExecutorError` when the Ray cluster cannot be used.
    """
    progress = progress or Progress()
    repo = Path(repo)
    with open_executor(settings) as executor:
        progress.running_on(executor)
        # the device is where the evaluations run: a Ray cluster's, not necessarily this machine's
        device = settings.device or executor.device()
        p = plan(repo, hypotheses, device=device, specs_dir=specs_dir)
        progress.planned(p)
        record = search(
            repo,
            p,
            settings,
            device=device,
            base=base,
            resume=resume,
            progress=progress.evaluated,
            executor=executor,
            confirming=progress.confirming,
        )
    progress.searched(record)
    if record.winner is None:
        return Evolution(p, record, None)
    change = write_change(record, repo, spec_path=p.spec_path, telemetry=settings.telemetry)
    progress.measuring(change)
    with forge.scratch_checkout(repo, change) as checkout:
        change = change.with_coverage(change.measure_coverage(checkout))
    return Evolution(p, record, change, verify(change.files, attestation=change.attestation, base=base))


# ---------------------------------------------------------------------------------------
# Plan


def plan(repo: Path, hypotheses: Sequence[Hypothesis], *, device: str, specs_dir: str = "specs") -> Plan:
    """The first hypothesis the Changer can act on, with what to search and measure."""
    skipped = []
    for h in hypotheses:
        if not h.actionable:
            skipped.append({"id": h.id, "kind": h.kind, "why": "not a specialisation: needs a human"})
            continue
        spec_path = repo / specs_dir / f"{h.kernel}.yaml"
        try:
            spec = load_spec(spec_path)
        except SpecError as exc:
            skipped.append({"id": h.id, "kind": h.kind, "why": f"no usable spec: {exc}"})
            continue
        module, _, attr = spec.implementation.partition(":")
        try:
            tunables, notes = _tunables(repo, module, device)
        except EvolveError as exc:
            skipped.append({"id": h.id, "kind": h.kind, "why": str(exc)})
            continue
        cases, case_notes = bench_cases_for(
            spec, device, dims=hot_dims(h), dtype=h.domain.get("dtype") or spec.dtypes[0]
        )
        return Plan(
            h,
            h.kernel,
            spec_path,
            attr,
            _generic_of(repo, h.kernel, module, attr),
            tunables,
            cases,
            notes + case_notes,
            skipped,
        )
    raise EvolveError(
        "no hypothesis the Changer can act on"
        + (
            ": " + "; ".join(f"{s['kind']} {s['id']}: {s['why']}" for s in skipped)
            if skipped
            else " (the Reasoner found nothing worth improving)"
        )
    )


def _generic_of(repo: Path, kernel: str, module: str, attr: str) -> str:
    """The generic variant's import path, from the kernel's dispatch table (read as data:
    the repository's code never runs in this process; the sandbox runs it)."""
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
            notes.append(
                f"not searched on this CPU: {', '.join(dropped)} (they change GPU code generation only; "
                "Triton's interpreter cannot measure them)"
            )
    return tunables, notes


def hot_dims(hypothesis: Hypothesis) -> dict[str, int]:
    """The shape to time for ``hypothesis``: the first group its evidence names, else the
    largest shape it observed, else its domain's lower corner."""
    ev = hypothesis.evidence
    if ev.get("groups"):
        return {k: int(v) for k, v in ev["groups"][0]["dims"].items()}
    if ev.get("observed_dims"):
        return {k: int(v[1]) for k, v in ev["observed_dims"].items()}
    return {k: int(v[0]) for k, v in hypothesis.domain["dims"].items()}


def bench_cases_for(spec: Spec, device: str, *, dims: dict[str, int], dtype: str) -> tuple[list[dict], list[str]]:
    """The benchmark case at ``dims`` (clamped to the spec's domain), and on a CPU scaled
    down to what the interpreter can afford (same row width); with notes saying so."""
    dims = dict(dims)
    for name, d in spec.dims.items():
        dims[name] = max(d.min, min(d.max, dims.get(name, d.min)))
    notes = []
    hot = dict(dims)
    if device == "cpu":
        x = primary(spec)
        width = math.prod(dims[d] for d in x.shape[-1:])
        rows_cap = max(1, min(CPU_BENCH_ROWS, CPU_BENCH_NUMEL // max(width, 1)))
        for name in x.shape[:-1]:
            dims[name] = min(dims[name], rows_cap)
            rows_cap = max(1, rows_cap // dims[name])
        # dims only other inputs have (matmul's N) are capped like rows: b [K, N] at N = 4096
        # would make the interpreter do 4096 / 16 times the work of the row width it times
        for name in spec.dims:
            if name not in x.shape:
                dims[name] = min(dims[name], CPU_BENCH_ROWS)
        if dims != hot:
            notes.append(
                "timed at "
                + ",".join(f"{k}={v}" for k, v in dims.items())
                + " instead of the hot shape "
                + ",".join(f"{k}={v}" for k, v in hot.items())
                + ": Triton's interpreter on a CPU cannot afford it (same row width)"
            )
    label = ",".join(f"{k}={v}" for k, v in dims.items()) + f",{dtype}"
    return [{"dims": dims, "dtype": dtype, "label": label, "hot_dims": hot}], notes


# ---------------------------------------------------------------------------------------
# Search


def search(
    repo: Path,
    p: Plan,
    settings: EvolutionSettings,
    *,
    device: str,
    base: str | None = None,
    progress=None,
    resume: bool = True,
    executor: Executor | None = None,
    confirming=None,
) -> SearchRecord:
    """Search for ``p`` and return the record, winner included when one beats the baseline
    side by side (:mod:`~pytest_aina.changer.sidebyside`). The evaluations run on
    ``executor``, default: the one ``settings`` name, opened and closed here. ``progress``
    is told of each evaluation, ``confirming`` of the side-by-side timing as it starts."""
    if executor is None:
        with open_executor(settings) as executor:
            return search(
                repo,
                p,
                settings,
                device=device,
                base=base,
                progress=progress,
                resume=resume,
                executor=executor,
                confirming=confirming,
            )
    seed, budget, proposers = settings.seed, settings.budget, list(settings.proposers)
    made = [_Baseline()] + [make(name, dict(settings.proposer_config.get(name) or {})) for name in proposers]
    for m in made:
        # before anything is evaluated (the heuristic probe, the baseline: minutes on a CPU): a
        # missing key, an unknown model or a server nothing listens on stops the run here
        preflight = getattr(m, "preflight", None)
        if callable(preflight):
            preflight()
    setup = p.setup(repo, workdir=workdir_for(repo, f"{p.hypothesis.id}-s{seed}"), device=device, seed=seed)
    source = (repo / Path(*p.generic.split(":")[0].split("."))).with_suffix(".py").read_text()
    ctx = ProposalContext(
        kernel=p.kernel,
        spec=setup.spec,
        spec_text=p.spec_path.read_text(),
        kernel_source=source,
        function=p.function,
        hypothesis=p.hypothesis,
        tunables=p.tunables,
        seed=seed,
        device=device,
        bench_cases=[dict(c) for c in p.bench_cases],
        helpers=_helpers(repo, source),
    )
    ctx.heuristic = _heuristic(setup, p)
    checkpoint = Checkpoint(setup.workdir / "checkpoint.jsonl")
    if not resume and checkpoint.path.exists():
        checkpoint.path.unlink()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # the baseline: what dispatch serves today for this domain (the generic kernel with its
    # heuristic), measured in the same run as every candidate
    baseline_candidate = Candidate(kernel=p.kernel, proposer="baseline", config={})
    outcome = run_search(
        ctx,
        made,
        Evaluation(setup),  # picklable, unlike a lambda: a remote executor ships it to a node
        budget,
        checkpoint=checkpoint,
        executor=executor,
        progress=progress,
    )
    baseline = next((a for a in outcome.attempts if a.candidate.id == baseline_candidate.id), None)
    # the decision rests on the baseline and the best few timed again side by side, one at
    # a time (sidebyside.py: the search's own figures shift with what runs beside them)
    confirmation, winner = None, None
    contenders = sidebyside.challengers(outcome.attempts, baseline)
    if contenders:
        if confirming:
            confirming(contenders, sidebyside.ROUNDS)
        sides = (baseline.candidate, *(a.candidate for a in contenders))
        confirmation = executor.submit(SideBySide(setup), sides).result()
        winner = sidebyside.winner(confirmation, NOISE_MARGIN)
    failures = [f for m in made for f in getattr(m, "failures", None) or []]
    # a proposer the user asked for that was asked and only failed (errors, no answer, gave
    # up): the run did not do what it was asked, whatever else it found (aina evolve exits 2
    # on it). One never asked (the budget ended first) or with nothing new left to propose
    # (a finite space, already covered) did not fail, and says nothing.
    silent = [
        name
        for name, m in zip(proposers, made[1:])
        if getattr(m, "failures", None)
        and not any(a.candidate.proposer == getattr(m, "name", name) for a in outcome.attempts)
    ]
    env = environment.collect(with_torch=False, cwd=str(repo))
    if base and not (env.get("git") or {}).get("commit"):
        env["git"] = {"commit": base, "dirty": False}  # a checkout of ``base`` without git (the App's tarball)
    return SearchRecord(
        kernel=p.kernel,
        spec_path=str(p.spec_path.relative_to(repo)),
        hypothesis=p.hypothesis,
        seed=seed,
        budget=budget.as_dict() | {"used": outcome.used, "stopped_by": outcome.stopped_by},
        proposers=proposers,
        baseline=baseline,
        attempts=outcome.attempts,
        winner=winner,
        side_by_side=confirmation,
        benchmark_cases=[c["label"] for c in p.bench_cases],
        environment=env
        | {"notes": p.notes, "proposer_failures": failures or [], "proposers_without_candidate": silent},
        device=device,
        started=started,
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        repeat=repeat_command(settings),
    )


def repeat_command(settings: EvolutionSettings) -> str:
    """The ``aina evolve`` command that repeats a search with ``settings``: every flag that
    changes what is proposed, the LLM's model, server and the *name* of its key variable
    included (never a key: the settings hold none)."""
    b = settings.budget
    parts = [
        "aina evolve --telemetry <the same file>",
        f"--seed {settings.seed}",
        f"--budget-evals {b.evaluations}",
        f"--budget-tokens {'none' if b.tokens is None else b.tokens}",
        f"--proposer {','.join(settings.proposers)}",
    ]
    llm = settings.proposer_config.get("llm") or {}
    if "llm" in settings.proposers:
        for flag, key in (("--model", "model"), ("--api-base", "api_base"), ("--api-key-env", "api_key_env")):
            value = public_url(llm.get(key)) if key == "api_base" else llm.get(key)
            if value:
                parts.append(f"{flag} {shlex.quote(str(value))}")
    if settings.executor != "local":
        parts.append(f"--executor {settings.executor}")
    return " ".join(parts)


def _helpers(repo: Path, source: str) -> dict[str, str]:
    """The sources of the ``kernels.*`` modules ``source`` imports: the helpers the prompt
    tells a model it may use, shown so it knows what they do (read as text, never run)."""
    out = {}
    for name in prompts.kernel_imports(source):
        path = repo / Path(*name.split(".")).with_suffix(".py")
        if path.is_file():
            out[name] = path.read_text()
    return out


def _heuristic(setup: Setup, p: Plan) -> dict | None:
    """Ask the kernel, in the sandbox, which meta-parameters its heuristic picks at the
    benchmark shape: the search then starts from that point instead of exploring blindly."""
    bc = p.bench_cases[0]
    r = sandbox.run(
        "pytest_aina.changer.harness:heuristic_config",
        args=[str(setup.spec_path.resolve())],
        kwargs={"dims": bc["dims"], "dtype": bc["dtype"]},
        pythonpath=[str(setup.repo)],
        read_paths=[str(setup.repo)],
        env=child_env(setup.device),
        limits=sandbox.Limits(wall_s=120),
    )
    return r.value if r.ok and isinstance(r.value, dict) else None


class _Baseline:
    """Proposes, once, what dispatch serves today: the generic kernel with its heuristic."""

    name = "baseline"

    def propose(self, ctx, n):
        base = Candidate(kernel=ctx.kernel, proposer=self.name, config={})
        return [] if any(c.id == base.id for c, _ in ctx.history) else [base]


def summarize_attempts(record: SearchRecord) -> str:
    """One line per attempt, score relative to the baseline or why it failed: what a
    reader of a "no change" outcome needs to see that the search ran and what it found."""
    base = record.baseline.verdict.score if record.baseline and record.baseline.verdict.passed else None
    sbs = record.side_by_side or {}
    parts = []
    for a in record.attempts:
        v = a.verdict
        if not v.passed:
            how = f"failed at {v.failed_stage}: {v.reason}"
        elif base and v.score:
            how = f"{v.score / base:.2f}x the baseline"
        else:
            how = f"score {v.score}"
        if a.candidate.id in (sbs.get("speedups") or {}):
            how += f", {sbs['speedups'][a.candidate.id]:.2f}x side by side"
        elif a.candidate.id in (sbs.get("failed") or {}):
            how += f", out of the side-by-side timing ({sbs['failed'][a.candidate.id]})"
        who = (
            "baseline" if record.baseline and a.candidate.id == record.baseline.candidate.id else a.candidate.describe()
        )
        parts.append(f"{who}: {how}")
    return "; ".join(parts) or "nothing was evaluated"
