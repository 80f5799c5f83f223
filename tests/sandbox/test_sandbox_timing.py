"""time_calls(): the parent owns the clock; fresh inputs per call; outputs checked after timing.

The harness here is a small numpy stand-in for the evaluator's seam (``make_inputs`` /
``reference`` / ``check``, which the Changer fills from ``pytest_aina.checking.cases`` and
``pytest_aina.checking.compare``); one test uses torch and a Triton kernel in the interpreter.
"""

from __future__ import annotations

import pytest

from pytest_aina.sandbox import Call, Limits, TimingResult, time_calls
from pytest_aina.sandbox.parent import offcall
from pytest_aina.sandbox.parent.verdicts import FLOOR_SLACK, Stop, judge_clocks

HARNESS = """
import numpy as np

def make_inputs(seed, rows=8, cols=16):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((rows, cols)).astype(np.float32)]

def reference(x):
    return x * 2

def check(out, expected, **params):
    if type(out) is not np.ndarray or out.shape != expected.shape:
        return f"expected an array of shape {expected.shape}, got {type(out).__name__} {getattr(out, 'shape', '')}"
    bad = ~np.isclose(out, expected, atol=1e-6)
    if bad.any():
        return f"{int(bad.sum())} of {bad.size} elements differ"
"""


@pytest.fixture
def timed(write):
    harness = write("harness.py", HARNESS)

    def _timed(source: str, **kw):
        kw.setdefault("calls", 5)
        kw.setdefault("floor_calls", 10)
        return time_calls(
            f"{write('cand.py', source)}:f",
            make_inputs=f"{harness}:make_inputs",
            reference=f"{harness}:reference",
            check=f"{harness}:check",
            **kw,
        )

    return _timed


def test_a_correct_candidate_is_timed_on_the_parents_clock(timed):
    r = timed("def f(x):\n    return x * 2\n", calls=6, warmup=2, seed=7)
    assert r.status == "ok", r.reason + r.stderr_tail
    assert len(r.times_s) == 6 and len(r.calls) == 8
    assert all(t > 0 for t in r.times_s)
    # a figure includes the protocol's round trip; on a busy machine the no-op floor itself
    # varies, so the bound is the protocol's own slack, the one it judges plausibility by
    assert r.median_s >= FLOOR_SLACK * r.floor["min_s"]
    # 10 no-ops before the candidate loads, then one after each of the 8 calls
    assert r.floor["calls"] == 18 and 0 < r.floor["min_s"] <= r.floor["median_s"] <= r.floor["p90_s"]
    # every call got its own seed, picked by the parent from `seed`: repeatable
    seeds = [c.seed for c in r.calls]
    assert len(set(seeds)) == len(seeds)
    again = timed("def f(x):\n    return x * 2\n", calls=6, warmup=2, seed=7)
    assert [c.seed for c in again.calls] == seeds
    assert r.protections["audit_hook"] is True
    # the session's phases, in order: the protocol's steps between the start-up and the end
    steps = [p for p in r.phases if not p.startswith("child.")]
    assert steps[steps.index("confined") :] == [
        *("confined", "ready", "floor", "loaded", "calls", "finish", "gone", "leftovers", "cleaned")
    ]
    # the calls phase holds every call, warm-up ones included, and the parent's checks
    assert r.phases["calls"] >= sum(c.parent_s for c in r.calls)


def test_the_parents_figure_includes_the_work(timed):
    r = timed("import time\ndef f(x):\n    time.sleep(0.02)\n    return x * 2\n", calls=3)
    assert r.status == "ok", r.reason
    assert min(r.times_s) >= 0.02


