"""How the child tells the parent that the candidate failed: a status, a reason, a traceback.

Shared by every mode (:mod:`.boot` for ``call`` and ``argv``, :mod:`.serve` for the timing
protocol), so a failure reads the same whichever way the candidate was run. A candidate
that runs out of memory leaves none for building its report either: a small reserve is
held while the candidate runs and released before the report is built.
"""

from __future__ import annotations

import errno
import os
import traceback

from pytest_aina.sandbox import result as R

_MEMORY_WORDS = ("can't allocate memory", "cannot allocate memory", "out of memory", "bad_alloc", "failed to allocate")
_RESERVE_BYTES = 1 << 20

_reserve: bytearray | None = None


def hold_reserve() -> None:
    """Set memory aside before the candidate runs (see :func:`release_reserve`)."""
    global _reserve
    _reserve = bytearray(_RESERVE_BYTES)


def release_reserve() -> None:
    """Give the reserve back, so that a report after a ``MemoryError`` can still be built."""
    global _reserve
    _reserve = None


def at_import(e: BaseException) -> tuple[str, str]:
    """(status, reason) for an exception raised while importing the candidate."""
    if isinstance(e, SyntaxError):
        where = f"{os.path.basename(e.filename or '?')} line {e.lineno}"
        return R.SYNTAX, f"syntax error in {where}: {e.msg}"
    if isinstance(e, MemoryError):
        return R.MEMORY, "memory limit: MemoryError while importing the candidate"
    if isinstance(e, ImportError):
        return R.IMPORT, f"import error: {type(e).__name__}: {e}"
    return R.IMPORT, f"import error: the module raised {type(e).__name__}: {e}"


def in_call(e: BaseException) -> tuple[str, str]:
    """(status, reason) for an exception raised by a call of the candidate."""
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and any(w in str(e).lower() for w in _MEMORY_WORDS)):
        return R.MEMORY, f"memory limit: {type(e).__name__}: {str(e)[:300]}"
    if isinstance(e, OSError) and e.errno == errno.EFBIG:
        return R.FILE_SIZE, f"file size limit: a write went past the file-size limit ({e})"
    if isinstance(e, SystemExit):
        return R.NO_RESULT, f"no result: the candidate called sys.exit({e.code!r}) instead of returning"
    if isinstance(e, PermissionError) and "aina sandbox:" in str(e):
        return R.EXCEPTION, f"exception: {e}"
    return R.EXCEPTION, f"exception: {type(e).__name__}: {str(e)[:500]}"


def traceback_text(e: BaseException) -> str:
    """The traceback's last 4000 characters: the frame must stay small."""
    return "".join(traceback.format_exception(e))[-4000:]
