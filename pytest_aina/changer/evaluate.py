"""Evaluating one candidate: a cascade of the plugin's own checks, in a sandbox.

    import -> examples -> properties (and invariants) -> benchmarks

1. *import*: the candidate's source must compile (checked here, without running it);
2. *examples, properties*: ``pytest --aina`` on the spec with the candidate in place of the
   implementation, in a sandboxed process (:func:`pytest_aina.sandbox.run`): exactly the
   checks CI runs, stopping at the first failure;
3. *benchmarks*: the parent-side timing protocol (:func:`pytest_aina.sandbox.time_calls`):
   the parent owns the clock, picks a fresh seed per call and checks every output against
   the reference it computes itself, so a candidate that games the checks in its own
   process (patching the checker, caching answers, writing half a result) still fails
   here. The spec's reference is timed the same way in the same run, once per run
   (:func:`_reference_timing`: kept per process, keyed by the spec, the case, the device
   and the reference's source; ``Setup.reference_once = False`` times it beside every
   candidate): ``speedup`` is reference time / candidate time. When ``Setup.current`` names the implementation the
   candidate would replace (``aina eval``: the repository's kernel), it is timed the same
   way too, on the same inputs, and each timing carries ``current_median_s``.

A candidate is hostile until proven otherwise: whatever it does is a :class:`Verdict`
with a specific reason, never an exception out of :func:`evaluate`.

Every sandboxed stage is forked from one warm template per process
(:class:`pytest_aina.sandbox.Template`, see :func:`template_for`), which has imported
torch, Triton, pytest, Hypothesis and the plugin once: a stage pays for its own work, not
for an interpreter's start-up. ``Setup.warm = False`` starts each one cold, as before.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from pytest_aina import sandbox
from pytest_aina.changer.model import Candidate, Verdict
from pytest_aina.spec.model import load_spec


@dataclass
class Setup:
    """What every evaluation in one run shares."""

    spec_path: Path
    repo: Path  # the repository (kernels importable from here)
    function: str  # the function a candidate defines, e.g. "softmax"
    generic: str  # import path of the generic variant, for config candidates
    bench_cases: list[dict]  # [{"dims": {...}, "dtype": ..., "label": ...}]
    workdir: Path  # where generated candidate files go (outside the sandbox)
    device: str = "cpu"
    profile: str = "ci"
    calls: int = 7
    warmup: int = 1
    seed: int = 0
    check_wall_s: float = 240.0
    bench_wall_s: float = 120.0
    memory_bytes: int = 6 << 30
    hbm_bytes_per_s: float | None = None  # the device's limit: a faster figure is a measurement error
    current: str | None = None  # module:attr the candidate would replace, timed beside it (None: not timed)
    warm: bool = True  # fork each stage from the process's warm template (False: a new interpreter each)
    reference_once: bool = True  # time the spec's reference once per run and case (False: beside each candidate)
    spec: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.spec is None:
            self.spec = load_spec(self.spec_path)


def module_source(c: Candidate, setup: Setup) -> str:
    """The module a candidate is evaluated as: its own source, or the generic variant with
    the candidate's meta-parameters bound."""
    if c.source is not None:
        return c.source
    module, _, attr = setup.generic.partition(":")
    return (
        f'"""Candidate {c.id}: {setup.generic} with meta-parameters {c.config!r}."""\n'
        f"from {module} import {attr} as _generic\n\n"
        f"CONFIG = {json.dumps(c.config or {}, sort_keys=True)}\n\n\n"
        f"def {setup.function}(*args, **kwargs):\n"
        f"    return _generic(*args, **kwargs, **CONFIG)\n"
    )


def _harness_file(setup: Setup) -> Path:
    """A small module binding the harness to this spec (the timing protocol names its
    callables by path, and they take no spec argument)."""
    path = setup.workdir / "harness_spec.py"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        spec = str(setup.spec_path.resolve())
        path.write_text(
            "from pytest_aina.changer import harness as _h\n"
            f"SPEC = {spec!r}\n\n"
            "def make_inputs(seed, **params):\n    return _h.make_inputs(SPEC, seed, **params)\n\n"
            "def reference(*args, **kwargs):\n    return _h.reference(SPEC, *args, **kwargs)\n\n"
            "def check(out, expected, **params):\n    return _h.check(SPEC, out, expected, **params)\n"
        )
    return path


