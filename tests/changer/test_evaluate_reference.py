"""The spec's reference is timed once per run and case (``Setup.reference_once``): later
candidates reuse that timing, and anything the timing depends on makes a new one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_aina import sandbox
from pytest_aina.changer import evaluate as E

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def timed(monkeypatch):
    """Replaces the sandboxed timing with a recorder: which sessions were started."""
    started: list[dict] = []
    outcomes: list[str] = []

    def fake(entry, **common):
        started.append(common)
        status = outcomes.pop(0) if outcomes else "ok"
        return sandbox.TimingResult(status=status, reason=status, times_s=[0.001 * len(started)])

    monkeypatch.setattr(E.sandbox, "time_calls", fake)
    monkeypatch.setattr(E, "_references", {})
    return started, outcomes


def _setup(tmp_path: Path, spec: Path | None = None, **kw) -> E.Setup:
    return E.Setup(
        spec_path=spec or REPO / "specs" / "softmax.yaml",
        repo=REPO,
        function="softmax",
        generic="kernels.softmax:softmax_generic",
        bench_cases=[],
        workdir=tmp_path,
        **kw,
    )


def _common(**over) -> dict:
    common = dict(params={"dims": {"M": 8, "N": 256}, "dtype": "float32"}, calls=5, warmup=1, seed=0)
    return common | dict(env={"TRITON_INTERPRET": "1"}, pythonpath=[str(REPO)]) | over


def _time(setup, common):
    return E._reference_timing(setup, "h.py:reference", common, lambda line: None, "case")


def test_the_reference_is_timed_once_per_case_and_reused(tmp_path, timed):
    started, _ = timed
    setup = _setup(tmp_path)
    first, cached = _time(setup, _common())
    assert not cached and len(started) == 1
    again, cached = _time(setup, _common())
    assert cached and again is first and len(started) == 1  # the same timing, not a new session
    # another case, another seed, another device environment: each timed anew
    _time(setup, _common(params={"dims": {"M": 16, "N": 256}, "dtype": "float32"}))
    _time(setup, _common(seed=1000))
    _time(setup, _common(env={}))
    assert len(started) == 4


def test_a_changed_spec_or_a_failed_timing_is_timed_again(tmp_path, timed):
    started, outcomes = timed
    spec = tmp_path / "softmax.yaml"
    shutil.copyfile(REPO / "specs" / "softmax.yaml", spec)
    setup = _setup(tmp_path, spec)
    outcomes.append("timeout")
    r, cached = _time(setup, _common())
    assert r.status == "timeout" and not cached
    r, cached = _time(setup, _common())  # a failure is not kept: the next candidate tries again
    assert r.ok and not cached and len(started) == 2
    assert _time(setup, _common())[1]
    spec.write_text(spec.read_text() + "\n# changed\n")  # the spec's bytes are in the key
    assert not _time(setup, _common())[1] and len(started) == 3


def test_reference_once_off_times_it_beside_every_candidate(tmp_path, timed):
    started, _ = timed
    setup = _setup(tmp_path, reference_once=False)
    assert not _time(setup, _common())[1] and not _time(setup, _common())[1]
    assert len(started) == 2
