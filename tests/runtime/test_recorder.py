"""The recorder against a real HTTP endpoint on loopback, a file, and hostile conditions."""

from __future__ import annotations

import json
import random
import threading

import pytest

from pytest_aina.runtime import Recorder
from pytest_aina.runtime import recorder as recorder_mod
from pytest_aina.telemetry import wire
from pytest_aina.telemetry.validate import read_batch, read_file

SECRET = "s3cret-for-tests"
KEY = ("softmax", "generic", (("M", 8), ("N", 1024)), "float16", "NVIDIA L4", "sm_89", "wall")


def make(**kw) -> Recorder:
    kw.setdefault("window_s", 3600)  # the tests close windows with flush()
    return Recorder("test-svc", **kw)


def test_batches_arrive_signed_and_valid(receiver):
    rec = make(url=receiver.url, secret=SECRET, versions={"kernels": "abc123"})
    for i in range(100):
        rec.add(KEY, 1e-5 * (1 + i % 10))
    rec.add(KEY[:1] + ("wide",) + KEY[2:], 3e-5)
    assert rec.flush(5)
    rec.close()

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert wire.verify(SECRET, body, headers[wire.SIGNATURE_HEADER])
    assert not wire.verify("another secret", body, headers[wire.SIGNATURE_HEADER])
    assert not wire.verify(SECRET, body + b" ", headers[wire.SIGNATURE_HEADER])

    windows, issues = read_batch(body)
    assert issues == []
    by_variant = {w.variant: w for w in windows}
    assert set(by_variant) == {"generic", "wide"}
    g = by_variant["generic"]
    assert g.calls == 100 and g.service == "test-svc" and g.dim_map == {"M": 8, "N": 1024}
    assert g.time_s == pytest.approx(sum(1e-5 * (1 + i % 10) for i in range(100)))
    assert g.latency.min == pytest.approx(1e-5) and g.latency.max == pytest.approx(1e-4)
    assert dict(g.versions)["kernels"] == "abc123"
    assert rec.stats()["sent_batches"] == 1 and rec.stats()["sent_windows"] == 2


def test_quantiles_track_the_true_distribution(receiver):
    rng = random.Random(7)
    samples = [rng.lognormvariate(-11, 0.6) for _ in range(20_000)]
    rec = make(url=receiver.url, secret=SECRET)
    for s in samples:
        rec.add(KEY, s)
    rec.close()
    (w,), _ = read_batch(receiver.requests[0][1])
    ordered = sorted(samples)
    for q, got in ((0.5, w.latency.p50), (0.9, w.latency.p90), (0.99, w.latency.p99)):
        true = ordered[int(q * len(ordered)) - 1]
        assert got == pytest.approx(true, rel=0.03), q
    assert w.latency.min == min(samples) and w.latency.max == max(samples)


def test_file_sink_appends_jsonl_windows(tmp_path):
    path = tmp_path / "out.jsonl"
    rec = make(path=path)
    rec.record(
        "rms_norm", 2e-5, dims={"M": 4, "N": 4096}, dtype="bfloat16", device="NVIDIA H100 80GB HBM3", arch="sm_90"
    )
    rec.flush()
    rec.record(
        "rms_norm", 3e-5, dims={"M": 4, "N": 4096}, dtype="bfloat16", device="NVIDIA H100 80GB HBM3", arch="sm_90"
    )
    rec.close()
    windows, issues = read_file(path)
    assert issues == []
    assert [w.calls for w in windows] == [1, 1]
    # consecutive windows do not overlap, up to the millisecond the wire format keeps
    # (and float error at ~1.8e9 s since the epoch)
    assert windows[0].end <= windows[1].start + 1e-3 + 1e-6


def test_dead_endpoint_drops_batches_and_counts_them(dead_url):
    rec = make(url=dead_url, secret=SECRET, timeout_s=1)
    rec.add(KEY, 1e-5)
    assert rec.flush(5)
    stats = rec.stats()
    assert stats["dropped_batches"] == 1 and stats["dropped_windows"] == 1 and stats["sent_batches"] == 0
    assert "Connection refused" in stats["last_error"] or "refused" in stats["last_error"].lower()
    rec.close()


def test_a_hung_endpoint_never_holds_up_the_calls(receiver):
    """Causal, not timed: the endpoint holds the first batch until we release it, and
    every later call and window close completes while it is still held."""
    receiver.mode = "hang"
    rec = make(url=receiver.url, secret=SECRET, timeout_s=30, max_queued_batches=2)
    rec.add(KEY, 1e-5)
    rec._enqueue(rec._roll())
    assert receiver.arrived.wait(5)  # the sender is now stuck inside the POST

    for _round in range(5):  # 5 more windows: 2 wait in the queue, 3 are dropped
        for _ in range(1000):
            rec.add(KEY, 1e-5)
        rec._enqueue(rec._roll())
    assert not receiver.release.is_set()  # all of that happened while the POST hung
    stats = rec.stats()
    assert stats["dropped_batches"] == 3 and stats["queued_batches"] == 2

    receiver.release.set()
    assert rec.flush(10)
    assert rec.stats()["sent_batches"] == 3
    rec.close()


def test_error_status_counts_as_dropped(receiver):
    receiver.mode = "error"
    rec = make(url=receiver.url, secret=SECRET)
    rec.add(KEY, 1e-5)
    rec.flush(5)
    assert rec.stats()["dropped_batches"] == 1
    assert "500" in rec.stats()["last_error"]
    rec.close()


