"""Turning the faithful interpreter and the sanitizer on and off, gated on Triton's version.

The patches replace private parts of ``triton.runtime.interpreter`` (the builder's methods,
the reduction classes, ``GridExecutor.__call__``), so they are only applied to a Triton
release they were written and tested against; on any other, install() warns and changes
nothing: a harness then runs the raw interpreter, as it would without this package.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from pytest_aina.interpreter.patching import Patches

#: Triton releases whose interpreter these patches were read against and tested with.
TESTED_TRITON_VERSIONS = ("3.9.0",)


class UntestedTritonWarning(UserWarning):
    """install() found a Triton release the patches were not tested with, and did nothing."""


class _State:
    patches: Patches | None = None
    sanitize: bool = False


def triton_version() -> str:
    import triton

    return triton.__version__


def supported() -> bool:
    """True when the installed Triton is one the patches were tested with."""
    return triton_version() in TESTED_TRITON_VERSIONS


def install(sanitize: bool = True) -> None:
    """Give Triton's interpreter GPU semantics (casts, bfloat16 arithmetic and reductions,
    libdevice, float scalars, no floating-point warnings) and, with ``sanitize``, check every
    load and store of an interpreted kernel against the tensors it was given.

    Idempotent; calling it again with another ``sanitize`` switches the sanitizer. Only
    interpreted kernels (``@triton.jit`` under ``TRITON_INTERPRET=1``) are affected;
    compiled ones never go through the interpreter. On an untested Triton release it warns
    (:class:`UntestedTritonWarning`) and changes nothing.
    """
    if _State.patches is not None:
        if _State.sanitize == sanitize:
            return
        uninstall()
    version = triton_version()
    if version not in TESTED_TRITON_VERSIONS:
        warnings.warn(
            f"pytest_aina.interpreter was tested with triton {', '.join(TESTED_TRITON_VERSIONS)}, "
            f"not {version}: the interpreter runs unpatched (no GPU-faithful semantics, no sanitizer)",
            UntestedTritonWarning,
            stacklevel=2,
        )
        return
    # heavy and version-specific: imported only once the version is known to fit
    from pytest_aina.interpreter import launch, libdevice, sanitizer, semantics

    patches = Patches()
    try:
        semantics.install(patches)
        libdevice.install(patches)
        launch.install(patches, sanitize=sanitize)
        if sanitize:
            sanitizer.install(patches)
    except BaseException:
        patches.restore()
        raise
    _State.patches, _State.sanitize = patches, sanitize


def uninstall() -> None:
    """Restore Triton's interpreter exactly as it was (idempotent)."""
    if _State.patches is not None:
        _State.patches.restore()
    _State.patches, _State.sanitize = None, False


def installed() -> bool:
    """True while the faithful semantics are in place."""
    return _State.patches is not None


def sanitizing() -> bool:
    """True while the sanitizer checks interpreted launches."""
    return _State.patches is not None and _State.sanitize


@contextlib.contextmanager
def faithful(sanitize: bool = True) -> Iterator[None]:
    """``install(sanitize)`` for the block, then back to the state before it (installed with
    the same setting, or not at all)."""
    was_installed, was_sanitizing = installed(), sanitizing()
    install(sanitize)
    try:
        yield
    finally:
        if was_installed:
            install(was_sanitizing)
        else:
            uninstall()


@contextlib.contextmanager
def raw() -> Iterator[None]:
    """The unpatched interpreter for the block (to show what a patch changes), then back."""
    was_installed, was_sanitizing = installed(), sanitizing()
    uninstall()
    try:
        yield
    finally:
        if was_installed:
            install(was_sanitizing)