def test_the_cpu_clock_counts_work_on_every_thread_and_no_waiting(timed):
    # a call that waits (a sleep: what a call does while another process has the core)
    # costs the wall clock and not the CPU clock ...
    r = timed("import time\ndef f(x):\n    time.sleep(0.05)\n    return x * 2\n", calls=3)
    assert r.status == "ok", r.reason
    assert len(r.cpu_times_s) == 3 and r.cpu_median_s == sorted(r.cpu_times_s)[1]
    assert [c.cpu_s for c in r.calls if not c.warmup] == r.cpu_times_s
    assert min(r.times_s) >= 0.05 and max(r.cpu_times_s) < 0.02
    # ... and work the call hands to another thread counts in full: 0.1 s of CPU spent on
    # a second thread (by that thread's own CPU clock, whatever the machine's load)
    r = timed(
        """
import threading, time

def _spin():
    t0 = time.thread_time()
    while time.thread_time() - t0 < 0.1:
        pass

def f(x):
    t = threading.Thread(target=_spin)
    t.start()
    t.join()
    return x * 2
""",
        calls=3,
    )
    assert r.status == "ok", r.reason
    assert min(r.cpu_times_s) >= 0.1
    # the snapshot after the call (the output read back) is not the call's: a no-op
    # candidate costs almost no CPU
    r = timed("def f(x):\n    return x * 2\n", calls=5)
    assert r.status == "ok", r.reason
    assert r.cpu_median_s < 0.01


ORPHAN_WORKER = """
import os, time

def _spin(s):
    t0 = time.thread_time()
    while time.thread_time() - t0 < s:
        pass

def _ended(pid):  # a zombie (adopted, not reaped), or gone (reaped by whoever adopted it)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True

def f(x):
    r, w = os.pipe()
    a = os.fork()
    if a == 0:
        if os.fork() == 0:  # orphaned at once: adopted by whoever adopts orphans
            _spin(0.1)
            os.write(w, str(os.getpid()).encode())
            os._exit(0)
        os._exit(0)
    os.waitpid(a, 0)  # the middle process did nothing: its reaped time is no help
    os.close(w)
    pid = int(os.read(r, 32))
    os.close(r)
    while not _ended(pid):  # the worker has exited before the call returns
        time.sleep(0.001)
    return x * 2
"""


@pytest.mark.parametrize("namespaces", [True, False], ids=["pid namespace", "no namespaces"])
def test_work_done_in_an_orphan_that_exits_before_the_call_returns_is_on_the_cpu_clock(timed, namespaces):
    # the CPU clock (what a CPU device ranks on) reads the sandbox's processes and what
    # they reaped; an orphan is adopted by the serving process (a child subreaper), so a
    # worker that exits before the call returns stays there, a zombie whose clock still
    # reads. Without that, outside a PID namespace the machine's init adopted it and the
    # work vanished from both the CPU clock and the off-call watch (where init reaps at
    # once; this VM's init reaps late, which the off-call watch saw as deferred work)
    from pytest_aina.sandbox import Isolation

    r = timed(ORPHAN_WORKER, calls=3, isolation=Isolation(namespaces=namespaces))
    assert r.protections["subreaper"] is True
    assert r.status == "ok", r.reason
    assert min(r.cpu_times_s) >= 0.1


def test_an_answer_cached_between_calls_is_a_stale_result(timed):
    r = timed("""
        _cache = []
        def f(x):
            if not _cache:
                _cache.append(x * 2)
            return _cache[0]
    """)
    assert r.status == "stale result"
    assert "returned the answer to call 0's inputs" in r.reason


def test_a_result_with_rows_left_unwritten_is_a_partial_result(timed):
    r = timed("""
        import numpy as np
        def f(x):
            out = np.zeros_like(x)
            out[:5] = x[:5] * 2
            return out
    """)
    assert r.status == "partial result"
    assert "rows 5..7 of 8 are wrong" in r.reason


def test_a_wrong_answer_says_which_call_and_how(timed):
    r = timed("def f(x):\n    return x * 3\n")
    assert r.status == "wrong answer"
    assert r.reason.startswith("wrong answer: call 0 (seed ")
    assert "128 of 128 elements differ" in r.reason
    assert r.calls[-1].problem == "128 of 128 elements differ"


