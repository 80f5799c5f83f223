"""The pytest plugin: ``pytest --aina`` turns the specs in ``specs/`` into tests.

Registered through the ``pytest11`` entry point: the options, the markers, collecting spec
files and the GPU skip. The run's state lives in :mod:`~pytest_aina.plugin.session`, the
items in :mod:`~pytest_aina.plugin.items`, the JSON report in
:mod:`~pytest_aina.plugin.report`. Loading it imports neither torch nor triton, so
``pytest --help`` costs little; they are imported by the first item that runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path, PurePosixPath

import pytest

from pytest_aina.checking.device import device
from pytest_aina.plugin.items import SpecFile
from pytest_aina.plugin.report import AinaReport
from pytest_aina.plugin.session import AinaSession, aina_session, profile_name
from pytest_aina.spec.model import Case

DEFAULT_SPECS = ["specs/*.yaml", "specs/*.yml"]
BENCHMARK_STORAGE_DEFAULT = "file://./.benchmarks"


def _import_path(value: str) -> str:
    if ":" not in value or value.startswith(":") or value.endswith(":"):
        raise argparse.ArgumentTypeError(f"{value!r} is not an import path; expected module:attribute")
    return value


def _case(value: str) -> Case:
    try:
        return Case.from_arg(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aina", "pytest-aina: kernel specs as tests and benchmarks")
    group.addoption(
        "--aina",
        action="store_true",
        default=False,
        help="collect the kernel specs (ini aina_specs) into tests. Default: off.",
    )
    group.addoption(
        "--aina-profile",
        metavar="NAME",
        type=profile_name,
        default=None,
        help="how hard to test: ci (fast, deterministic), dev, thorough. Default: ini aina_profile, else ci.",
    )
    group.addoption(
        "--aina-bench",
        action="store_true",
        default=False,
        help="also benchmark each spec's benchmark cases (pytest-benchmark). Default: off.",
    )
    group.addoption(
        "--aina-report",
        metavar="FILE",
        default=None,
        help="write one JSON document with every item's outcome, benchmark statistics "
        "and the environment. Default: none.",
    )
    group.addoption(
        "--aina-case",
        metavar="CASE",
        type=_case,
        default=None,
        help="run property and invariant items on exactly this case, e.g. "
        "'M=3,N=1000,dtype=float16,layout=sliced,values=large,seed=7' "
        "(failures print it). Default: none.",
    )
    group.addoption(
        "--aina-impl",
        metavar="MODULE:ATTR",
        type=_import_path,
        default=None,
        help="check this function in place of each spec's implementation "
        "(how a candidate kernel is evaluated). Default: the spec's.",
    )
    group.addoption(
        "--aina-sanitize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check every load and store of an interpreted kernel against the tensors it was "
        "given (docs/interpreter.md); --no-aina-sanitize runs without. "
        "Default: ini aina_sanitize, else on (it only acts where kernels are interpreted).",
    )
    group.addoption(
        "--aina-isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run each item's cases in a forked child, so a kernel that crashes the process "
        "fails its own item; --no-aina-isolate runs them in the pytest process. CPU only. "
        "Default: ini aina_isolate, else on.",
    )
    parser.addini(
        "aina_specs",
        type="linelist",
        default=DEFAULT_SPECS,
        help="glob patterns, relative to rootdir, of the spec files --aina collects. "
        f"Default: {' '.join(DEFAULT_SPECS)}",
    )
    parser.addini("aina_profile", default="ci", help="default --aina-profile. Default: ci")
    parser.addini("aina_sanitize", type="bool", default=True, help="default --aina-sanitize. Default: true")
    parser.addini("aina_isolate", type="bool", default=True, help="default --aina-isolate. Default: true")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped, with the reason, elsewhere")
    for marker, what in (
        ("aina_example", "a pinned example of a spec"),
        ("aina_property", "a spec's Hypothesis property test"),
        ("aina_invariant", "one invariant of a spec"),
        ("aina_bench", "a benchmark at a spec's benchmark case"),
    ):
        config.addinivalue_line("markers", f"{marker}: {what} (pytest-aina)")
    if not config.getoption("aina"):
        return
    _keep_caches_under_the_rootdir(config)
    session = AinaSession(config)
    session.install()
    config.pluginmanager.register(AinaReport(session), "aina-report")
    _add_spec_dirs(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.getoption("aina", default=False):
        aina_session(config).uninstall()


def _keep_caches_under_the_rootdir(config: pytest.Config) -> None:
    """pytest-benchmark creates its storage folder when it is configured (after us): under
    the rootdir's ``.aina/``, not in whatever folder pytest was started from, unless the
    user chose one. (Hypothesis's folder is moved when the first item runs, see the session.)"""
    if getattr(config.option, "benchmark_storage", None) == BENCHMARK_STORAGE_DEFAULT:
        config.option.benchmark_storage = f"file://{config.rootpath / '.aina' / 'benchmarks'}"


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
    if not session.wants(file_path):
        return None
    if not file_path.resolve().is_relative_to(config.rootpath.resolve()):
        # pytest names a file outside the rootdir relative to the argument that named it,
        # i.e. "" for a spec given by its path, and the re-run command would be "::item";
        # relative to where pytest was started it reruns from there
        nodeid = os.path.relpath(file_path, config.invocation_params.dir).replace(os.sep, "/")
        return SpecFile.from_parent(parent, path=file_path, nodeid=nodeid)
    return SpecFile.from_parent(parent, path=file_path)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is None:
        return
    if device() != "cuda":
        # reported at the spec's line, as a skip marker would be, not at this line
        raise pytest.skip.Exception(
            "needs a CUDA GPU (a self-hosted runner labelled 'gpu'); this machine has none", _use_item_location=True
        )
