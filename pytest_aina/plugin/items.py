"""From a spec file to pytest items.

A spec becomes ordinary pytest items (``pytest.Function``, so fixtures such as
pytest-benchmark's ``benchmark`` work, and ``-k``/``-m`` select them):

* ``example[<case>]``: the reference check and every invariant at a pinned example;
* ``property[<dtype>]``: Hypothesis over the domain: reference check and every invariant;
* ``invariant[<name>]``: one invariant, on its own, over edge cases and Hypothesis draws;
* ``bench[<case>]`` / ``bench-reference[<case>]`` (with ``--aina-bench``): the
  implementation and the reference timed side by side at a benchmark case.

Nothing here imports torch, triton or the kernels: that happens when an item runs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_aina import interpreter
from pytest_aina.checking.checks import CaseFailure
from pytest_aina.imports import ResolveError
from pytest_aina.plugin import isolation, runner
from pytest_aina.plugin.session import AinaSession, aina_session
from pytest_aina.spec.model import Case, Invariant, Spec, SpecError, load_spec

KIND_MARKERS = {
    "example": "aina_example",
    "property": "aina_property",
    "invariant": "aina_invariant",
    "bench": "aina_bench",
}


class SpecFile(pytest.File):
    """A YAML spec; a spec that fails to load is a collection error naming file, key and line."""

    def collect(self):
        session = aina_session(self.config)
        spec = load_spec(self.path, accepted=session.accepted_specs)
        session.specs[spec.name] = spec
        yield from build_items(self, spec, session)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, SpecError):
            return "invalid spec:\n" + "\n".join(f"  {i}" for i in excinfo.value.issues)
        return super().repr_failure(excinfo)


class SpecItem(pytest.Function):
    """One check of one spec; fails with the case, the error and a re-run command."""

    spec: Spec
    kind: str
    case: Case | None = None
    invariant: Invariant | None = None

    def reportinfo(self):
        return self.path, self._line() - 1, f"{self.spec.name}: {self.name}"

    def _line(self) -> int:
        """The spec line this item checks: its example, invariant, dtypes or benchmark."""
        line = None
        if self.case is not None:
            line = self.case.line
        elif self.invariant is not None:
            line = self.invariant.line
        elif self.kind == "property":
            line = self.spec.line_of("dtypes")
        return line or self.spec.line_of("name") or 1

    def runtest(self):
        session = aina_session(self.config)
        if not session.isolates(self):
            return super().runtest()
        # imported here, in the pytest process, so that every child inherits the modules
        # (a child's imports die with it: Hypothesis alone costs seconds) and an import
        # error is reported as it would be without isolation
        session.kernel(self.spec)
        session.warm_for_children()
        if session.worker is None:
            session.worker = isolation.Worker(*_worker_calls(self.session))
        session.worker.run(self.nodeid)

    def _render_in_child(self, exc: BaseException) -> str:
        excinfo = pytest.ExceptionInfo.from_exception(exc)
        rendered = self.repr_failure(excinfo)
        return rendered if isinstance(rendered, str) else str(rendered)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, isolation.ChildFailure):
            return excinfo.value.text
        if isinstance(excinfo.value, isolation.ChildDied):
            return self._describe_death(excinfo.value)
        if isinstance(excinfo.value, ResolveError):
            return str(excinfo.value)
        failures = [e for e in _leaves(excinfo.value) if isinstance(e, CaseFailure)]
        if not failures:
            return super().repr_failure(excinfo)
        return "\n\n".join(self._describe(f) for f in failures)

    def _describe(self, f: CaseFailure) -> str:
        c = f.case
        violation = f.__cause__ if isinstance(f.__cause__, interpreter.MemoryViolation) else None
        what = "memory check" if violation is not None else f.what
        lines = [
            f"{self.spec.name}: {what} failed  ({self.path.name}:{self._line_of_failure(f)})",
            f"  case: {', '.join(f'{k}={v}' for k, v in c.dims)}"
            + (f", batch={'x'.join(map(str, c.batch))}" if c.batch else "")
            + f", dtype={c.dtype}, layout={c.layout}, values={c.values}, seed={c.seed}",
        ]
        detail = f"{violation}" if violation is not None else f.detail
        lines += [f"  {line}" for line in detail.splitlines()]
        lines += ["  re-run just this case:", f"    {aina_session(self.config).repro_command(self, c)}"]
        return "\n".join(lines)

    def _line_of_failure(self, f: CaseFailure) -> int:
        """The line of what was broken: the invariant, the dtype's tolerance, the implementation."""
        spec = self.spec
        line = None
        if f.what.startswith("invariant "):
            label = f.what[len("invariant ") :]
            line = next((inv.line for inv in spec.invariants if inv.label == label), None)
        elif f.what == "reference check":
            line = spec.line_of("tolerance", f.case.dtype) or spec.line_of("tolerance")
        elif f.what == "call":
            line = spec.line_of("implementation")
        return line or self._line()

    def _describe_death(self, died: isolation.ChildDied) -> str:
        lines = [
            f"{self.spec.name}: the kernel crashed the process ({died.how})  "
            f"({self.path.name}:{self.spec.line_of('implementation') or self._line()})"
        ]
        case = _parse_case(died.case)
        if case is not None:
            lines.append(f"  case in flight: {died.case}")
        else:
            lines.append("  no case had started (the crash came before the first kernel call)")
        lines += [
            "  the Python frames at the crash are in the captured stderr below (faulthandler);",
            "  the sanitizer (--aina-sanitize, the default on a CPU) reports most stray accesses before they crash",
            "  re-run just this case:" if case is not None else "  re-run:",
            f"    {aina_session(self.config).repro_command(self, case or self.case)}",
        ]
        return "\n".join(lines)


