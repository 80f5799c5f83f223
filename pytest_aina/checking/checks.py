"""Running one case of a spec: the kernel, the reference, the comparison, the invariants.

This is the single code path every correctness item takes, whether the case is a pinned
example, a Hypothesis draw, or a case given with ``--aina-case``; the evolution loop's
evaluator goes through it too, so "passes in the search" means "passes in CI".

A spec without ``outputs`` has one output (or a tuple compared element-wise) checked with
``tolerance``; with ``outputs`` each named output is checked with its own tolerance and
invariants, and a failure names it. An output written ``in_place`` into an input is read
from that input after the call. With ``gradients`` the same call is differentiated: an
upstream gradient drawn like an input is pushed back through the implementation and the
reference, and each input's gradient is compared with its own tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pytest_aina import interpreter
from pytest_aina.checking.cases import Inputs, call, make_inputs, upstream
from pytest_aina.checking.compare import Mismatch, compare
from pytest_aina.imports import resolve
from pytest_aina.invariants import Observation
from pytest_aina.spec.model import Case, Gradient, Invariant, Output, Spec


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


@dataclass
class _Call:
    """One call of a function on its own copy of the inputs."""

    inputs: Inputs
    leaves: dict[str, Any]  # the tensors passed (those with gradients require grad)
    raw: Any  # what the function returned
    outs: list | None  # the named outputs in spec order (in-place ones read back); None: unnamed


def run_case(
    spec: Spec, kernel: Kernel, case: Case, *, reference: bool = True, invariants: Iterable[Invariant] = ()
) -> None:
    """Run ``case``; raise :class:`CaseFailure` on the first boundary it breaks."""
    inputs = make_inputs(spec, case, kernel.device)
    before = inputs.snapshot()
    try:
        # the sanitizer's findings, and a crash isolated by the plugin, name this case
        with interpreter.case(case.to_arg()):
            impl = _call(kernel.impl, spec, case, inputs, implementation=True)
    except _WrongOutputs as exc:
        raise CaseFailure(spec, case, "outputs", str(exc)) from None
    except Exception as exc:  # the kernel's own error is a finding, not a crash of ours
        raise CaseFailure(spec, case, "call", f"the implementation raised {type(exc).__name__}: {exc}") from exc
    # The reference gets its own copy: a kernel that mutates its input must not also
    # corrupt the answer it is compared with.
    ref = _call(kernel.reference, spec, case, make_inputs(spec, case, kernel.device), implementation=False)
    if reference:
        for name, m in _mismatches(spec, kernel, case, impl, ref):
            what = "reference check" if name is None else f"reference check of output {name}"
            raise CaseFailure(spec, case, what, m.describe(), m)
        if spec.gradients:
            _check_gradients(spec, kernel, case, impl, ref)
    obs = observe(spec, kernel, case, inputs, before, _result(impl), _result(ref))
    for inv in invariants:
        msg = inv.definition.check(obs, inv.params)
        if msg:
            raise CaseFailure(spec, case, f"invariant {inv.label}", msg)
    if reference:
        for i, out in enumerate(spec.outputs):
            if not out.invariants:
                continue
            own = observe(spec, kernel, case, inputs, before, impl.outs[i], ref.outs[i], output=i)
            for inv in out.invariants:
                msg = inv.definition.check(own, inv.params)
                if msg:
                    raise CaseFailure(spec, case, f"invariant {inv.label} of output {out.name}", msg)


class _WrongOutputs(Exception):
    pass


def _call(fn: Callable, spec: Spec, case: Case, inputs: Inputs, *, implementation: bool) -> _Call:
    wanted = {g.input for g in spec.gradients}
    leaves = {k: (v.detach().requires_grad_() if k in wanted else v) for k, v in inputs.tensors.items()}
    raw = call(fn, spec, inputs, case, leaves)
    return _Call(inputs, leaves, raw, _named(spec, raw, inputs, in_place=implementation))


def _named(spec: Spec, raw: Any, inputs: Inputs, *, in_place: bool) -> list | None:
    """The outputs in spec order. The implementation returns the outputs that are not
    in place (a lone one bare, or in a tuple), or all of them; the reference all of them."""
    if not spec.outputs:
        return None
    got = list(raw) if isinstance(raw, (tuple, list)) else ([] if raw is None else [raw])
    returned = [o for o in spec.outputs if not (in_place and o.in_place)]
    if len(got) == len(spec.outputs):
        returned = list(spec.outputs)
    if len(got) != len(returned):
        names = ", ".join(o.name for o in returned)
        who = "implementation" if in_place else "reference"
        raise _WrongOutputs(f"the {who} returned {len(got)} outputs, expected {len(returned)} ({names})")
    by_name = dict(zip((o.name for o in returned), got))
    out = []
    for o in spec.outputs:
        if in_place and o.in_place:
            out.append(inputs.tensors[o.in_place])  # what the kernel left in that input
        else:
            out.append(_tensor(by_name[o.name]))
    return out


def _tensor(value):
    import torch

    return value if isinstance(value, torch.Tensor) or value is None else torch.as_tensor(value)


def _result(c: _Call):
    """What invariants see as ``out``: the named outputs as a tuple, or what was returned."""
    return c.raw if c.outs is None else tuple(c.outs)


# ---------------------------------------------------------------------------------------
# Outputs against the reference


def _mismatches(spec: Spec, kernel: Kernel, case: Case, impl: _Call, ref: _Call) -> Iterable[tuple]:
    """(output name or None, Mismatch) for each output off the reference."""
    if impl.outs is None:
        m = compare(impl.raw, ref.raw, spec.tolerance[case.dtype])
        if m:
            yield None, m
        return
    for i, out in enumerate(spec.outputs):
        tol = spec.tolerance_of(out, case.dtype).at(case.dim_map)
        mag = _output_magnitude(spec, kernel, case, out, i) if tol.ctol and out.magnitude else None
        m = compare(impl.outs[i], ref.outs[i], tol, name=out.name, magnitude=mag)
        if m:
            yield out.name, m


def _abs_inputs(spec: Spec, case: Case, dev: str) -> Inputs:
    """The case's inputs with every float input replaced by its magnitude, in float32."""
    inputs = make_inputs(spec, case, dev)
    tensors = {k: (v.abs().float() if v.is_floating_point() else v) for k, v in inputs.tensors.items()}
    return Inputs(tensors, inputs.buffers)


