"""Crash isolation: a kernel that kills its process fails its own item, and the run goes on.

Under Triton's interpreter a stray store can corrupt the heap (``double free or
corruption``, ``Segmentation fault``, ``Fatal Python error: Aborted``); the sanitizer stops
most of those before memory is touched, but not all (it may be switched off, a pointer may
come from memory, the interpreter or torch may crash on their own, a block may exhaust
memory). So on a CPU the items' cases run in a :class:`Worker`, a child **forked** from the
pytest process after collection:

* forking, not spawning: torch, Triton and the first spec's kernels are already imported
  in the parent, and the items are in the child's memory from the fork, so the parent
  sends an item's node id and the child runs that item; nothing is pickled but outcomes;
* the worker lives across items, so the interpreter's per-kernel warm-up (about a second
  per kernel on the development machine) is paid once, not per item; it is forked again
  only after a death;
* the worker announces each case before the kernel runs (the ``interpreter.case`` of
  :func:`pytest_aina.checking.checks.run_case`), so when it dies the parent knows the case
  in flight and fails the item with the signal, that case and its re-run command; the
  fault handler's dump of the kernel's Python frames lands in the item's captured stderr;
* the outcome comes back as data: passed, skipped with its reason, or failed with the
  failure already rendered by the item (the rendering needs the child's exception).

Fixtures are set up in the pytest process; spec items use none, so nothing is lost. On a
GPU, forking after CUDA was initialised gives an unusable child, so items run in the pytest
process there (docs/interpreter.md, "Crash isolation", describes the spawned worker a GPU
needs).
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


class Worker:
    """One forked child that runs items on request; forked on first use, again after a death.

    ``items`` maps a node id to what the child calls: ``run(nodeid)`` (raises what the item
    raised) and ``render(nodeid, exc)`` (the failure's text). The child announces each case
    it starts (:func:`pytest_aina.interpreter.announce_cases`), so the parent knows the case in
    flight when the child dies.
    """

    def __init__(
        self,
        run: Callable[[str], None],
        render: Callable[[str, BaseException], str],
    ):
        self._run, self._render = run, render
        self.pid: int | None = None
        self._commands = self._results = -1

    def run(self, nodeid: str) -> None:
        """Run the item in the worker; raise in the parent what its outcome says."""
        if self.pid is None:
            self._start()
        case = outcome = None
        try:
            _send(self._commands, nodeid)
            while outcome is None:
                message = _receive(self._results)
                if message is None:
                    break
                kind, value = message
                if kind == "case":
                    case = value
                else:
                    outcome = value
        except BrokenPipeError:
            pass
        if outcome is None:
            raise ChildDied(self._reap(), case)
        if outcome.kind == "skipped":
            raise pytest.skip.Exception(outcome.text, _use_item_location=True)
        if outcome.kind == "failed":
            raise ChildFailure(outcome.text)

    def stop(self) -> None:
        if self.pid is not None:
            os.close(self._commands)  # the worker reads end-of-file and exits
            self._reap()

    def _start(self) -> None:
        commands_r, commands_w = os.pipe()
        results_r, results_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(commands_w)
            os.close(results_r)
            self._serve(commands_r, results_w)
        os.close(commands_r)
        os.close(results_w)
        self.pid, self._commands, self._results = pid, commands_w, results_r

    def _reap(self) -> str:
        """Wait for the worker to end; how it ended, in words."""
        for fd in (self._commands, self._results):
            try:
                os.close(fd)
            except OSError:
                pass
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return f"signal {signal.Signals(sig).name}" if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        return f"exit status {os.WEXITSTATUS(status)} without a result"

    def _serve(self, commands: int, results: int) -> None:
        code = 0
        try:
            # pytest's own fault handler writes to the terminal; ours to fd 2, which pytest
            # captures, so the dump shows in the item's report
            faulthandler.enable(file=2, all_threads=False)
            _threads_after_fork()
            interpreter.announce_cases(lambda description: _send(results, ("case", description)))
            while (nodeid := _receive(commands)) is not None:
                try:
                    self._run(nodeid)
                    outcome = _Outcome("passed")
                except pytest.skip.Exception as exc:
                    outcome = _Outcome("skipped", str(exc.msg))
                except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent
                    outcome = _Outcome("failed", self._render(nodeid, exc))
                sys.stdout.flush()
                sys.stderr.flush()
                _send(results, ("outcome", outcome))
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
        data = data[os.write(fd, data) :]


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None  # end of file: the other side is gone
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int):
    """The next message, or None at end of file (or a message torn by a dying writer)."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    data = _read_exactly(fd, _HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)
