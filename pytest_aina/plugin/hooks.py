"""The pytest plugin: ``pytest --aina`` turns the specs in ``specs/`` into tests.

Registered through the ``pytest11`` entry point. It imports only pytest at load time, so
``pytest --help`` costs nothing extra; specs are read when collected, and torch, triton
and the kernels are imported by the first item that runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path, PurePosixPath

import pytest

DEFAULT_SPECS = ["specs/*.yaml", "specs/*.yml"]
PROFILES = ("ci", "dev", "thorough")


def _profile(value: str) -> str:
    if value not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {value!r}; expected one of: {', '.join(PROFILES)}")
    return value


def _import_path(value: str) -> str:
    if ":" not in value or value.startswith(":") or value.endswith(":"):
        raise argparse.ArgumentTypeError(f"{value!r} is not an import path; expected module:attribute")
    return value


def _case(value: str):
    from pytest_aina.spec.model import Case

    try:
        return Case.from_arg(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aina", "pytest-aina: kernel specs as tests and benchmarks")
    group.addoption("--aina", action="store_true", default=False,
                    help="collect the kernel specs (ini aina_specs) into tests. Default: off.")
    group.addoption("--aina-profile", metavar="NAME", type=_profile, default=None,
                    help="how hard to test: ci (fast, deterministic), dev, thorough. "
                         "Default: ini aina_profile, else ci.")
    group.addoption("--aina-bench", action="store_true", default=False,
                    help="also benchmark each spec's benchmark cases (pytest-benchmark). Default: off.")
    group.addoption("--aina-report", metavar="FILE", default=None,
                    help="write one JSON document with every item's outcome, benchmark statistics "
                         "and the environment. Default: none.")
    group.addoption("--aina-case", metavar="CASE", type=_case, default=None,
                    help="run property and invariant items on exactly this case, e.g. "
                         "'M=3,N=1000,dtype=float16,layout=sliced,values=large,seed=7' "
                         "(failures print it). Default: none.")
    group.addoption("--aina-impl", metavar="MODULE:ATTR", type=_import_path, default=None,
                    help="check this function in place of each spec's implementation "
                         "(how a candidate kernel is evaluated). Default: the spec's.")
    parser.addini("aina_specs", type="linelist", default=DEFAULT_SPECS,
                  help="glob patterns, relative to rootdir, of the spec files --aina collects. "
                       f"Default: {' '.join(DEFAULT_SPECS)}")
    parser.addini("aina_profile", default="ci", help="default --aina-profile. Default: ci")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped, with the reason, elsewhere")
    for marker, what in (("aina_example", "a pinned example of a spec"),
                         ("aina_property", "a spec's Hypothesis property test"),
                         ("aina_invariant", "one invariant of a spec"),
                         ("aina_bench", "a benchmark at a spec's benchmark case")):
        config.addinivalue_line("markers", f"{marker}: {what} (pytest-aina)")
    if not config.getoption("aina"):
        return
    session = AinaSession(config)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "aina-session")
    _add_spec_dirs(config)


def _add_spec_dirs(config: pytest.Config) -> None:
    """``pytest --aina`` with no paths also collects the spec folders, even when
    ``testpaths`` names only ``tests/``."""
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    for pattern in config.getini("aina_specs"):
        folder = config.rootpath / PurePosixPath(pattern).parent
        if folder.is_dir() and not any(Path(a).resolve() in (folder, *folder.parents) for a in config.args):
            config.args.append(str(folder))


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    config = parent.config
    if not config.getoption("aina") or file_path.suffix not in (".yaml", ".yml"):
        return None
    session = aina_session(config)
    if session.wants(file_path):
        from pytest_aina.plugin.items import SpecFile

        return SpecFile.from_parent(parent, path=file_path)
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is None:
        return
    from pytest_aina.checking.cases import device

    if device() != "cuda":
        # reported at the spec's line, as a skip marker would be, not at this line
        raise pytest.skip.Exception("needs a CUDA GPU (a self-hosted runner labelled 'gpu'); this machine has none",
                                    _use_item_location=True)


_SESSION = pytest.StashKey["AinaSession"]()


def aina_session(config: pytest.Config) -> "AinaSession":
    return config.stash[_SESSION]


class AinaSession:
    """Per-run state of the plugin, registered as a plugin itself for its report hooks."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.profile_name = config.getoption("aina_profile") or _profile(config.getini("aina_profile"))
        self.bench = config.getoption("aina_bench")
        self.forced_case = config.getoption("aina_case")
        self.impl_override = config.getoption("aina_impl")
        self.report_path = config.getoption("aina_report")
        self.patterns = config.getini("aina_specs")
        self.specs: dict = {}
        self.results: list[dict] = []
        self.bench_results: list[dict] = []
        self._kernels: dict = {}
        self._device: str | None = None
        self._started = time.time()

    # -- collection ----------------------------------------------------------------------

    def wants(self, path: Path) -> bool:
        try:
            rel = PurePosixPath(path.resolve().relative_to(self.config.rootpath).as_posix())
        except ValueError:
            rel = PurePosixPath(path.as_posix())
        if any(rel.match(p) for p in self.patterns):
            return True
        # a spec file named explicitly on the command line is collected wherever it lives
        return any(Path(a.split("::")[0]).resolve() == path.resolve() for a in self.config.args)

    # -- running -------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            from pytest_aina.checking.cases import prepare_runtime

            self._device = prepare_runtime()
        return self._device

    @property
    def profile(self):
        from pytest_aina.checking import profiles

        return profiles.get(self.profile_name, self.device)

    def kernel(self, spec):
        """The implementation and reference of ``spec``, imported once per run."""
        if spec.name not in self._kernels:
            from pytest_aina.checking.cases import resolve
            from pytest_aina.checking.checks import Kernel

            device = self.device  # before any kernel import: it may set TRITON_INTERPRET
            impl = resolve(self.impl_override or spec.implementation)
            self._kernels[spec.name] = Kernel(impl, resolve(spec.reference), device)
        return self._kernels[spec.name]

    def repro_command(self, item, case) -> str:
        parts = ["pytest", "--aina", item.nodeid]
        if item.kind in ("property", "invariant"):
            parts += ["--aina-case", case.to_arg()]
        if self.impl_override:
            parts += ["--aina-impl", self.impl_override]
        return shlex.join(parts)

    # -- reporting -----------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        from pytest_aina.plugin.items import SpecItem

        if not isinstance(item, SpecItem):
            return report
        if report.when == "call" or (report.when == "setup" and not report.passed):
            entry = {
                "nodeid": item.nodeid, "spec": item.spec.name, "kind": item.kind,
                "case": item.case.as_dict() if item.case else None,
                "outcome": report.outcome, "duration_s": round(report.duration, 6),
            }
            if report.skipped and isinstance(report.longrepr, tuple):
                entry["reason"] = report.longrepr[2]
            elif report.failed:
                entry["message"] = str(report.longrepr)
            bm = getattr(item, "funcargs", {}).get("benchmark")
            if bm is not None and getattr(bm, "stats", None) is not None:
                entry["benchmark"] = {"stats": bm.stats.stats.as_dict(), "extra_info": dict(bm.extra_info)}
            self.results.append(entry)
        return report

    def pytest_sessionfinish(self, session, exitstatus):
        if not self.report_path:
            return
        from pytest_aina import environment

        counts: dict[str, int] = {}
        for r in self.results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        doc = {
            "aina_report": 1,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration_s": round(time.time() - self._started, 3),
            "profile": self.profile_name,
            "implementation_override": self.impl_override,
            "environment": environment.collect(with_torch=self._device is not None, cwd=str(self.config.rootpath)),
            "specs": {name: {"path": str(s.path), "implementation": s.implementation, "reference": s.reference}
                      for name, s in self.specs.items()},
            "summary": counts,
            "items": self.results,
        }
        path = Path(self.report_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")

    def pytest_terminal_summary(self, terminalreporter):
        if not self.results:
            return
        tr = terminalreporter
        tr.section("aina")
        by_spec: dict[str, dict[str, int]] = {}
        for r in self.results:
            c = by_spec.setdefault(r["spec"], {})
            c[r["outcome"]] = c.get(r["outcome"], 0) + 1
        dev = self._device or "not started"
        tr.write_line(f"profile {self.profile_name} on {dev}"
                      + (" (Triton interpreter)" if dev == "cpu" else ""))
        width = max(len(s) for s in by_spec)
        for spec, c in sorted(by_spec.items()):
            tr.write_line(f"  {spec:<{width}}  " + ", ".join(f"{n} {k}" for k, n in sorted(c.items())))
        if self.bench_results:
            tr.write_line("")
            tr.write_line(f"  {'benchmark':<{width + 40}} {'median':>12} {'throughput':>14} {'% of limit':>10}  clock")
            for b in self.bench_results:
                thr = f"{b['bytes_per_s'] / 1e9:.3g} GB/s" if "bytes_per_s" in b else (
                    f"{b['flop_per_s'] / 1e12:.3g} TFLOP/s" if "flop_per_s" in b else "-")
                pct = b.get("pct_of_hbm", b.get("pct_of_flops"))
                name = f"{b['spec']} {b['case']} ({b['which']})"
                tr.write_line(f"  {name:<{width + 40}} {b['median_s'] * 1e3:>9.3f} ms {thr:>14} "
                              f"{(f'{pct:.1f}%' if pct is not None else '-'):>10}  {b['clock']}")
        if self.report_path:
            tr.write_line(f"report written to {self.report_path}")