def child_env(device: str) -> dict[str, str]:
    """The environment a sandboxed child needs to run a kernel on ``device`` ("cpu" or
    "cuda"): Triton's interpreter on a CPU, nothing extra on a GPU. Every sandboxed run of
    the loop (the checks, the timing, the heuristic probe) takes it from here, so they all
    run the kernel the same way."""
    return {"TRITON_INTERPRET": "1"} if device == "cpu" else {}


#: What the warm template imports: everything a stage needs before the candidate's own code
#: (the plugin's pytest11 entry points are added to it). Trusted code only: the template
#: runs outside the sandbox.
PRELOAD = (
    "numpy",
    "torch",
    "triton",
    "triton.language",
    "triton.compiler.code_generator",  # with Gluon: 50 modules the interpreter imports on first launch
    "pytest",
    "hypothesis",
    "jsonschema",  # the spec's schema check, 0.8 s on its own
    "pdb",
    "tomllib",
    # pytest's own plugins, imported by each session's configuration
    *(
        f"_pytest.{m}"
        for m in (
            "faulthandler helpconfig pastebin setuponly setupplan skipping threadexception tracemalloc unittest"
            " unraisableexception warnings"
        ).split()
    ),
    "pytest_aina.plugin",
    "pytest_aina.changer.harness",
    "pytest_aina.checking.strategies",
    "pytest_aina.spec.reader",
    *(f"pytest_aina.interpreter.{m}" for m in "floats guards launch libdevice sanitizer semantics".split()),
    "pytest_aina.runtime.dispatch",
    "pytest_aina.sandbox.child.boot",
)

_templates: dict[tuple, sandbox.Template] = {}
_templates_lock = threading.Lock()


def _preload() -> list[str]:
    plugins = [ep.module for ep in entry_points(group="pytest11")]
    return list(dict.fromkeys([*PRELOAD, *plugins]))


def template_for(setup: Setup) -> sandbox.Template | None:
    """The warm template this process forks ``setup``'s stages from (started on first
    use, one per device environment, shared by the threads of a local pool; a Ray worker
    process keeps its own for the tasks it runs), or None when ``setup.warm`` is off."""
    if not setup.warm:
        return None
    env = child_env(setup.device)
    key = (os.getpid(), tuple(sorted(env.items())))  # a forked process must not use its parent's
    with _templates_lock:
        tpl = _templates.get(key)
        if tpl is None:
            tpl = _templates[key] = sandbox.Template(_preload(), env=env)
    # the spec, parsed and validated once in the template: each stage forked from it
    # inherits it (a failure here costs only that: the stage parses it and reports)
    tpl.prepare("pytest_aina.changer.harness:warm", [str(Path(setup.spec_path).resolve())])
    return tpl


@atexit.register
def _close_templates() -> None:
    for key, tpl in list(_templates.items()):
        if key[0] == os.getpid():
            tpl.close()


def _classify_checks(value: dict) -> tuple[str, str, str]:
    """(failed stage, reason, detail) from the sandboxed pytest run's items."""
    failed = next((i for i in value.get("items", []) if i["outcome"] == "failed"), None)
    if failed is None:
        return "examples", "no result", f"pytest exited {value.get('exit_code')} without a failing item"
    msg, node = failed["message"], failed["nodeid"]
    stage = "import" if failed["when"] == "collect" else "examples" if "::example[" in node else "properties"
    if "MemoryError" in msg:
        return stage, "memory limit", msg
    if "SyntaxError" in msg:
        return "import", "syntax error", msg
    if "ModuleNotFoundError" in msg or "ImportError" in msg:
        return "import", "import error", msg
    # an AttributeError at import, or the plugin's ResolveError for --aina-impl
    if "has no attribute" in msg and ("AttributeError" in msg or "cannot resolve" in msg):
        return "import", "missing function", msg
    if "reference check failed" in msg:
        return stage, "wrong answer", msg
    if "invariant " in msg and " failed" in msg:
        return stage, "invariant broken", msg
    if "the implementation raised" in msg:
        return stage, "exception", msg
    return stage, "failed", msg


def evaluate(c: Candidate, setup: Setup, progress: Callable[[str], None] | None = None) -> Verdict:
    """The cascade for one candidate; ``wall_s`` is its whole wall time, and ``stage_s``
    the wall time of each sandboxed stage it reached, intervals inside that whole.
    ``progress`` (optional) is told, in a line, each step as it starts: a stage can take
    minutes on a CPU."""
    start = time.monotonic()
    v = Verdict(candidate=c.id, passed=False)
    try:
        _cascade(c, setup, v, progress or (lambda line: None))
    finally:
        v.wall_s = time.monotonic() - start
    return v