def _output_magnitude(spec: Spec, kernel: Kernel, case: Case, out: Output, index: int):
    """What produced each element of ``out``: by default the reference on |inputs| (for a
    sum of products, the sum of the terms' magnitudes)."""
    if out.magnitude == "abs_inputs":
        inputs = _abs_inputs(spec, case, kernel.device)
        raw = call(kernel.reference, spec, inputs, case)
    else:
        inputs = make_inputs(spec, case, kernel.device)
        raw = call(resolve(out.magnitude), spec, inputs, case)
    return raw[index] if isinstance(raw, (tuple, list)) else raw


# ---------------------------------------------------------------------------------------
# Gradients


def _differentiable(c: _Call) -> list[tuple[int, Any]]:
    outs = c.outs if c.outs is not None else (list(c.raw) if isinstance(c.raw, (tuple, list)) else [c.raw])
    return list(enumerate(outs))


def _check_gradients(spec: Spec, kernel: Kernel, case: Case, impl: _Call, ref: _Call) -> None:
    b = _backward(spec, kernel, case, impl, ref)
    try:
        got = b.run()
    except Exception as exc:
        raise CaseFailure(
            spec, case, "gradient", f"the implementation's backward raised {type(exc).__name__}: {exc}"
        ) from exc
    b.check(got)