def test_an_output_aliasing_its_input_is_caught(timed):
    r = timed("def f(x):\n    x *= 2\n    return x\n")
    assert r.status == "aliased output"
    assert "output 0 shares memory with input 0" in r.reason


def test_an_input_mutated_is_caught_even_when_the_output_is_right(timed):
    r = timed("def f(x):\n    y = x * 2\n    x[3, 3] = 0.0\n    return y\n")
    assert r.status == "input mutated"
    assert "input 0 differs after call 0" in r.reason


def test_a_lazy_output_subclass_is_refused(timed):
    r = timed("""
        import numpy as np
        class Lazy(np.ndarray):
            pass
        def f(x):
            return (x * 2).view(Lazy)
    """)
    assert r.status == "no result"
    assert "subclass" in r.reason


def test_patching_the_clock_is_a_tampered_clock_and_the_parents_figure_stands(timed):
    r = timed("""
        import time
        _real = time.perf_counter
        time.perf_counter = lambda: _real() / 1000.0   # "my kernel is 1000x faster"
        def f(x):
            time.sleep(0.01)
            return x * 2
    """)
    assert r.status == "tampered clock"
    assert "replaced time.perf_counter" in r.reason
    assert r.calls[0].parent_s >= 0.01


def test_replacing_the_time_module_is_a_tampered_clock(timed):
    r = timed("""
        import sys, time, types
        fake = types.ModuleType("time")
        fake.__dict__.update(time.__dict__)
        fake.perf_counter = lambda: 0.0
        sys.modules["time"] = fake
        def f(x):
            return x * 2
    """)
    assert r.status == "tampered clock"


def test_a_forged_done_frame_is_a_protocol_error(timed):
    # it knows the wire format and the report fd, but not the nonce of the next call
    r = timed("""
        import json, os, struct, sys
        h = json.dumps({"op": "done", "nonce": "guess", "child_ns": 1, "live_s": 0.0, "replaced": []}).encode()
        os.write(int(sys.argv[1]), struct.pack(">II", len(h), 0) + h)
        def f(x):
            return x * 2
    """)
    assert r.status == "protocol error"


def test_a_figure_below_the_physically_plausible_is_a_measurement_error(timed):
    # the caller knows the least time the work can take (bytes / peak bandwidth); a median
    # under it is an error in the measurement, never a win
    r = timed("def f(x):\n    return x * 2\n", min_plausible_s=1.0)
    assert r.status == "measurement error"
    assert "below the physically plausible" in r.reason


def test_a_call_that_hangs_times_out_and_the_session_ends(timed):
    r = timed("import time\ndef f(x):\n    time.sleep(60)\n", call_timeout_s=1.0, limits=Limits(wall_s=30))
    assert r.status == "timeout"
    assert "call 0" in r.reason and "did not return within 1 s" in r.reason
    assert r.wall_s < 10


@pytest.mark.parametrize(
    "source, status",
    [
        ("import os\ndef f(x):\n    os.abort()\n", "crash by signal"),
        ("def f(x):\n    raise ValueError('no')\n", "exception"),
        ("def f(x:\n    pass\n", "syntax error"),
        ("import nope_not_here\ndef f(x):\n    pass\n", "import error"),
        ("import os\ndef f(x):\n    os._exit(0)\n", "no result"),
        ("def f(x):\n    return len(bytearray(2 << 30))\n", "memory limit"),
    ],
)
def test_the_failures_of_a_run_are_failures_of_a_timing_session(timed, source, status):
    r = timed(source, limits=Limits(memory_bytes=512 << 20))
    assert r.status == status, r.reason
    assert r.times_s == []


def test_a_write_outside_during_timing_is_recorded(timed, open_folder):
    r = timed(f"def f(x):\n    open({open_folder!r} + '/x', 'w')\n    return x * 2\n")
    assert r.status == "write outside sandbox"


