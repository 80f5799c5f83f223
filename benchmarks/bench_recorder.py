"""What recording and dispatch cost per call, next to the bare call. A benchmark, not a test:
it asserts nothing about time. Not collected by the default run (outside ``tests/``, and not test_*):

    .venv/bin/python -m pytest benchmarks/bench_recorder.py -p no:randomly \\
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds --benchmark-sort=name

pytest-benchmark prints each column's ratio to the fastest row of its group in
parentheses: the bare call is the fastest, so the ratios are the overheads. Groups:

* ``1 noop``: a Python function doing nothing, the worst case (all of it is overhead);
* ``2 torch.add``: a small CPU torch op, a few microseconds like a GPU kernel's launch;
* ``3 dispatch``: a toy kernel through ``pytest_aina.runtime.dispatch``, with and without a recorder;
* ``4 softmax``: the real kernel (Triton's interpreter on this CPU, milliseconds).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

from pytest_aina.runtime import Recorder  # noqa: E402
from pytest_aina.runtime.dispatch import dispatcher  # noqa: E402


def noop(x):
    return x


def dims_of(x):
    return {"M": x.shape[0], "N": x.shape[1]}


@pytest.fixture
def recorder(tmp_path):
    rec = Recorder("bench", path=tmp_path / "bench.jsonl", window_s=3600)
    yield rec
    rec.close()


@pytest.fixture
def installed(recorder):
    recorder.install()
    yield recorder
    from pytest_aina.runtime import uninstall

    uninstall(recorder)


X = torch.zeros(16, 16)


def _measured(rec, fn, enabled):
    rec.enabled = enabled
    return rec.measure("bench", dims=dims_of)(fn)


# -- 1: a no-op ------------------------------------------------------------------------------


@pytest.mark.benchmark(group="1 noop")
def test_noop_a_bare(benchmark):
    benchmark(noop, X)


@pytest.mark.benchmark(group="1 noop")
def test_noop_b_measure_disabled(benchmark, recorder):
    benchmark(_measured(recorder, noop, False), X)


@pytest.mark.benchmark(group="1 noop")
def test_noop_c_measure_enabled(benchmark, recorder):
    benchmark(_measured(recorder, noop, True), X)


# -- 2: a small torch op -------------------------------------------------------------------


def add(x):
    return torch.add(x, x)


@pytest.mark.benchmark(group="2 torch.add")
def test_add_a_bare(benchmark):
    benchmark(add, X)


@pytest.mark.benchmark(group="2 torch.add")
def test_add_b_measure_disabled(benchmark, recorder):
    benchmark(_measured(recorder, add, False), X)


@pytest.mark.benchmark(group="2 torch.add")
def test_add_c_measure_enabled(benchmark, recorder):
    benchmark(_measured(recorder, add, True), X)


# -- 3: dispatch -----------------------------------------------------------------------------


def toy_generic(x):
    return x


@pytest.mark.benchmark(group="3 dispatch")
def test_dispatch_a_bare(benchmark):
    benchmark(toy_generic, X)


@pytest.mark.benchmark(group="3 dispatch")
def test_dispatch_b_no_recorder(benchmark, tmp_path):
    d = dispatcher("toy", dims_of, toy_generic, table=tmp_path / "none.yaml", dims_from_first=True)
    d(X)  # the first call resolves; the benchmark sees the cached path
    benchmark(d, X)
    assert d.resolutions == 1


@pytest.mark.benchmark(group="3 dispatch")
def test_dispatch_c_recorder(benchmark, tmp_path, installed):
    d = dispatcher("toy", dims_of, toy_generic, table=tmp_path / "none.yaml", dims_from_first=True)
    d(X)
    benchmark(d, X)


# -- 4: the real kernel ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    return torch.randn(4, 64)


@pytest.mark.benchmark(group="4 softmax")
def test_softmax_a_generic(benchmark, small):
    from kernels.softmax import softmax_generic

    benchmark(softmax_generic, small)


@pytest.mark.benchmark(group="4 softmax")
def test_softmax_b_dispatch(benchmark, small):
    from kernels.softmax import softmax

    benchmark(softmax, small)


@pytest.mark.benchmark(group="4 softmax")
def test_softmax_c_dispatch_recorded(benchmark, small, installed):
    from kernels.softmax import softmax

    benchmark(softmax, small)
