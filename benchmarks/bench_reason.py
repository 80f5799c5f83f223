"""How many telemetry windows a second ``aina reason`` ingests. A benchmark, not a test
(not collected by the default run):

    .venv/bin/python -m pytest benchmarks/bench_reason.py --benchmark-columns=min,median,max,rounds -s

Input: the sample fleet's day remade with 1-minute windows (38,160 windows, ~21 MB), so
the per-window work dominates. Two figures: the Reasoner in-process (read, check, screen,
profile, detect, rank), and the ``aina reason --json`` command end to end, interpreter
start-up included. Each prints windows per second (``--benchmark-disable`` runs each once,
untimed, and prints nothing).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_aina.reasoner import reason_about_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def day_of_minutes(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "minutes.jsonl"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_telemetry.py"), "--out", str(out), "--window-min", "1"],
        check=True,
        capture_output=True,
    )
    with out.open() as fh:
        n = sum(1 for _ in fh)
    return out, n


def test_reasoner_in_process(benchmark, day_of_minutes, capsys):
    path, n = day_of_minutes
    report = benchmark.pedantic(
        reason_about_file,
        args=(path,),
        kwargs={"specs": ROOT / "specs", "variants": ROOT / "kernels" / "variants"},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    assert report.profile.windows == n
    if benchmark.disabled:  # --benchmark-disable: ran once, untimed; nothing to print
        return
    with capsys.disabled():
        print(
            f"\nreasoner in-process: {n} windows, median {benchmark.stats['median']:.2f} s "
            f"-> {n / benchmark.stats['median']:,.0f} windows/s"
        )


def test_aina_reason_command(benchmark, day_of_minutes, capsys):
    path, n = day_of_minutes
    aina = Path(sys.executable).with_name("aina")

    def run():
        subprocess.run(
            [
                str(aina),
                "reason",
                "--telemetry",
                str(path),
                "--json",
                "--specs",
                str(ROOT / "specs"),
                "--variants",
                str(ROOT / "kernels" / "variants"),
            ],
            check=True,
            capture_output=True,
        )

    benchmark.pedantic(run, rounds=3, iterations=1)
    if benchmark.disabled:
        return
    t0 = time.perf_counter()
    subprocess.run([str(aina), "--help"], check=True, capture_output=True)
    startup = time.perf_counter() - t0
    with capsys.disabled():
        print(
            f"\naina reason --json: {n} windows, median {benchmark.stats['median']:.2f} s "
            f"-> {n / benchmark.stats['median']:,.0f} windows/s end to end (aina --help alone: {startup:.2f} s)"
        )