def test_bad_arguments_are_refused(timed):
    with pytest.raises(ValueError, match="calls=0"):
        timed("def f(x):\n    return x\n", calls=0)
    with pytest.raises(ValueError, match="JSON-able"):
        timed("def f(x):\n    return x\n", params={"rows": object()})


def _calls(parent, child, live):
    return [
        Call(index=i, seed=i, warmup=False, parent_s=p, child_s=c, live_s=lv)
        for i, (p, c, lv) in enumerate(zip(parent, child, live))
    ]


@pytest.mark.parametrize(
    "parent, child, live, tampered",
    [
        ([1e-3] * 5, [0.9e-3] * 5, [0.9e-3] * 5, False),  # consistent
        ([2e-3] * 5, [1e-3] * 5, [1e-3] * 5, False),  # a slow pipe is not tampering
        ([1e-3] * 5, [0.9e-3] * 5, [1e-6] * 5, True),  # the child's perf_counter lies
        ([1e-3] * 5, [5e-3] * 5, [5e-3] * 5, True),  # the child measured more than could pass
        ([0.2] * 5, [1e-4] * 5, [1e-4] * 5, True),  # the child claims 0.1 ms of a 200 ms call
    ],
)
def test_the_clock_judgement(parent, child, live, tampered):
    res = TimingResult(status="ok", reason="ok", floor={"median_s": 5e-5, "min_s": 4e-5})
    if tampered:
        with pytest.raises(Stop) as e:
            judge_clocks(res, _calls(parent, child, live))
        assert e.value.status == "tampered clock"
    else:
        judge_clocks(res, _calls(parent, child, live))


TORCH_HARNESS = """
import torch

def make_inputs(seed, rows=4, cols=100):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, cols, generator=g)]

def reference(x):
    return torch.softmax(x, dim=-1)

def check(out, expected, **params):
    if type(out) is not torch.Tensor or out.shape != expected.shape:
        return f"expected a tensor of shape {tuple(expected.shape)}"
    if not torch.allclose(out, expected, atol=1e-5, rtol=1e-5):
        return f"max error {float((out - expected).abs().max()):.3g}"
"""

TRITON_SOFTMAX = """
import torch, triton, triton.language as tl

@triton.jit
def _softmax(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    i = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n + i, mask=i < n, other=-float("inf"))
    e = tl.exp(x - tl.max(x, 0))
    tl.store(o_ptr + row * n + i, e / tl.sum(e, 0), mask=i < n)

def f(x):
    o = torch.empty_like(x)
    _softmax[(x.shape[0],)](x, o, x.shape[1], BLOCK=triton.next_power_of_2(x.shape[1]))
    return o
"""


def test_a_triton_kernel_in_the_interpreter_under_the_protocol(write):
    harness = write("torch_harness.py", TORCH_HARNESS)
    r = time_calls(
        f"{write('softmax.py', TRITON_SOFTMAX)}:f",
        make_inputs=f"{harness}:make_inputs",
        reference=f"{harness}:reference",
        check=f"{harness}:check",
        calls=3,
        floor_calls=5,
        env={"TRITON_INTERPRET": "1"},
    )
    assert r.status == "ok", r.reason + r.stderr_tail
    assert len(r.times_s) == 3
    assert r.peak_rss_bytes < Limits().memory_bytes


CUDA_EVENT_CHEAT = """
import torch

class FastEvent:
    def __init__(self, *a, **k): pass
    def record(self, *a): pass
    def elapsed_time(self, other): return 0.001

torch.cuda.Event = FastEvent

def f(x):
    return torch.softmax(x, dim=-1)
"""


def test_patching_torch_cuda_event_is_a_tampered_clock(write):
    harness = write("torch_harness.py", TORCH_HARNESS)
    r = time_calls(
        f"{write('cheat.py', CUDA_EVENT_CHEAT)}:f",
        make_inputs=f"{harness}:make_inputs",
        reference=f"{harness}:reference",
        check=f"{harness}:check",
        calls=2,
        floor_calls=5,
    )
    assert r.status == "tampered clock"
    assert "torch.cuda.Event" in r.reason


