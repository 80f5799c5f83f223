"""What each kind of spec item does when it runs.

Each function returns the test function of one item: a closure over the spec and the
session, importing torch, triton and the kernel only when called.
"""

from __future__ import annotations

import pytest

from pytest_aina.checking.checks import run_case
from pytest_aina.plugin import bench as _bench
from pytest_aina.plugin.session import AinaSession
from pytest_aina.spec.model import BenchCase, Case, Invariant, Spec


def _forced(session: AinaSession, dtype: str | None) -> Case | None:
    """The case given with --aina-case, if any, for an item of ``dtype`` (None: any)."""
    case = session.forced_case
    if case is None:
        return None
    if dtype is not None and case.dtype != dtype:
        pytest.skip(f"--aina-case is for dtype {case.dtype}, this item checks {dtype}")
    return case


def example(session: AinaSession, spec: Spec, case: Case):
    def test_example():
        kernel = session.kernel(spec)
        # Pinned examples are the spec's boundaries: they run whatever their size and the
        # device, never skipped for the interpreter's cost (the profile bounds only what
        # Hypothesis draws).
        run_case(spec, kernel, case, invariants=spec.invariants)

    return test_example


def _hypothesis_run(session: AinaSession, spec: Spec, dtype: str, check, n: int) -> None:
    # Hypothesis is imported by the items that draw cases, not when the plugin loads
    from hypothesis import HealthCheck, example, given, settings

    from pytest_aina.checking import strategies

    p = session.profile
    s = settings(
        max_examples=n,
        deadline=None,
        derandomize=p.derandomize,
        database=None if p.derandomize else settings.default.database,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )

    @s
    @given(case=strategies.cases(spec, dtype=dtype, profile=p))
    def prop(case):
        check(case)

    for c in reversed(strategies.edge_cases(spec, dtype=dtype, profile=p)):
        prop = example(case=c)(prop)
    prop()


def prop(session: AinaSession, spec: Spec, dtype: str):
    def test_property():
        kernel = session.kernel(spec)
        forced = _forced(session, dtype)
        check = lambda case: run_case(spec, kernel, case, invariants=spec.invariants)  # noqa: E731
        if forced:
            return check(forced)
        _hypothesis_run(session, spec, dtype, check, session.profile.max_examples)

    return test_property


def invariant(session: AinaSession, spec: Spec, inv: Invariant):
    def test_invariant():
        kernel = session.kernel(spec)
        check = lambda case: run_case(spec, kernel, case, reference=False, invariants=[inv])  # noqa: E731
        forced = _forced(session, None)
        if forced:
            return check(forced)
        for dtype in spec.dtypes:
            _hypothesis_run(session, spec, dtype, check, session.profile.invariant_examples)

    return test_invariant


def bench(session: AinaSession, spec: Spec, bcase: BenchCase, which: str):
    def test_bench(benchmark):
        kernel = session.kernel(spec)
        if session.device not in bcase.devices:
            pytest.skip(f"benchmark case is for {'/'.join(bcase.devices)}; this machine runs {session.device}")
        fn = kernel.impl if which == "implementation" else kernel.reference
        info = _bench.run(benchmark, spec, fn, kernel.reference, bcase, session.device, which=which)
        session.bench_results.append(
            info
            | {
                "median_s": benchmark.stats.stats.median,
                "iqr_s": benchmark.stats.stats.iqr,
                "rounds": benchmark.stats.stats.rounds,
            }
        )

    return test_bench