@contextmanager
def _stage_clock(v: Verdict, stage: str):
    """Record the stage's wall seconds in ``v.stage_s``, however it ends."""
    start = time.monotonic()
    try:
        yield
    finally:
        v.stage_s[stage] = time.monotonic() - start


def _cascade(c: Candidate, setup: Setup, v: Verdict, progress: Callable[[str], None]) -> None:
    """Fill in ``v`` stage by stage; return at the first failure."""
    progress("import: compiling the candidate's source")
    src = module_source(c, setup)
    # -- import: syntax, without executing anything -------------------------------------
    try:
        compile(src, f"candidate_{c.id}.py", "exec")
    except SyntaxError as exc:
        v.failed_stage, v.reason, v.detail = "import", "syntax error", f"line {exc.lineno}: {exc.msg}"
        return
    cfile = candidate_file(c, setup, src)
    v.stages.append("import")
    pythonpath = [str(setup.repo)]
    env = child_env(setup.device)
    template = template_for(setup)
    # -- examples, properties, invariants: the plugin, in the sandbox --------------------
    progress(f"examples, properties: pytest --aina on {setup.spec_path.name} in the sandbox (profile {setup.profile})")
    with _stage_clock(v, "checks"):
        res = sandbox.run(
            "pytest_aina.changer.harness:run_checks",
            args=[str(setup.spec_path.resolve()), f"cand_{c.id}:{setup.function}", setup.profile, str(setup.repo)],
            files={f"candidate/cand_{c.id}.py": cfile},
            pythonpath=pythonpath,
            read_paths=[str(setup.repo)],
            env=env,
            limits=sandbox.Limits(wall_s=setup.check_wall_s, memory_bytes=setup.memory_bytes),
            template=template,
        )
    v.sandbox = dict(res.protections)
    _add_phases(v, "checks", res.phases)
    v.violations += res.violations
    if not res.ok:
        v.failed_stage, v.reason = "examples", res.status
        v.detail = f"{res.reason}\n{res.stderr_tail[-1500:]}".strip()
        return
    value = res.value or {}
    if "items_s" in value:  # the checks' own work; the rest of the stage is the sandbox's cost
        v.checks_items_s = float(value["items_s"])
    _add_phases(v, "checks", _pytest_phases(value.get("stamps")))
    if value.get("exit_code") != 0:
        v.failed_stage, v.reason, v.detail = _classify_checks(value)
        if v.failed_stage == "properties":
            v.stages.append("examples")
        return
    v.stages += ["examples", "properties"]
    # -- benchmarks: the parent's clock, fresh inputs per call, outputs checked after ----
    harness = _harness_file(setup)
    speedups = []
    with _stage_clock(v, "benchmarks"):
        for i, bc in enumerate(setup.bench_cases):
            step = f"benchmarks {i + 1}/{len(setup.bench_cases)} {bc['label']}"
            common = timing_args(setup, i, harness=harness, template=template)
            progress(f"{step}: the candidate, {setup.calls} calls")
            t = sandbox.time_calls(f"{cfile}:{setup.function}", **common)
            _add_phases(v, "candidate", t.phases)
            v.violations += t.violations
            if not t.ok:
                v.failed_stage, v.reason = "benchmarks", t.status
                v.detail = f"{bc['label']}: {t.reason}"
                return
            r, cached = _reference_timing(setup, f"{harness}:reference", common, progress, step)
            if not cached:
                _add_phases(v, "reference", r.phases)
            if not r.ok:  # the reference itself failing is our problem, not the candidate's
                v.failed_stage, v.reason = "benchmarks", "reference failed"
                v.detail = f"{bc['label']}: the spec's reference failed to run: {r.reason}"
                return
            cpu = cpu_clock(setup, t, r)
            (samples, median), (ref_samples, ref_median) = figures(t, cpu), figures(r, cpu)
            timing = {
                "case": bc["label"],
                "samples_s": samples,
                "reference_samples_s": ref_samples,
                # the untimed warm-up calls (kernel work too, e.g. the interpreter's first launch)
                "warmup_samples_s": [x.parent_s for x in t.calls if x.warmup],
                "reference_warmup_samples_s": [x.parent_s for x in r.calls if x.warmup],
                "median_s": median,
                "reference_median_s": ref_median,
                # False: the reference's samples are this run's earlier timing of it (Setup.reference_once)
                "reference_timed_here": not cached,
                "floor_s": t.floor.get("median_s"),
                "speedup": ref_median / median,
                "clock": clock_name(setup.device, cpu),
            }
            if cpu:  # the wall clock too, for the record
                timing |= {
                    "wall_samples_s": t.times_s,
                    "wall_median_s": t.median_s,
                    "reference_wall_samples_s": r.times_s,
                    "reference_wall_median_s": r.median_s,
                }
            if setup.current:
                # the kernel it would replace, on the same inputs: its failure is the
                # repository's problem, reported beside the timing, not the candidate's
                progress(f"{step}: the current implementation {setup.current}")
                cur = sandbox.time_calls(setup.current, **common)
                timing["current"] = setup.current
                if cur.ok and (not cpu or cur.cpu_times_s):
                    samples, median = figures(cur, cpu)
                    timing |= {"current_samples_s": samples, "current_median_s": median}
                elif cur.ok:
                    timing["current_error"] = "its CPU time could not be read (the candidate's was)"
                else:
                    timing["current_error"] = f"{cur.status}: {cur.reason}"
            v.timings.append(timing)
            speedups.append(timing["speedup"])
    v.stages.append("benchmarks")
    v.passed = True
    v.speedup = geomean(speedups)
    # The search ranks candidates on their own times (calls per second, geometric mean over
    # the cases), the same medians the PR's before/after evidence compares. Dividing by the
    # reference timed beside each candidate would add that reference's noise and cancel no
    # drift on a CPU, where the reference is a native torch op and the candidate runs in
    # Triton's interpreter: the ratio of two 1.5x-apart kernels was seen to swing 1.2-1.5x.
    v.score = geomean([1.0 / t["median_s"] for t in v.timings])