# -- work done where the parent's clock does not look ------------------------------------

# About 30 ms of pure-Python work, then the right answer written into ``out``.
_SLOW_FILL = """
def _fill(x, out):
    s = 0
    for i in range(600000):
        s += i
    np.multiply(x, 2, out=out)
"""

RETURN_EARLY_HOLD_GIL = (
    """
import sys, threading, time
import numpy as np
"""
    + _SLOW_FILL
    + """
def f(x):
    out = np.empty_like(x)

    def work():
        time.sleep(0.002)          # let the call return and 'done' go out
        sys.setswitchinterval(60)  # then keep the GIL: the snapshot waits for the answer
        _fill(x, out)

    threading.Thread(target=work, daemon=True).start()
    return out
"""
)

WAIT_FOR_NEXT_COMMAND = (
    """
import sys, threading
import numpy as np
"""
    + _SLOW_FILL
    + """
frames = sys.modules["pytest_aina.sandbox.frames"]
_read, pending = frames.Reader.read, []

def read(self, *a, **k):
    while pending:  # the old protocol read a 'collect' command before the snapshot
        pending.pop().join()
    return _read(self, *a, **k)

frames.Reader.read = read

def f(x):
    out = np.empty_like(x)
    t = threading.Thread(target=_fill, args=(x, out), daemon=True)
    t.start()
    pending.append(t)
    return out
"""
)

SPIN_BETWEEN_CALLS = """
import threading

def _spin():
    while True:
        pass

threading.Thread(target=_spin, daemon=True).start()

def f(x):
    return x * 2
"""

HONEST_THREADS = """
import torch
torch.set_num_threads(2)

def f(x):
    return torch.from_numpy(x).mul(2).numpy()
"""


@pytest.mark.parametrize(
    "source", [RETURN_EARLY_HOLD_GIL, WAIT_FOR_NEXT_COMMAND], ids=["finish-in-background", "wait-for-next-command"]
)
def test_returning_early_and_finishing_in_the_background_never_passes_fast(timed, source):
    # (measured before the snapshot moved into the call's answer: the second one passed,
    # 5.4 ms per call against 16.3 ms for the same work done honestly)
    r = timed(source, warmup=1, calls=3)
    # the snapshot is taken as the call ends, before any command is read: the answer is not
    # there yet, or the background work that wrote it is seen; on a busy machine the thread
    # may finish before the call's 'done' goes out, and then its work was timed
    if r.status == "ok":
        assert r.median_s > 0.01, f"{r.median_s * 1e3:.2f} ms for ~30 ms of work"
    else:
        assert r.status in ("wrong answer", "partial result", "deferred work"), r.reason + r.stderr_tail


def test_a_thread_left_running_between_calls_is_deferred_work(write):
    # the parent takes 30 ms over each reference, so the stretch between calls is long
    # enough for a spinning thread to use more than the allowance even on a busy machine
    harness = write(
        "slow_harness.py",
        HARNESS + "\nimport time\n_fast = reference\n\ndef reference(x):\n    time.sleep(0.03)\n    return _fast(x)\n",
    )
    r = time_calls(
        f"{write('spin.py', SPIN_BETWEEN_CALLS)}:f",
        make_inputs=f"{harness}:make_inputs",
        reference=f"{harness}:reference",
        check=f"{harness}:check",
        warmup=1,
        calls=3,
        floor_calls=10,
    )
    assert r.status == "deferred work", r.reason + r.stderr_tail
    assert "call 1's return" in r.reason  # the first timed call: a warm-up may leave one-time work
    assert r.offcall_watch and r.protections["offcall_cpu_watch"] is True


