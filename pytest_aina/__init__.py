"""pytest-aina: specs become tests, benchmarks and evolution PRs for GPU kernels.

Importing the package is cheap on purpose: torch, triton and litellm are imported by the
functions that need them, never here, so ``pytest --help`` and the App's webhook path
stay fast.
"""

__version__ = "0.1.0"
