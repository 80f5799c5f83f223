"""Every way a hostile or broken candidate can end, each with its own status and reason."""

from __future__ import annotations

import pytest

from pytest_aina.sandbox import Limits, run


def _run(write, source: str, *, name: str = "cand.py", **kw):
    return run(f"{write(name, source)}:f", **kw)


def test_a_hang_is_a_timeout_and_the_sandbox_is_killed(write):
    r = _run(
        write,
        """
        import time
        def f():
            while True:
                time.sleep(0.05)
    """,
        limits=Limits(wall_s=1.5),
    )
    assert r.status == "timeout"
    assert r.reason.startswith("timeout: no result within the 1.5 s wall-clock limit")
    assert r.exit.killed_by_sandbox == "timeout" and r.exit.signal == "SIGKILL"
    assert 1.4 < r.wall_s < 10
    assert r.cleanup == "complete"


def test_a_hang_that_ignores_sigterm_in_c_code_is_still_killed(write):
    r = _run(
        write,
        """
        import signal, ctypes
        def f():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            ctypes.CDLL(None).pause()   # blocks in C, never returns to Python
    """,
        limits=Limits(wall_s=1),
    )
    assert r.status == "timeout"


@pytest.mark.parametrize(
    "body, sig",
    [
        ("import os\n    os.abort()", "SIGABRT"),
        ("import ctypes\n    ctypes.string_at(0)", "SIGSEGV"),
        ("import os, signal\n    os.kill(os.getpid(), signal.SIGBUS)", "SIGBUS"),
    ],
)
def test_a_crash_by_signal_names_the_signal(write, body, sig):
    r = _run(write, f"def f():\n    {body}\n")
    assert r.status == "crash by signal"
    assert r.reason == f"crash by signal {sig}"
    assert r.exit.signal == sig and r.exit.killed_by_sandbox is None


def test_a_single_huge_allocation_is_a_memory_limit(write):
    r = _run(
        write,
        """
        def f():
            return len(bytearray(2 << 30))
    """,
        limits=Limits(memory_bytes=512 << 20),
    )
    assert r.status == "memory limit"
    assert "MemoryError" in r.reason


def test_a_creeping_memory_bomb_is_a_memory_limit_not_a_crash(write):
    r = _run(
        write,
        """
        def f():
            hoard = []
            while True:
                hoard.append(b"x" * (16 << 20))   # touched pages: resident memory grows
    """,
        limits=Limits(memory_bytes=384 << 20),
    )
    assert r.status == "memory limit", r.reason
    assert r.reason.startswith("memory limit:")


def test_a_memory_bomb_in_numpy_is_a_memory_limit(write):
    r = _run(
        write,
        """
        def f():
            import numpy as np
            return float(np.ones((1 << 30,)).sum())
    """,
        limits=Limits(memory_bytes=512 << 20),
    )
    assert r.status == "memory limit"
    assert "Unable to allocate" in r.reason


def test_a_syntax_error_names_file_and_line(write):
    r = _run(write, "import os\n\ndef f(:\n    pass\n", name="broken.py")
    assert r.status == "syntax error"
    assert r.reason == "syntax error in broken.py line 3: invalid syntax"


def test_an_import_error_names_the_module(write):
    r = _run(write, "import no_such_module_for_aina\ndef f():\n    pass\n")
    assert r.status == "import error"
    assert "No module named 'no_such_module_for_aina'" in r.reason


def test_an_exception_at_import_is_an_import_error(write):
    r = _run(write, "raise RuntimeError('refuses to load')\ndef f():\n    pass\n")
    assert r.status == "import error"
    assert "RuntimeError: refuses to load" in r.reason


def test_a_missing_function_is_an_import_error(write):
    r = _run(write, "def g():\n    pass\n")
    assert r.status == "import error"
    assert "has no attribute 'f'" in r.reason, r.reason


def test_an_exception_is_recorded_with_its_type_and_message(write):
    r = _run(write, "def f():\n    raise ValueError('bad block size 3')\n")
    assert r.status == "exception"
    assert r.reason == "exception: ValueError: bad block size 3"


def test_cpu_time_past_the_limit_is_a_cpu_limit(write):
    r = _run(
        write,
        """
        def f():
            n = 0
            while True:
                n += 1
    """,
        limits=Limits(wall_s=20, cpu_s=1),
    )
    assert r.status == "cpu limit", r.reason
    assert r.wall_s < 10


def test_a_file_past_the_size_limit_is_a_file_size_limit(write):
    r = _run(
        write,
        """
        def f():
            with open("big.bin", "wb") as fh:
                fh.write(b"x" * (4 << 20))
    """,
        limits=Limits(file_bytes=1 << 20),
    )
    assert r.status == "file size limit", r.reason


@pytest.mark.parametrize(
    "body, detail",
    [
        ("import os\n    os._exit(0)", "exited with code 0 without sending a result"),
        ("import os\n    os._exit(3)", "exited with code 3 without sending a result"),
        ("import sys\n    sys.exit(0)", "called sys.exit(0) instead of returning"),
    ],
)
def test_exiting_without_a_result_is_no_result_never_success(write, body, detail):
    r = _run(write, f"def f():\n    {body}\n")
    assert r.status == "no result"
    assert detail in r.reason


def test_printing_a_fake_result_and_garbage_on_the_channel_is_no_result(write):
    # it knows the protocol's fd (argv) and writes a frame prefix promising bytes that never come
    r = _run(
        write,
        """
        import os, sys
        def f():
            print('{"op": "result", "value": 42}')
            print("RESULT: ok")
            os.write(int(sys.argv[1]), b"\\x00\\x00\\x00\\x05garbage")
            os._exit(0)
    """,
    )
    assert r.status == "no result"
    assert "incomplete frame" in r.reason
    assert r.value is None


def test_a_malformed_frame_is_no_result(write):
    r = _run(
        write,
        """
        import os, sys, struct
        def f():
            os.write(int(sys.argv[1]), struct.pack(">II", 9, 0) + b"not json!")
            import time; time.sleep(5)
    """,
        limits=Limits(wall_s=10),
    )
    assert r.status == "no result"
    assert "garbage" in r.reason and "not JSON" in r.reason
    assert r.wall_s < 5


def test_a_value_that_cannot_travel_is_no_result(write):
    r = _run(write, "def f():\n    return object()\n")
    assert r.status == "no result"
    assert r.reason == "no result: the function returned a object, which is not JSON-able"
