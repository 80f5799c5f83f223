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

from typing import Callable

import pytest

from pytest_aina.checking.checks import CaseFailure
from pytest_aina.plugin import runner
from pytest_aina.plugin.session import AinaSession, aina_session
from pytest_aina.spec.model import Case, Spec, SpecError, load_spec

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
        spec = load_spec(self.path)
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

    def reportinfo(self):
        return self.path, (self.case.line - 1 if self.case and self.case.line else 0), f"{self.spec.name}: {self.name}"

    def repr_failure(self, excinfo):
        failures = [e for e in _leaves(excinfo.value) if isinstance(e, CaseFailure)]
        if not failures:
            return super().repr_failure(excinfo)
        return "\n\n".join(self._describe(f) for f in failures)

    def _describe(self, f: CaseFailure) -> str:
        c = f.case
        lines = [
            f"{self.spec.name}: {f.what} failed  ({self.path.name}:{self.spec.line_of('name') or 1})",
            f"  case: {', '.join(f'{k}={v}' for k, v in c.dims)}"
            + (f", batch={'x'.join(map(str, c.batch))}" if c.batch else "")
            + f", dtype={c.dtype}, layout={c.layout}, values={c.values}, seed={c.seed}",
        ]
        lines += [f"  {line}" for line in f.detail.splitlines()]
        lines += ["  re-run just this case:", f"    {aina_session(self.config).repro_command(self, c)}"]
        return "\n".join(lines)


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _leaves(e)
    else:
        yield exc


def _item(parent, spec: Spec, kind: str, name: str, fn: Callable,
          case: Case | None = None, gpu: bool = False) -> SpecItem:
    item = SpecItem.from_parent(parent, name=f"{kind}[{name}]", callobj=fn)
    item.spec, item.kind, item.case = spec, kind, case
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
        yield _item(parent, spec, "invariant", inv.label, runner.invariant(session, spec, inv))
    if session.bench:
        for b in spec.benchmarks:
            gpu = "cpu" not in b.devices
            yield _item(parent, spec, "bench", b.label(), runner.bench(session, spec, b, "implementation"),
                        b.as_case(), gpu=gpu)
            yield _item(parent, spec, "bench-reference", b.label(),
                        runner.bench(session, spec, b, "reference"), b.as_case(), gpu=gpu)