def test_thread_safe_counts(tmp_path):
    rec = make(path=tmp_path / "t.jsonl")
    keys = [KEY[:2] + ((("M", m), ("N", 1024)),) + KEY[3:] for m in (1, 2, 3, 4)]

    def work(i):
        for j in range(2000):
            rec.add(keys[(i + j) % 4], 1e-6)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    # close windows while the threads run: no call may be lost or counted twice
    for _ in range(5):
        rec._enqueue(rec._roll())
    for t in threads:
        t.join()
    rec.close()
    windows, issues = read_file(tmp_path / "t.jsonl")
    assert issues == []
    assert sum(w.calls for w in windows) == 8 * 2000


def test_too_many_keys_are_dropped_not_grown(tmp_path):
    rec = make(path=tmp_path / "k.jsonl", max_keys=3)
    for m in range(10):
        rec.add(KEY[:2] + ((("M", m + 1),),) + KEY[3:], 1e-6)
    assert rec.stats()["open_keys"] == 3 and rec.stats()["dropped_calls"] == 7
    rec.close()


def test_measure_decorator_never_breaks_the_call(tmp_path):
    rec = make(path=tmp_path / "m.jsonl")

    class Tensor:  # a duck-typed CPU tensor: the recorder reads dtype and device only
        dtype = "torch.float32"

        class device:
            type = "cpu"

    @rec.measure("softmax", dims=lambda x: {"M": 2, "N": 3})
    def good(x):
        return "ok"

    @rec.measure("softmax", dims=lambda x: 1 / 0)
    def bad_dims(x):
        return "still ok"

    assert good(Tensor()) == "ok"
    assert bad_dims(Tensor()) == "still ok"
    stats = rec.stats()
    assert stats["record_errors"] == 1 and "ZeroDivisionError" in stats["last_error"]
    rec.close()
    (w,), issues = read_file(tmp_path / "m.jsonl")
    assert issues == [] and (w.kernel, w.dtype, w.device, w.arch, w.calls) == ("softmax", "float32", "cpu", "cpu", 1)


def test_disabled_recorder_records_nothing(tmp_path):
    rec = make(path=tmp_path / "d.jsonl", enabled=False)

    @rec.measure("softmax", dims={"M": 1, "N": 1}, dtype="float16", device="cpu", arch="cpu")
    def f():
        return 1

    with rec.span("softmax", dims={"M": 1, "N": 1}, dtype="float16", device="cpu", arch="cpu"):
        f()
    rec.close()
    assert not (tmp_path / "d.jsonl").exists()


def test_span_records_one_call_and_skips_a_failed_block(tmp_path):
    rec = make(path=tmp_path / "s.jsonl")
    with rec.span("layer_norm", dims={"M": 3, "N": 768}, dtype="float16", device="NVIDIA L4", arch="sm_89"):
        pass
    with pytest.raises(RuntimeError):
        with rec.span("layer_norm", dims={"M": 3, "N": 768}, dtype="float16", device="NVIDIA L4", arch="sm_89"):
            raise RuntimeError("kernel failed")
    rec.close()
    (w,), _ = read_file(tmp_path / "s.jsonl")
    assert w.calls == 1


def test_pending_latencies_resolve_at_window_close(tmp_path):
    rec = make(path=tmp_path / "p.jsonl")
    key = KEY[:6] + ("cuda_event",)
    rec.add_pending(key, lambda: 2e-5)
    rec.add_pending(key, lambda: 4e-5)
    rec.add_pending(key, lambda: None)  # an event that never completed: counted, time estimated
    rec.close()
    (w,), _ = read_file(tmp_path / "p.jsonl")
    assert w.calls == 3 and w.timing == "cuda_event"
    assert w.time_s == pytest.approx(9e-5)  # 2e-5 + 4e-5 + the mean 3e-5
    assert rec.stats()["unresolved_calls"] == 1


def test_context_manager_installs_for_dispatch(tmp_path):
    assert recorder_mod.ACTIVE is None
    with make(path=tmp_path / "c.jsonl") as rec:
        assert recorder_mod.ACTIVE is rec
    assert recorder_mod.ACTIVE is None


def test_window_timer_closes_windows_on_its_own(tmp_path):
    path = tmp_path / "w.jsonl"
    rec = Recorder("svc", path=path, window_s=0.05)
    rec.add(KEY, 1e-5)
    # wait on the file, not on a clock: the ticker must produce it by itself
    for _ in range(400):
        if path.exists() and path.read_text():
            break
        threading.Event().wait(0.01)
    rec.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["calls"] == 1


def test_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="needs a secret"):
        Recorder("svc", url="http://127.0.0.1:9/x")
    with pytest.raises(ValueError, match="give a url"):
        Recorder("svc")
    with pytest.raises(ValueError, match="service"):
        Recorder("", path="x")


def test_from_env(tmp_path):
    assert Recorder.from_env(environ={}) is None
    assert Recorder.from_env(environ={"AINA_TELEMETRY": "0", "AINA_TELEMETRY_FILE": "x"}) is None
    rec = Recorder.from_env(
        environ={
            "AINA_TELEMETRY_FILE": str(tmp_path / "e.jsonl"),
            "AINA_SERVICE": "svc-e",
            "AINA_TELEMETRY_WINDOW_S": "30",
        }
    )
    assert rec.service == "svc-e" and rec.window_s == 30
    rec.close()