def candidate_file(c: Candidate, setup: Setup, source: str | None = None) -> Path:
    """The candidate's module, written under the run's working folder (outside any sandbox;
    each timing copies it in): ``source`` when given, else :func:`module_source`."""
    cdir = setup.workdir / "candidates"
    cdir.mkdir(parents=True, exist_ok=True)
    path = cdir / f"cand_{c.id}.py"
    path.write_text(module_source(c, setup) if source is None else source)
    return path


def timing_args(
    setup: Setup, case: int, *, harness: Path | None = None, template=None, seed: int | None = None
) -> dict:
    """The keyword arguments of :func:`pytest_aina.sandbox.time_calls` for benchmark case
    number ``case`` of ``setup``: every timing of the loop (a candidate, the reference, the
    current kernel, the side-by-side confirmation) takes them from here, so that what they
    compare ran the same way, on the same inputs call for call (same ``seed``, default: the
    case's)."""
    bc = setup.bench_cases[case]
    harness = harness or _harness_file(setup)
    return dict(
        make_inputs=f"{harness}:make_inputs",
        reference=f"{harness}:reference",
        check=f"{harness}:check",
        params={"dims": bc["dims"], "dtype": bc["dtype"]},
        calls=setup.calls,
        warmup=setup.warmup,
        seed=setup.seed * 1000 + case if seed is None else seed,
        pythonpath=[str(setup.repo)],
        read_paths=[str(setup.repo)],
        env=child_env(setup.device),
        limits=sandbox.Limits(wall_s=setup.bench_wall_s, memory_bytes=setup.memory_bytes),
        min_plausible_s=_min_plausible(setup, bc),
        template=template,
    )


def cpu_clock(setup: Setup, *timings: sandbox.TimingResult) -> bool:
    """Whether timings compared with each other are read on the sandbox's CPU clock: on a
    CPU device, when every one of them could read it (else all on the wall clock)."""
    return setup.device == "cpu" and all(t.cpu_times_s for t in timings)


def figures(t: sandbox.TimingResult, cpu: bool) -> tuple[list[float], float]:
    """(samples, median) of ``t`` on the chosen clock (:func:`cpu_clock`)."""
    return (t.cpu_times_s, t.cpu_median_s) if cpu else (t.times_s, t.median_s)


