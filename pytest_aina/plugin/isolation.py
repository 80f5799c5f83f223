"""Crash isolation: a kernel that kills its process fails its own item, and the run goes on.

Under Triton's interpreter a stray store can corrupt the heap (``double free or
corruption``, ``Segmentation fault``, ``Fatal Python error: Aborted``); the sanitizer stops
most of those before memory is touched, but not all (it may be switched off, a pointer may
come from memory, the interpreter or torch may crash on their own, a block may exhaust
memory). So on a CPU each item's cases run in a child forked from the pytest process:

* forking, not spawning: torch, Triton and the kernels are already imported in the parent
  (:meth:`AinaSession.kernel` runs first), so a child costs a few milliseconds, not the
  seconds of a fresh interpreter; nothing is imported twice;
* the child announces each case before the kernel runs (the ``interpreter.case`` of
  :func:`pytest_aina.checking.checks.run_case`), so when it dies the parent knows the case
  in flight and fails the item with the signal, that case and its re-run command; the
  fault handler's dump of the kernel's Python frames lands in the item's captured stderr;
* the child's outcome comes back as data: passed, skipped with its reason, or failed with
  the failure already rendered by the item (the rendering needs the child's exception).

On a GPU, forking after CUDA was initialised gives an unusable child, so items run in the
pytest process there (see docs/interpreter.md, "Crash isolation", for the spawned worker a
GPU needs).
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pytest_aina import interpreter

_HEADER = struct.Struct("!I")


class ChildFailure(Exception):
    """The item failed in its child: ``text`` is the failure as the item rendered it there."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class ChildDied(Exception):
    """The child running the item died: by ``signal`` (a name) or with exit ``status``."""

    def __init__(self, how: str, case: str | None):
        super().__init__(f"the process running the kernel died ({how})")
        self.how, self.case = how, case


@dataclass
class _Outcome:
    kind: str  # "passed", "skipped", "failed"
    text: str = ""


def available() -> bool:
    return hasattr(os, "fork")


def run(body: Callable[[], None], render: Callable[[BaseException], str],
        announce: Callable[[Callable[[str], None]], None]) -> None:
    """Run ``body`` in a forked child and raise in the parent what it raised.

    ``render`` turns the child's exception into the text the item shows; ``announce`` is
    called in the child with a function that sends a case description to the parent (the
    caller hooks it where cases start).
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(write_fd, body, render, announce)
    os.close(write_fd)
    messages = _read_all(read_fd)
    _, status = os.waitpid(pid, 0)
    case = None
    outcome = None
    for kind, value in messages:
        if kind == "case":
            case = value
        elif kind == "outcome":
            outcome = value
    if outcome is None:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            how = f"signal {signal.Signals(sig).name}" if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        else:
            how = f"exit status {os.WEXITSTATUS(status)} without a result"
        raise ChildDied(how, case)
    if outcome.kind == "skipped":
        raise pytest.skip.Exception(outcome.text, _use_item_location=True)
    if outcome.kind == "failed":
        raise ChildFailure(outcome.text)


def _child(fd: int, body, render, announce) -> None:
    code = 0
    try:
        # pytest's own fault handler writes to the terminal; ours to fd 2, which pytest
        # captures, so the dump shows in the item's report
        faulthandler.enable(file=2, all_threads=False)
        _threads_after_fork()
        announce(lambda description: _send(fd, ("case", description)))
        try:
            body()
            outcome = _Outcome("passed")
        except pytest.skip.Exception as exc:
            outcome = _Outcome("skipped", str(exc.msg))
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent
            outcome = _Outcome("failed", render(exc))
        _send(fd, ("outcome", outcome))
    except BaseException:  # noqa: BLE001 - the harness itself failed in the child
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            # no atexit handlers, no pytest finalizers: they belong to the parent
            os._exit(code)


def _threads_after_fork() -> None:
    """torch's intra-op thread pool does not survive a fork (a child using it may hang), as
    its DataLoader workers know; the interpreter's numpy work needs none of it."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _send(fd: int, message) -> None:
    data = pickle.dumps(message)
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def _read_all(fd: int) -> list:
    chunks = []
    with os.fdopen(fd, "rb") as f:
        buffer = f.read()
    view = memoryview(buffer)
    while len(view) >= _HEADER.size:
        (n,) = _HEADER.unpack(view[:_HEADER.size])
        if len(view) < _HEADER.size + n:
            break  # the child died mid-message
        try:
            chunks.append(pickle.loads(view[_HEADER.size:_HEADER.size + n]))
        except Exception:  # noqa: BLE001 - a torn message from a dying child
            break
        view = view[_HEADER.size + n:]
    return chunks


def case_hook(kernel, send: Callable[[str], None]):
    """Wrap ``kernel.impl`` (in the child only) so each call first sends the case set by
    ``interpreter.case`` to the parent."""
    impl = kernel.impl

    def announced(*args, **kwargs):
        description = interpreter.current_case()
        if description is not None:
            send(description)
        return impl(*args, **kwargs)

    kernel.impl = announced
