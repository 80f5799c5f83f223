"""Hypothesis for the project's own tests: fresh random examples on a developer's machine,
the same examples on every CI run (``CI`` set, as CI services do), so that a red CI run is
reproducible and a green one is not luck of the draw. A failure found while developing is
pinned with ``@example`` next to the test it broke."""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Tests import kernels directly: on a machine without a GPU they must be defined under
# Triton's interpreter, made faithful to the GPU, as pytest --aina and aina make them.
from pytest_aina.checking.device import prepare_runtime  # noqa: E402

prepare_runtime()


@pytest.fixture(autouse=True)
def _subprocesses_are_not_xdist_workers():
    """Under ``pytest -n`` (``dev.py test`` runs the suite on every core) each worker has
    PYTEST_XDIST_WORKER set; a pytest a test starts (pytester, the gate, the sandbox's
    checks) is a session of its own and must not inherit it: pytest-benchmark, for one,
    switches itself off in what it takes for an xdist worker. (Not through ``monkeypatch``:
    an autouse fixture here that requests it would make every test's monkeypatch undo its
    changes last, after the teardown of the fixtures that rely on them being undone.)"""
    saved = {name: os.environ.pop(name) for name in _XDIST_VARIABLES if name in os.environ}
    yield
    os.environ.update(saved)


_XDIST_VARIABLES = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


# The suite runs on every core (dev.py test: pytest -n auto --dist loadfile
# --no-loadscope-reorder): a file goes to one worker whole, files in collection order. The
# slow modules go first, so that the longest runs (the end-to-end evolutions, minutes each)
# start at once beside each other and the short files fill in around them, instead of one
# of them starting last and running alone.
def pytest_collection_modifyitems(config, items):
    slow_modules = {
        item.module.__name__ for item in items if item.get_closest_marker("slow") and hasattr(item, "module")
    }

    def order(item):
        name = getattr(getattr(item, "module", None), "__name__", None)
        return (LONGEST.index(name) if name in LONGEST else len(LONGEST), name not in slow_modules)

    items.sort(key=order)


#: The longest modules of the whole suite (by module name), longest first (minutes each on 2 cores: an
#: evolution in the interpreter, then the branch's own spec tests), so that they start
#: before every other slow module rather than in alphabetical order among them.
LONGEST = (
    "test_evolve_new_kernel_e2e",
    "test_app_end_to_end",
    "test_evolve_e2e",
    "test_evaluate_hostile",
)
