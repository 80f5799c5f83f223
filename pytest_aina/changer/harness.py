"""The evaluator's functions that run inside the sandbox, or in the parent beside it.

* :func:`run_checks` runs in the sandboxed child: ``pytest --aina`` on the spec with the
  candidate in place of the implementation (exactly the checks CI runs), and returns
  what happened per item.
* :func:`make_inputs`, :func:`reference` and :func:`check` are the seam of the parent-side
  timing protocol (:func:`pytest_aina.sandbox.time_calls`): inputs made from a seed in
  both processes, the reference and the comparison in the parent only, where the
  candidate cannot reach them.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import sys
import time
from functools import cache
from typing import Any

from pytest_aina.checking import cases
from pytest_aina.checking.compare import compare
from pytest_aina.checking.device import prepare_runtime
from pytest_aina.imports import resolve
from pytest_aina.spec.model import Case, load_spec

#: The pytest plugins :func:`run_checks` loads, by module (the pytest11 entry points
#: ``aina`` and ``hypothesispytest``): the spec's items and Hypothesis's settings. The
#: checks select examples, properties and invariants only, which need no other plugin.
CHECK_PLUGINS = ("pytest_aina.plugin.hooks", "_hypothesis_pytestplugin")
#: pytest's own plugins the checks do without (each costs its registration and fixtures).
CHECK_BLOCKED = (
    *("junitxml", "doctest", "pastebin", "legacypath", "setuponly", "setupplan", "stepwise"),
    # fixtures and collectors no spec item asks for (tmp_path, monkeypatch, recwarn, unittest
    # classes, subtests) and the log capture whose records no verdict reads: each costs its
    # registration and the parsing of its fixtures, ~0.05 s per candidate together. The
    # plugins that can change an outcome stay (warnings, unraisable and thread exceptions:
    # the ini turns warnings into errors), as does faulthandler (a crash's traceback)
    *("tmpdir", "monkeypatch", "recwarn", "unittest", "subtests", "logging"),
)


def run_checks(spec_path: str, impl: str, profile: str, rootdir: str) -> dict:
    """``pytest --aina SPEC --aina-impl IMPL`` (examples, properties, invariants; the first
    failure stops it: a bad candidate costs little). Returns the items' outcomes.

    Runs in the sandbox, whose working folder holds the candidate under ``candidate/``."""
    import pytest  # lazy: the timing protocol's children import this module too, and need no pytest

    # where pytest's own time goes (bench_evaluate.py --phases): monotonic instants
    stamps = {"start": time.monotonic()}
    sys.path.insert(0, os.path.join(os.getcwd(), "candidate"))

    results: list[dict] = []
    items_s = [0.0]  # the items' own time (setup, call, teardown, as pytest timed them)

    class Collect:
        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionstart(self, session):
            stamps["configured"] = time.monotonic()

        @pytest.hookimpl(tryfirst=True)
        def pytest_collection_finish(self, session):
            stamps["collected"] = time.monotonic()

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionfinish(self, session):
            stamps["ran"] = time.monotonic()

        @pytest.hookimpl(trylast=True)
        def pytest_runtest_logreport(self, report):
            items_s[0] += report.duration
            if report.when == "call" or not report.passed:
                results.append(
                    {
                        "nodeid": report.nodeid,
                        "when": report.when,
                        "outcome": report.outcome,
                        "message": str(report.longrepr)[-4000:] if report.failed else "",
                    }
                )

        def pytest_collectreport(self, report):
            if report.failed:
                results.append(
                    {
                        "nodeid": report.nodeid,
                        "when": "collect",
                        "outcome": "failed",
                        "message": str(report.longrepr)[-4000:],
                    }
                )

    # the plugin keeps Hypothesis's and pytest-benchmark's folders under the rootdir's .aina/;
    # in the sandbox the rootdir is the repository, which the candidate may not write to
    here = os.getcwd()
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(here, ".hypothesis"))
    args = [
        spec_path,
        # Only the plugins the checks use: finding the others (reading every installed
        # distribution's entry points), registering them and parsing their fixtures cost
        # ~0.2 s per candidate, and pytest-benchmark runs git three times at configure
        # time. Benchmarks are timed by the parent (time_calls), never by these items.
        "--disable-plugin-autoload",
        "--aina",
        "--aina-impl",
        impl,
        # the sandbox is the isolation already: a crash ends this process and is the verdict
        "--no-aina-isolate",
        "--aina-profile",
        profile,
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        # pytest's own plugins that no check uses (reports, doctests, legacy fixtures, step modes)
        *(arg for p in CHECK_BLOCKED for arg in ("-p", f"no:{p}")),
        "-m",
        "aina_example or aina_property or aina_invariant",
        # the sandbox has imported pytest_aina already: rewriting its asserts is impossible
        "--assert=plain",
        "--rootdir",
        rootdir,
        "-o",
        "addopts=",
    ]
    # given as modules, not ``-p NAME``: pytest would look the name up among every
    # distribution's entry points first, the scan the autoload switch saves
    plugins = [importlib.import_module(m) for m in CHECK_PLUGINS]
    code = pytest.main(args, plugins=[*plugins, Collect()])
    stamps["returned"] = time.monotonic()
    return {"exit_code": int(code), "items": results, "items_s": items_s[0], "stamps": stamps}


def run_coverage(test: str, target: str, rootdir: str) -> dict:
    """The generated test module ``test`` under coverage.py, measuring ``target`` (both
    absolute). Runs in the sandbox like every other execution of a candidate's code: a
    source winner's tests run its code. Returns pytest's exit code, the target's
    statements and missing lines, and the end of pytest's output."""
    import coverage  # lazy, as pytest in run_checks
    import pytest

    cov = coverage.Coverage(data_file=os.path.join(os.getcwd(), "coverage.data"), include=[target])
    out = io.StringIO()
    cov.start()
    try:
        with contextlib.redirect_stdout(out):
            code = pytest.main(
                [
                    test,
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "--rootdir",
                    rootdir,
                    "-o",
                    "addopts=",
                    # pytest_aina is imported already: its asserts cannot be rewritten
                    "--assert=plain",
                ]
            )
    finally:
        cov.stop()
    _, statements, _, missing, _ = cov.analysis2(target)
    return {
        "exit_code": int(code),
        "statements": list(statements),
        "missing": list(missing),
        "output": out.getvalue()[-2000:],
    }