@dataclass
class Backward:
    """One call's backward pass, ready to run: :meth:`run` differentiates the
    implementation's outputs for the drawn upstream gradient (what a ``phase: backward``
    benchmark times), :meth:`check` compares what it gave with the reference's autograd,
    each gradient with its own tolerance and invariants, raising :class:`CaseFailure`."""

    spec: Spec
    kernel: Kernel
    case: Case
    impl: _Call
    ref: _Call
    outs: list  # the implementation's outputs that are differentiated
    refs: list  # the reference's
    up_impl: list  # the upstream gradients, one identical draw for each side
    up_ref: list

    def run(self) -> tuple:
        import torch

        wrt = [self.impl.leaves[g.input] for g in self.spec.gradients]
        return torch.autograd.grad(self.outs, wrt, grad_outputs=self.up_impl, allow_unused=True)

    def check(self, got) -> None:
        import torch

        spec, case, impl, ref = self.spec, self.case, self.impl, self.ref
        wrt = [ref.leaves[g.input] for g in spec.gradients]
        expected = torch.autograd.grad(self.refs, wrt, grad_outputs=self.up_ref, allow_unused=True)
        for g, a, b in zip(spec.gradients, got, expected):
            leaf = ref.leaves[g.input]
            b = torch.zeros_like(leaf) if b is None else b
            if a is None:
                raise CaseFailure(
                    spec, case, f"gradient of {g.input}", f"the implementation gave no gradient for {g.input}"
                )
            tol = spec.tolerance_of(g, case.dtype).at(case.dim_map)
            mag = _gradient_magnitude(spec, self.kernel, case, g, self.refs) if tol.ctol and g.magnitude else None
            m = compare(a, b, tol, name=f"grad {g.input}", magnitude=mag)
            if m:
                raise CaseFailure(spec, case, f"gradient of {g.input}", m.describe(), m)
            if g.in_place(spec.args_for(case)):
                # what the kernel left in the input's view must be that gradient too
                m = compare(impl.inputs.tensors[g.input], b, tol, name=f"grad {g.input} in place", magnitude=mag)
                if m:
                    raise CaseFailure(spec, case, f"gradient of {g.input} written in place", m.describe(), m)
            if g.invariants:
                own = _gradient_observation(spec, case, impl, a, b, tol, mag)
                for inv in g.invariants:
                    msg = inv.definition.check(own, inv.params)
                    if msg:
                        raise CaseFailure(spec, case, f"invariant {inv.label} of the gradient of {g.input}", msg)


def prepare_backward(spec: Spec, kernel: Kernel, case: Case) -> Backward:
    """The implementation and the reference called on ``case`` (each on its own inputs), and
    the upstream gradients drawn: the backward pass of :func:`run_case`, not yet run."""
    inputs = make_inputs(spec, case, kernel.device)
    with interpreter.case(case.to_arg()):
        impl = _call(kernel.impl, spec, case, inputs, implementation=True)
    ref = _call(kernel.reference, spec, case, make_inputs(spec, case, kernel.device), implementation=False)
    return _backward(spec, kernel, case, impl, ref)


def _backward(spec: Spec, kernel: Kernel, case: Case, impl: _Call, ref: _Call) -> Backward:
    # Upstream gradients for the reference's float outputs that depend on the inputs.
    pairs = [(i, r) for i, r in _differentiable(ref) if r is not None and r.requires_grad]
    if not pairs:
        raise CaseFailure(spec, case, "gradient", "the reference's outputs do not depend on the gradient inputs")
    impl_outs = dict(_differentiable(impl))
    names = [spec.outputs[i].name if spec.outputs else f"output[{i}]" for i, _ in pairs]
    for (i, _), name in zip(pairs, names):
        o = impl_outs.get(i)
        if o is None or not getattr(o, "requires_grad", False):
            raise CaseFailure(
                spec, case, "gradient", f"the implementation's {name} does not require grad: it has no backward"
            )
    refs = [r for _, r in pairs]
    # Two identical draws: a backward that writes into its upstream gradient must not
    # change what the reference sees.
    return Backward(
        spec,
        kernel,
        case,
        impl,
        ref,
        outs=[impl_outs[i] for i, _ in pairs],
        refs=refs,
        up_impl=upstream(spec, case, refs, kernel.device),
        up_ref=upstream(spec, case, refs, kernel.device),
    )


