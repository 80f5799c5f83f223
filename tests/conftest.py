"""Hypothesis for the project's own tests: fresh random examples on a developer's machine,
the same examples on every CI run (``CI`` set, as CI services do), so that a red CI run is
reproducible and a green one is not luck of the draw. A failure found while developing is
pinned with ``@example`` next to the test it broke."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Tests import kernels directly: on a machine without a GPU they must be defined under
# Triton's interpreter, made faithful to the GPU, as pytest --aina and aina make them.
from pytest_aina.checking.device import prepare_runtime  # noqa: E402

prepare_runtime()