def _spec(spec_path: str):
    # keyed by the file's state: a warm template parsed it before forking this process,
    # and the file may have changed since
    st = os.stat(spec_path)
    return _spec_at(spec_path, st.st_mtime_ns, st.st_size)


@cache
def _spec_at(spec_path: str, mtime_ns: int, size: int):
    return load_spec(spec_path)


def warm(spec_path: str) -> None:
    """Run in the warm template (trusted, before it forks any sandbox): parse and
    validate the spec once, so that a stage forked from it does neither again."""
    _spec(spec_path)


def _case(spec_path: str, seed: int, dims: dict, dtype: str):
    spec = _spec(spec_path)
    return spec, Case(dims=tuple((k, int(dims[k])) for k in spec.dims), dtype=dtype, seed=seed)


def make_inputs(spec_path: str, seed: int, *, dims: dict, dtype: str) -> list | dict:
    """Fresh inputs of one benchmark case from ``seed``: the tensors, then the spec's args,
    as the implementation takes them (see :func:`_arguments`)."""
    spec, case = _case(spec_path, seed, dims, dtype)
    inputs = cases.make_inputs(spec, case, prepare_runtime())
    return _arguments(spec, list(inputs.tensors.values()), spec.args_for(case))


def _arguments(spec, tensors: list, args: dict) -> list | dict:
    """The call's arguments for the timing protocol, which passes either positional or
    keyword arguments, not both. ``pytest --aina`` calls a plain function with the tensors
    in order and the args as keywords (:func:`pytest_aina.checking.cases.call`); the spec
    lists its args in its own order, which need not be the signature's (cross_entropy's
    ``reduction`` comes before ``ignore_index`` in its spec, after it in the function). So
    the args are bound to the implementation's signature, which a candidate replacing it
    keeps: positional in the signature's order, or every argument by name where a keyword-
    only parameter leaves no other way. An ``autograd.Function`` or module class is
    called as ``cases.call`` calls it: the args after the tensors, in spec order."""
    impl = resolve(spec.implementation)
    if isinstance(impl, type):
        return [*tensors, *args.values()]
    try:
        bound = inspect.signature(impl).bind(*tensors, **args)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{spec.implementation} cannot be called with the spec's inputs {[i.name for i in spec.inputs]} "
            f"and args {sorted(args)}: {exc}"
        ) from None
    if not bound.kwargs:
        return list(bound.args)
    return {i.name: t for i, t in zip(spec.inputs, tensors)} | args


def reference(spec_path: str, *args, **kwargs) -> Any:
    return resolve(_spec(spec_path).reference)(*args, **kwargs)


def check(spec_path: str, out, expected, *, dims: dict, dtype: str):
    return compare(out, expected, _spec(spec_path).tolerance[dtype])


def heuristic_config(spec_path: str, *, dims: dict, dtype: str) -> dict | None:
    """The launcher's own meta-parameters at this shape, when the kernel module says
    (``<function>_config(*args) -> dict``); None otherwise. Runs in the sandbox."""
    spec = _spec(spec_path)
    module, _, attr = spec.implementation.partition(":")
    try:
        fn = resolve(f"{module}:{attr}_config")
    except AttributeError:
        return None
    made = make_inputs(spec_path, 0, dims=dims, dtype=dtype)
    cfg = fn(**made) if isinstance(made, dict) else fn(*made)
    return {k: v for k, v in dict(cfg).items() if isinstance(v, (int, float, str, bool))}