def test_the_off_call_judgement():
    call = Call(index=3, seed=0, warmup=False, parent_s=0.1, child_s=0.1, live_s=0.1)
    offcall.check({1: 0, 2: 10_000_000}, {1: 1_000_000, 2: 10_500_000}, call)  # 1.5 ms: housekeeping
    assert call.offcall_cpu_s == pytest.approx(1.5e-3)
    offcall.check({1: 0}, {1: 4_000_000}, call)  # 4 ms of a 100 ms call: within 2 ms + 3%
    with pytest.raises(Stop) as e:
        offcall.check({1: 0}, {1: 6_000_000}, call)
    assert e.value.status == "deferred work" and "call 3's return" in e.value.reason
    with pytest.raises(Stop):  # a process that appeared since counts with all its time
        offcall.check({1: 0}, {1: 0, 7: 9_000_000}, call)
    offcall.check({1: 0, 7: 9_000_000}, {1: 0}, call)  # one that exited is not negative work
    assert call.offcall_cpu_s == 0
    offcall.check(None, {1: 10**9}, call)  # no accounting on this platform: no verdict


def test_one_window_over_by_a_clock_tick_is_the_clocks_resolution_not_deferred_work():
    call = Call(index=3, seed=0, warmup=False, parent_s=0.01, child_s=0.01, live_s=0.01)
    allowed_ns = int(offcall.allowed_s(call) * 1e9)
    within_a_tick = allowed_ns + int(offcall.TICK_S * 1e9) - 100_000
    forgiven = []
    offcall.check({1: 0}, {1: within_a_tick}, call, forgiven)  # the first: the clock's resolution
    assert forgiven == [call] and call.offcall_cpu_s == pytest.approx(within_a_tick / 1e9)
    later = Call(index=4, seed=0, warmup=False, parent_s=0.01, child_s=0.01, live_s=0.01)
    with pytest.raises(Stop) as e:  # a second one in the same session is work left behind
        offcall.check({1: 0}, {1: within_a_tick}, later, forgiven)
    assert e.value.status == "deferred work" and "call 4's return" in e.value.reason
    with pytest.raises(Stop):  # more than a tick over is never the clock, even the first time
        offcall.check({1: 0}, {1: within_a_tick + 200_000}, call, [])
    with pytest.raises(Stop):  # without a session's record (the old call form) nothing is forgiven
        offcall.check({1: 0}, {1: allowed_ns + 100_000}, call)


def test_an_honest_multithreaded_kernel_is_not_deferred_work(timed):
    # OpenMP workers would spin for milliseconds after each parallel region; the sandbox
    # makes them sleep (OMP_WAIT_POLICY=PASSIVE), so a kernel using two threads passes
    r = timed(HONEST_THREADS, warmup=1, calls=5, params={"rows": 512, "cols": 4096})
    assert r.status == "ok", r.reason + r.stderr_tail
    timed_calls = [c for c in r.calls if not c.warmup]
    assert all(c.offcall_cpu_s is not None for c in timed_calls)
    # typically 0.1-0.5 ms a window; at most one may carry a scheduler tick of the call's
    # own work that the kernel had not yet put on the clock when the call ended
    over = [c for c in timed_calls if c.offcall_cpu_s >= 2e-3]
    assert len(over) <= 1, [c.offcall_cpu_s for c in over]
    assert all(c.offcall_cpu_s <= offcall.allowed_s(c) + offcall.TICK_S for c in over)


def test_a_torch_mode_left_active_is_deferred_work(write):
    harness = write("torch_harness.py", TORCH_HARNESS)
    source = (
        "import torch\nfrom torch.overrides import TorchFunctionMode\n\n"
        "class Later(TorchFunctionMode):\n"
        "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
        "        return func(*args, **(kwargs or {}))\n\n"
        "def f(x):\n    Later().__enter__()\n    return torch.softmax(x, dim=-1)\n"
    )
    r = time_calls(
        f"{write('mode.py', source)}:f",
        make_inputs=f"{harness}:make_inputs",
        reference=f"{harness}:reference",
        check=f"{harness}:check",
        calls=2,
        floor_calls=5,
    )
    assert r.status == "deferred work", r.reason + r.stderr_tail
    assert "mode" in r.reason