def _worker_calls(psession: pytest.Session):
    """What the worker calls, by node id: the items are in its memory from the fork."""
    registry: dict[str, SpecItem] = {}

    def item(nodeid: str) -> SpecItem:
        if not registry:
            registry.update((i.nodeid, i) for i in psession.items if isinstance(i, SpecItem))
        return registry[nodeid]

    def run(nodeid: str) -> None:
        pytest.Function.runtest(item(nodeid))

    def render(nodeid: str, exc: BaseException) -> str:
        return item(nodeid)._render_in_child(exc)

    return run, render


def _parse_case(text: str | None) -> Case | None:
    if not text:
        return None
    try:
        return Case.from_arg(text)
    except ValueError:
        return None


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _leaves(e)
    else:
        yield exc


def _item(
    parent,
    spec: Spec,
    kind: str,
    name: str,
    fn: Callable,
    case: Case | None = None,
    gpu: bool = False,
    invariant: Invariant | None = None,
) -> SpecItem:
    item = SpecItem.from_parent(parent, name=f"{kind}[{name}]", callobj=fn)
    item.spec, item.kind, item.case, item.invariant = spec, kind, case, invariant
    item.add_marker(KIND_MARKERS[kind.split("-")[0]])
    if gpu:
        item.add_marker(pytest.mark.gpu)
    return item


def build_items(parent, spec: Spec, session: AinaSession):
    for case in spec.examples:
        yield _item(parent, spec, "example", case.label(), runner.example(session, spec, case), case)
    for dtype in spec.dtypes:
        yield _item(parent, spec, "property", dtype, runner.prop(session, spec, dtype))
    for inv in spec.invariants:
        yield _item(parent, spec, "invariant", inv.label, runner.invariant(session, spec, inv), invariant=inv)
    if session.bench:
        for b in spec.benchmarks:
            gpu = "cpu" not in b.devices
            yield _item(
                parent, spec, "bench", b.label(), runner.bench(session, spec, b, "implementation"), b.as_case(), gpu=gpu
            )
            yield _item(
                parent,
                spec,
                "bench-reference",
                b.label(),
                runner.bench(session, spec, b, "reference"),
                b.as_case(),
                gpu=gpu,
            )
