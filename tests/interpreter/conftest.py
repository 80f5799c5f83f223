import pytest

from pytest_aina import interpreter


@pytest.fixture(autouse=True)
def _interpreter_restored():
    """Each test starts with the interpreter unpatched, whatever it installs, and ends with
    it as it was before (tests/conftest.py installs it for the other tests)."""
    was_installed, was_sanitizing = interpreter.installed(), interpreter.sanitizing()
    interpreter.uninstall()
    yield
    if was_installed:
        interpreter.install(was_sanitizing)
    else:
        interpreter.uninstall()
