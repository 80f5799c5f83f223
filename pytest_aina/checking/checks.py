"""Running one case of a spec: the kernel, the reference, the comparison, the invariants.

This is the single code path every correctness item takes, whether the case is a pinned
example, a Hypothesis draw, or a case given with ``--aina-case``; the evolution loop's
evaluator goes through it too, so "passes in the search" means "passes in CI".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from pytest_aina import interpreter
from pytest_aina.checking.cases import Inputs, call, make_inputs
from pytest_aina.checking.compare import Mismatch, compare
from pytest_aina.invariants import Observation
from pytest_aina.spec.model import Case, Invariant, Spec


class CaseFailure(AssertionError):
    """One case broke a boundary; carries everything a readable report needs."""

    def __init__(self, spec: Spec, case: Case, what: str, detail: str, mismatch: Mismatch | None = None):
        self.spec, self.case, self.what, self.detail, self.mismatch = spec, case, what, detail, mismatch
        super().__init__(f"{spec.name}: {what} failed for {case.label()} (seed {case.seed}):\n{detail}")


@dataclass
class Kernel:
    """The two functions a spec compares, resolved once per session."""

    impl: Callable
    reference: Callable
    device: str


def run_case(spec: Spec, kernel: Kernel, case: Case, *, reference: bool = True,
             invariants: Iterable[Invariant] = ()) -> None:
    """Run ``case``; raise :class:`CaseFailure` on the first boundary it breaks."""
    inputs = make_inputs(spec, case, kernel.device)
    before = inputs.snapshot()
    try:
        # the sanitizer's findings, and a crash isolated by the plugin, name this case
        with interpreter.case(case.to_arg()):
            out = call(kernel.impl, spec, inputs)
    except Exception as exc:  # the kernel's own error is a finding, not a crash of ours
        raise CaseFailure(spec, case, "call", f"the implementation raised {type(exc).__name__}: {exc}") from exc
    # The reference gets its own copy: a kernel that mutates its input must not also
    # corrupt the answer it is compared with.
    ref = call(kernel.reference, spec, make_inputs(spec, case, kernel.device))
    if reference:
        m = compare(out, ref, spec.tolerance[case.dtype])
        if m:
            raise CaseFailure(spec, case, "reference check", m.describe(), m)
    obs = observe(spec, kernel, case, inputs, before, out, ref)
    for inv in invariants:
        msg = inv.definition.check(obs, inv.params)
        if msg:
            raise CaseFailure(spec, case, f"invariant {inv.label}", msg)


def observe(spec: Spec, kernel: Kernel, case: Case, inputs: Inputs, before: dict, out, ref) -> Observation:
    """What the invariants see of one call: the invariants know neither specs nor kernels,
    so the tolerance and a second call come to them as callables."""

    def close(a, b) -> str | None:
        m = compare(a, b, spec.tolerance[case.dtype])
        return m.describe() if m else None

    def again():
        return call(kernel.impl, spec, make_inputs(spec, case, kernel.device))

    return Observation(out=out, ref=ref, inputs=inputs.tensors, buffers=inputs.buffers, before=before,
                       case=case, close=close, again=again)
