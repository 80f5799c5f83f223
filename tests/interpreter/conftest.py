import pytest

from pytest_aina import interpreter


@pytest.fixture(autouse=True)
def _interpreter_restored():
    """Each test starts and ends with the interpreter unpatched, whatever it installs."""
    interpreter.uninstall()
    yield
    interpreter.uninstall()
