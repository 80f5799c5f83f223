"""Correctness: the spec-derived tests of the affected kernels and the change's own tests,
run on the head, under coverage.py so the coverage check needs no second run.

The tests run as CI runs them, in a subprocess (``python -m coverage run -m pytest --aina
SPECS TESTS``) in a checkout of the head: head code is executed, so the job that runs the
gate must hold no secrets (``pull_request`` jobs get a read-only token and none).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from pytest_aina.gate.verdict import FAIL, PASS, SKIPPED, Annotation, CheckResult

CHECK = "correctness"
TIMEOUT_S = 1800.0


@dataclass
class Failure:
    test: str
    file: str | None
    line: int | None
    message: str


@dataclass
class TestRun:
    command: list[str]
    exit_code: int | None
    wall_s: float
    output_tail: str
    tests: int = 0
    failures: list[Failure] = field(default_factory=list)
    coverage_data: Path | None = None
    timed_out: bool = False


def _environment(checkout: Path) -> dict:
    env = dict(os.environ)
    # the head's modules first: its kernels, not any installed or checked-out elsewhere
    env["PYTHONPATH"] = os.pathsep.join([str(checkout)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.pop("COVERAGE_PROCESS_START", None)
    return env


def _combine(data: Path, rcfile: Path, checkout: Path) -> None:
    """Merge the per-process files (``coverage.data.*``) into ``data``."""
    if not list(data.parent.glob(data.name + ".*")):
        return
    subprocess.run(
        [sys.executable, "-m", "coverage", "combine", "--rcfile", str(rcfile), "--data-file", str(data), "-q"],
        cwd=checkout,
        env=_environment(checkout),
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_tests(
    checkout: Path, specs: list[str], tests: list[str], cover: list[str], workdir: Path, *, timeout_s: float = TIMEOUT_S
) -> TestRun:
    """``pytest --aina`` over ``specs`` and ``tests`` (paths in ``checkout``), measuring the
    lines of ``cover`` (paths in ``checkout``) when there are any."""
    xml = workdir / "junit.xml"
    data = workdir / "coverage.data"
    pytest_args = [
        "-m",
        "pytest",
        "--aina",
        *specs,
        *tests,
        "-q",
        "-p",
        "no:cacheprovider",
        "-rfE",
        "--junitxml",
        str(xml),
        "-o",
        "junit_family=xunit1",
    ]
    if cover:
        include = ",".join(str(checkout / p) for p in cover)
        rcfile = workdir / "coveragerc"
        # The plugin runs spec items in a forked worker (crash isolation) that ends with
        # os._exit: without the _exit patch its lines, the kernels' own, would be lost.
        # Parallel mode gives each process its own file (named by pid when it saves); they
        # are combined below. (coverage's "fork" patch is not wanted: it loses the child's lines.)
        rcfile.write_text("[run]\nparallel = true\npatch = _exit\n")
        cmd = [
            sys.executable,
            "-m",
            "coverage",
            "run",
            "--rcfile",
            str(rcfile),
            "--data-file",
            str(data),
            "--include",
            include,
            *pytest_args,
        ]
    else:
        cmd = [sys.executable, *pytest_args]
    start = time.monotonic()
    try:
        done = subprocess.run(
            cmd, cwd=checkout, env=_environment(checkout), capture_output=True, text=True, timeout=timeout_s
        )
        code, out, timed_out = done.returncode, done.stdout + done.stderr, False
    except subprocess.TimeoutExpired as exc:
        code, timed_out = None, True
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    if cover:
        _combine(data, rcfile, checkout)
    run = TestRun(
        cmd,
        code,
        time.monotonic() - start,
        out[-6000:],
        timed_out=timed_out,
        coverage_data=data if cover and data.exists() else None,
    )
    if xml.exists():
        _read_junit(xml, run)
    return run


def _read_junit(path: Path, run: TestRun) -> None:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return
    for case in root.iter("testcase"):
        run.tests += 1
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is None:
            continue
        line = case.get("line")
        message = (bad.get("message") or "").strip() or (bad.text or "").strip().splitlines()[-1:] or ["failed"]
        run.failures.append(
            Failure(
                f"{case.get('classname')}::{case.get('name')}",
                case.get("file"),
                int(line) + 1 if line and line.isdigit() else None,
                message if isinstance(message, str) else message[0],
            )
        )


def check(run: TestRun | None, specs: list[str], tests: list[str]) -> CheckResult:
    if run is None:
        return CheckResult(CHECK, SKIPPED, "no kernel affected: nothing to run")
    what = f"{len(specs)} spec(s), {len(tests)} test file(s) of the change"
    data = {
        "command": " ".join(run.command[1:]),
        "exit_code": run.exit_code,
        "tests": run.tests,
        "specs": specs,
        "change_tests": tests,
        "wall_s": round(run.wall_s, 2),
        "failures": [f.__dict__ for f in run.failures],
    }
    notes = [
        Annotation(f.file, f.line, f"{f.test}: {f.message}"[:1000], title="aina gate: test failed")
        for f in run.failures[:20]
    ]
    if run.timed_out:
        return CheckResult(
            CHECK,
            FAIL,
            f"the tests did not finish within {TIMEOUT_S:g} s ({what})",
            [run.output_tail],
            notes,
            data,
            run.wall_s,
        )
    if run.exit_code == 0:
        return CheckResult(
            CHECK,
            PASS,
            f"{run.tests} test(s) passed on the head ({what})",
            [f"python {data['command']}"],
            notes,
            data,
            run.wall_s,
        )
    if run.exit_code == 5:
        why = "no tests were collected"
    elif run.failures:
        why = f"{len(run.failures)} of {run.tests} test(s) failed: {run.failures[0].test}"
    else:
        why = f"pytest exited {run.exit_code}"
    return CheckResult(
        CHECK,
        FAIL,
        f"{why} ({what})",
        [f.test + ": " + f.message for f in run.failures] + [run.output_tail[-3000:]],
        notes,
        data,
        run.wall_s,
    )
