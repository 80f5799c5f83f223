"""The plugin's per-run state: options, the specs collected, the kernels imported, the device.

One :class:`AinaSession` per ``pytest --aina`` run, created in ``pytest_configure`` and kept
in ``config.stash``; every item reaches it with :func:`aina_session`. The device is chosen
and the kernels are imported on first use, by the first item that runs, never at
collection.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path, PurePosixPath

import pytest

from pytest_aina import interpreter
from pytest_aina.checking import profiles
from pytest_aina.checking.checks import Kernel
from pytest_aina.checking.device import prepare_runtime
from pytest_aina.imports import ResolveError, resolve
from pytest_aina.plugin import isolation
from pytest_aina.spec.reader import AcceptedSpecs

PROFILES = tuple(profiles.CPU_PROFILES)


def profile_name(value: str) -> str:
    """``--aina-profile`` and the ini ``aina_profile``: one of :data:`PROFILES`."""
    if value not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {value!r}; expected one of: {', '.join(PROFILES)}")
    return value


_SESSION = pytest.StashKey["AinaSession"]()


def aina_session(config: pytest.Config) -> AinaSession:
    return config.stash[_SESSION]


def _flag(config: pytest.Config, name: str) -> bool:
    """A ``--name/--no-name`` option, else its ini key."""
    value = config.getoption(name)
    return config.getini(name) if value is None else value


class AinaSession:
    """Per-run state of the plugin; what items and the report share."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.profile_name = config.getoption("aina_profile") or profile_name(config.getini("aina_profile"))
        self.bench = config.getoption("aina_bench")
        self.forced_case = config.getoption("aina_case")
        self.impl_override = config.getoption("aina_impl")
        self.report_path = config.getoption("aina_report")
        self.sanitize = _flag(config, "aina_sanitize")
        self.isolate = _flag(config, "aina_isolate")
        self.patterns = config.getini("aina_specs")
        self.specs: dict = {}
        self._accepted: AcceptedSpecs | None = None
        self.results: list[dict] = []
        self.bench_results: list[dict] = []
        self._kernels: dict = {}
        self._device: str | None = None
        self._warm = False
        self.worker: isolation.Worker | None = None  # the isolating child, once started
        self.started = time.time()

    def install(self) -> None:
        self.config.stash[_SESSION] = self
        # the interpreter is patched by the first item (prepare_runtime), and put back as
        # it was when the run ends: an outer process (pytester) may have its own setting
        self._interpreter_before = (interpreter.installed(), interpreter.sanitizing())

    def uninstall(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self._device is None:
            return
        was_installed, was_sanitizing = self._interpreter_before
        if was_installed:
            interpreter.install(was_sanitizing)
        else:
            interpreter.uninstall()

    # -- collection ----------------------------------------------------------------------

    @property
    def accepted_specs(self) -> AcceptedSpecs | None:
        """The specs the schema accepted in earlier runs, so that collection validates only
        what changed. Kept in pytest's cache (``.pytest_cache/d/aina/``): ``-p
        no:cacheprovider`` keeps none, and so does the sandbox, which may not write there."""
        cache = getattr(self.config, "cache", None)
        if self._accepted is None and cache is not None:
            self._accepted = AcceptedSpecs(cache.mkdir("aina") / "schema-accepted")
        return self._accepted

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
    def started_device(self) -> str | None:
        """The device, if an item has chosen it yet (None: nothing ran)."""
        return self._device

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = prepare_runtime(sanitize=self.sanitize)
            self._hypothesis_home()
        return self._device

    def _hypothesis_home(self) -> None:
        """Hypothesis keeps its examples in ``.hypothesis/`` of the current folder; a run of
        ``pytest --aina`` keeps them under the rootdir's ``.aina/`` unless told otherwise."""
        if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
            return
        # Hypothesis is imported by the items that draw cases, not when the plugin loads
        from hypothesis import configuration

        configuration.set_hypothesis_home_dir(self.config.rootpath / ".aina" / "hypothesis")

    def warm_for_children(self) -> None:
        """Import, once in the pytest process, what every item imports on first use, so that
        forked children inherit it instead of importing it each (see isolation)."""
        if not self._warm:
            # Hypothesis and the strategies: imported by the items, never when the plugin loads
            import pytest_aina.checking.strategies  # noqa: F401

            self._warm = True

    def isolates(self, item) -> bool:
        """Whether ``item`` runs in a child process (see :mod:`~pytest_aina.plugin.isolation`):
        on a CPU, unless switched off; benchmarks time in the pytest process."""
        return (
            self.isolate
            and item.kind in ("example", "property", "invariant")
            and self.device == "cpu"
            and isolation.available()
        )

    @property
    def profile(self) -> profiles.Profile:
        return profiles.get(self.profile_name, self.device)

    def kernel(self, spec) -> Kernel:
        """The implementation and reference of ``spec``, imported once per run."""
        if spec.name not in self._kernels:
            device = self.device  # before any kernel import: it may set TRITON_INTERPRET
            impl = self._resolve(spec, "implementation", self.impl_override or spec.implementation)
            self._kernels[spec.name] = Kernel(impl, self._resolve(spec, "reference", spec.reference), device)
        return self._kernels[spec.name]

    def _resolve(self, spec, key: str, entry: str):
        try:
            return resolve(entry, roots=(self.config.rootpath, spec.path.parent))
        except ResolveError as exc:
            where = (
                "--aina-impl"
                if key == "implementation" and self.impl_override
                else f"{spec.path}:{spec.line_of(key) or 1}"
            )
            raise ResolveError(entry, f"{where}: {key} {entry!r} cannot be imported: {exc}") from None

    def repro_command(self, item, case) -> str:
        parts = ["pytest", "--aina", item.nodeid]
        if not self.sanitize:
            parts.append("--no-aina-sanitize")
        if case is not None and item.kind in ("property", "invariant"):
            parts += ["--aina-case", case.to_arg()]
        if self.impl_override:
            parts += ["--aina-impl", self.impl_override]
        return shlex.join(parts)