def _gradient_observation(spec: Spec, case: Case, impl: _Call, grad, expected, tol, magnitude) -> Observation:
    """What a gradient's own invariants see: the gradient as the output, the reference's as
    ref. A gradient is not called again: ``again`` raises (a spec should not ask for it)."""

    def close(x, y) -> str | None:
        m = compare(x, y, tol, name="gradient", magnitude=magnitude)
        return m.describe() if m else None

    def again():
        raise AssertionError("a gradient's invariants cannot call the kernel again (deterministic applies to outputs)")

    return Observation(
        out=grad,
        ref=expected,
        inputs=impl.inputs.tensors,
        buffers=impl.inputs.buffers,
        before={},
        case=case,
        close=close,
        again=again,
    )


def _gradient_magnitude(spec: Spec, kernel: Kernel, case: Case, g: Gradient, refs: list):
    """The gradient of the reference at |inputs| for |upstream| (abs_inputs), or
    ``function(*inputs, *upstream, **args)``."""
    import torch

    ups = [u.abs().float() for u in upstream(spec, case, refs, kernel.device)]
    if g.magnitude != "abs_inputs":
        inputs = make_inputs(spec, case, kernel.device)
        return resolve(g.magnitude)(*inputs.tensors.values(), *ups, **spec.args_for(case))
    inputs = _abs_inputs(spec, case, kernel.device)
    c = _call(kernel.reference, spec, case, inputs, implementation=False)
    outs = [r for _, r in _differentiable(c) if r is not None and r.requires_grad]
    (mag,) = torch.autograd.grad(
        outs, [c.leaves[g.input]], grad_outputs=[u.to(o.dtype) for u, o in zip(ups, outs)], allow_unused=True
    )
    return torch.zeros_like(c.leaves[g.input]) if mag is None else mag.abs()


# ---------------------------------------------------------------------------------------
# What invariants see


def observe(
    spec: Spec, kernel: Kernel, case: Case, inputs: Inputs, before: dict, out, ref, output: int | None = None
) -> Observation:
    """What the invariants see of one call: the invariants know neither specs nor kernels,
    so the tolerance and a second call come to them as callables. ``output``: the index of
    the one named output they look at (its own invariants), None for all of them."""

    def close(a, b) -> str | None:
        if not spec.outputs:
            m = compare(a, b, spec.tolerance[case.dtype])
            return m.describe() if m else None
        indices = range(len(spec.outputs)) if output is None else [output]
        pairs = zip(indices, a, b) if output is None else [(output, a, b)]
        for i, x, y in pairs:
            o = spec.outputs[i]
            tol = spec.tolerance_of(o, case.dtype).at(case.dim_map)
            mag = _output_magnitude(spec, kernel, case, o, i) if tol.ctol and o.magnitude else None
            m = compare(x, y, tol, name=o.name, magnitude=mag)
            if m:
                return f"output {o.name}: {m.describe()}"
        return None

    def again():
        fresh = make_inputs(spec, case, kernel.device)
        c = _call(kernel.impl, spec, case, fresh, implementation=True)
        result = _result(c)
        return result if output is None else result[output]

    in_place = {o.in_place: i for i, o in enumerate(spec.outputs) if o.in_place}
    # a gradient written into its input is no output: index -1 (no output may alias it)
    in_place |= {g.input: -1 for g in spec.gradients if g.in_place(spec.args_for(case))}
    return Observation(
        out=out,
        ref=ref,
        inputs=inputs.tensors,
        buffers=inputs.buffers,
        before=before,
        case=case,
        close=close,
        again=again,
        in_place=in_place,
    )