def clock_name(device: str, cpu: bool) -> str:
    """What a timing's samples are. On a CPU device they are the sandbox's CPU time per
    call when it can be read: Triton's interpreter does the kernel's work on the CPU, and
    there the CPU time is that work, while the wall clock also counts the time the call
    waited for a core. On 2 cores with another test's processes running beside it, the
    wall clock ranked a block size 2.1x faster than the baseline (on either clock, alone)
    at 0.67x of it (CI, 2026-12-02); with three busy processes beside it a call took 2.10x
    its wall time alone and 1.05x its CPU time (benchmarks/cpu_clock_under_load.py). On a
    GPU the CPU only waits, so the wall clock, synchronised per call, is the figure."""
    if device != "cpu":
        return "parent wall clock over a pipe, GPU synchronised per call"
    if cpu:
        return "sandbox CPU time per call (all its threads and processes, read by the parent); Triton interpreter on CPU (not GPU evidence)"
    return "parent wall clock over a pipe; Triton interpreter on CPU (not GPU evidence)"


_references: dict[tuple, sandbox.TimingResult] = {}
_reference_locks: dict[tuple, threading.Lock] = {}
_reference_locks_lock = threading.Lock()


def _reference_key(setup: Setup, common: dict) -> tuple | None:
    """What a reference timing depends on: the spec (its file's bytes), the reference's
    source (its module's bytes), the case, the device and the protocol's settings. None
    when the source cannot be found (then it is timed each time)."""
    module = str(setup.spec.reference).partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
        origin = found.origin if found else None
        with open(setup.spec_path, "rb") as f:
            spec_bytes = f.read()
        with open(origin or "", "rb") as f:
            ref_bytes = f.read()
    except (ImportError, OSError, ValueError):
        return None
    digest = hashlib.sha256(spec_bytes + b"\0" + ref_bytes).hexdigest()
    settings = {k: common[k] for k in ("params", "calls", "warmup", "seed", "env", "pythonpath")}
    return (
        # per process: a forked pool worker inherits the dicts, and could inherit a lock
        # another thread held at the fork, so it keys (and locks) its own
        os.getpid(),
        str(Path(setup.spec_path).resolve()),
        setup.spec.reference,
        digest,
        setup.device,
        json.dumps(settings, sort_keys=True, default=str),
    )


def _reference_timing(setup: Setup, entry: str, common: dict, progress, step: str):
    """(the spec's reference timed on this case, whether it came from this run's cache).

    The reference is trusted code whose timing does not depend on the candidate: with
    ``Setup.reference_once`` it is timed once per run (per process: a Ray worker keeps its
    own) and case, and every later candidate reuses that timing. Only the parent reads or
    writes the cache; no candidate code runs in the reference's sandbox or sees its
    figures. A failed timing is not kept (the next candidate tries again)."""
    key = _reference_key(setup, common) if setup.reference_once else None
    if key is None:
        progress(f"{step}: the spec's reference")
        return sandbox.time_calls(entry, **common), False
    with _reference_locks_lock:
        lock = _reference_locks.setdefault(key, threading.Lock())
    with lock:  # two workers starting together time it once
        got = _references.get(key)
        if got is not None:
            progress(f"{step}: the spec's reference (timed earlier in this run)")
            return got, True
        progress(f"{step}: the spec's reference")
        r = sandbox.time_calls(entry, **common)
        if r.ok:
            _references[key] = r
        return r, False


def _add_phases(v: Verdict, run: str, phases: dict) -> None:
    into = v.phases.setdefault(run, {})
    for k, s in phases.items():
        into[k] = into.get(k, 0.0) + s


def _pytest_phases(stamps) -> dict:
    """pytest's steps in the checks' child (``run_checks``'s stamps): its configuration,
    the collection, the items (their own work is ``checks_items_s``), the session's end."""
    if not isinstance(stamps, dict):
        return {}
    names = ("start", "configured", "collected", "ran", "returned")
    got = [(n, stamps[n]) for n in names if isinstance(stamps.get(n), (int, float))]
    return {f"pytest.{n1}": round(t1 - t0, 6) for (_, t0), (n1, t1) in zip(got, got[1:])}


def geomean(xs: list[float]) -> float | None:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def _min_plausible(setup: Setup, bc: dict) -> float | None:
    """The fastest a call could be: bytes it must move over the device's peak bandwidth."""
    if not setup.hbm_bytes_per_s:
        return None
    nbytes = setup.spec.bytes_for(bc["dims"], bc["dtype"])
    return nbytes / setup.hbm_bytes_per_s if nbytes else None


def workdir_for(repo: Path, name: str) -> Path:
    top = Path(repo) / ".aina"
    top.mkdir(exist_ok=True)
    ignore = top / ".gitignore"
    if not ignore.exists():  # scratch space: never shows up in the user's `git status`
        ignore.write_text("# pytest-aina's working files (checkpoints, candidates, PR bodies)\n*\n")
    path = top / "eval" / name
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)
    return path
