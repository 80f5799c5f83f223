#!/usr/bin/env python
"""Make telemetry/sample-fleet-day.jsonl: one synthetic day of an LLM-serving fleet.

    .venv/bin/python scripts/make_sample_telemetry.py            # writes the committed sample
    .venv/bin/python scripts/make_sample_telemetry.py --out x.jsonl --seed 3

SYNTHETIC. No GPU produced these numbers: latencies come from the model below, so the
sample exercises the Reasoner on a realistic *structure* (services, shape mixes, devices,
a diurnal load, a change half-way), not on measured performance. Every window says so in
``versions.generator``.

The fleet, aggregated per service (one window per kernel x shape x dtype x device per 10
minutes, as a collector merging its replicas would send them):

* chat-prefill: 16 x H100 SXM, bfloat16, an 8B model (hidden 4096, vocabulary 128256):
  rms_norm over prompt chunks (M = tokens per chunk; 65 per chunk: 2 per layer x 32 + the
  final norm), softmax over the vocabulary for the last token of each sequence.
* chat-decode: 48 x H100 SXM, bfloat16, same model, 30 decode steps a second: rms_norm
  (65 a step) and the sampling softmax over the vocabulary (1 a step), M = the running batch.
* embed-rerank: 4 x L4, float16, a BERT-large-like encoder (24 layers, 16 heads, hidden
  1024, eager attention): layer_norm (M = batch x sequence, N = 1024) and the attention
  softmax (M = batch x heads x sequence, N = sequence), 160 sequences a second.
* batch-summarize: 8 x A100 80GB, bfloat16, a 13B model (hidden 5120, 40 heads of 128,
  vocabulary 32000), one 4096- or 8192-token chunk a second, mostly at night: rms_norm,
  the LM head (matmul, M = tokens, N = 32000, K = 5120, once per chunk), attention over the
  chunk (B = 1, H = 40, S = tokens, D = 128) in the 4 layers this service runs with these
  kernels (the others in a vendor library the fleet does not instrument) and, to rank
  candidate summaries by their likelihood, cross_entropy over the vocabulary (N = 512
  candidate tokens, 4 per chunk).

At 12:00 UTC the chat services change configuration: prefill chunks go from 2048 to
8192 tokens, and decode batches shrink (long agentic sessions: fewer, longer requests),
so the shape mix of rms_norm and softmax shifts while the total load follows the day.

Latency model per call: 2.5 us (launch and tail) + bytes / (peak bandwidth x f), where
bytes comes from the kernel's spec and f = 0.82 x min(1, M / (2 x SMs)) ** 0.9: a row-wise
kernel with one program per row only keeps the GPU busy with at least about two rows per
SM, which is why decode-sized calls sit far below the roofline. Kernels with a ``flops``
model (matmul, attention) take max(bytes / bandwidth, flops / tensor-core peak) / 0.85:
well-tuned tiled kernels at large shapes, near their roofline, so the Reasoner finds
little to gain there (attention's flops are its spec's default, non-causal count:
telemetry windows carry no arguments). Quantiles are spread around the mean with a fixed
shape and a little noise.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_aina.devices import lookup  # noqa: E402
from pytest_aina.spec.model import load_spec  # noqa: E402
from pytest_aina.telemetry.window import Latency, Window  # noqa: E402
from pytest_aina.telemetry.wire import encode_line  # noqa: E402

H100 = ("NVIDIA H100 80GB HBM3", "sm_90", 132)
A100 = ("NVIDIA A100-SXM4-80GB", "sm_80", 108)
L4 = ("NVIDIA L4", "sm_89", 58)
LAUNCH_S = 2.5e-6
SHIFT_HOUR = 12

# (service, device, gpus, dtype, load(hour) in [0, 1])
SERVICES = {
    "chat-prefill": (H100, 16, "bfloat16", lambda h: 0.35 + 0.65 * _day(h)),
    "chat-decode": (H100, 48, "bfloat16", lambda h: 0.35 + 0.65 * _day(h)),
    "embed-rerank": (L4, 4, "float16", lambda h: 0.5 + 0.5 * _day(h)),
    "batch-summarize": (A100, 8, "bfloat16", lambda h: 0.15 + 0.85 * _night(h)),
}


def _day(h: float) -> float:
    """Diurnal user traffic, peaking at 16:00 UTC."""
    return 0.5 + 0.5 * math.cos((h - 16) / 24 * 2 * math.pi)


def _night(h: float) -> float:
    """Batch jobs fill the fleet at night, peaking at 03:00 UTC."""
    return 0.5 + 0.5 * math.cos((h - 3) / 24 * 2 * math.pi)


def calls_per_s(service: str, hour: float) -> dict:
    """(kernel, dims) -> calls per second per GPU at full load, for the service's mix at this hour."""
    after = hour >= SHIFT_HOUR
    mix: dict = {}
    if service == "chat-prefill":
        chunk = 8192 if after else 2048
        chunks_per_s = 2.5 if after else 10.0  # the same tokens per second either way
        for tokens, w in ((chunk, 0.7), (chunk // 2, 0.2), (chunk // 4, 0.1)):
            mix[("rms_norm", (("M", tokens), ("N", 4096)))] = chunks_per_s * w * 65
            seqs = max(1, tokens // 1024)
            mix[("softmax", (("M", seqs), ("N", 128256)))] = chunks_per_s * w
    elif service == "chat-decode":
        batches = (8, 16, 24, 32, 48) if after else (64, 96, 128, 192, 256)
        weights = (0.3, 0.3, 0.2, 0.12, 0.08) if after else (0.1, 0.2, 0.3, 0.25, 0.15)
        steps_per_s = 30.0
        for b, w in zip(batches, weights):
            mix[("rms_norm", (("M", b), ("N", 4096)))] = steps_per_s * w * 65
            mix[("softmax", (("M", b), ("N", 128256)))] = steps_per_s * w
    elif service == "embed-rerank":
        for batch, seq, w in ((8, 512, 0.4), (4, 512, 0.3), (8, 256, 0.2), (8, 128, 0.1)):
            per_s = 160.0 * w / batch  # batches a second
            mix[("layer_norm", (("M", batch * seq), ("N", 1024)))] = per_s * 48  # 24 layers x 2 norms
            mix[("softmax", (("M", batch * 16 * seq), ("N", seq)))] = per_s * 24
    elif service == "batch-summarize":
        for tokens, w in ((8192, 0.6), (4096, 0.4)):
            mix[("rms_norm", (("M", tokens), ("N", 5120)))] = 1.0 * w * 81
            mix[("softmax", (("M", tokens // 2048), ("N", 32000)))] = 1.0 * w
            mix[("matmul", (("M", tokens), ("N", 32000), ("K", 5120)))] = 1.0 * w
            mix[("attention", (("B", 1), ("H", 40), ("S", tokens), ("D", 128)))] = 1.0 * w * 4
        mix[("cross_entropy", (("N", 512), ("V", 32000)))] = 4.0
    return mix


def mean_latency(spec, dims: dict, dtype: str, device: tuple) -> float:
    name, _, sms = device
    limits = lookup(name)
    bw = limits.hbm_bytes_per_s
    flops = spec.flops_for(dims, dtype)
    if flops is not None:
        return LAUNCH_S + max(spec.bytes_for(dims, dtype) / bw, flops / limits.flops_for(dtype)) / 0.85
    rows = dims.get("M", dims.get("N"))  # one program per row: M, or cross-entropy's N
    f = 0.82 * min(1.0, rows / (2 * sms)) ** 0.9
    return LAUNCH_S + spec.bytes_for(dims, dtype) / (bw * f)


#: The kernels the sample first had. The others draw their noise from a second generator, so
#: adding a kernel adds windows and leaves every earlier one as it was.
FIRST_KERNELS = ("softmax", "rms_norm", "layer_norm")


def make(out: Path, *, seed: int, start: datetime, window_min: int) -> int:
    rng = random.Random(seed)
    later = random.Random(seed + 1)
    kernels = ("softmax", "rms_norm", "layer_norm", "matmul", "attention", "cross_entropy")
    specs = {k: load_spec(ROOT / "specs" / f"{k}.yaml") for k in kernels}
    t0 = start.timestamp()
    step = window_min * 60
    n = 0
    with out.open("w") as fh:
        for i in range(24 * 60 // window_min):
            ws, we = t0 + i * step, t0 + (i + 1) * step
            hour = (i + 0.5) * step / 3600
            for service, (device, gpus, dtype, load) in SERVICES.items():
                level = load(hour) * rng.uniform(0.92, 1.08)
                for (kernel, dims), rate in sorted(calls_per_s(service, hour).items()):
                    calls = int(rate * gpus * level * step)
                    if calls == 0:
                        continue
                    noise = rng if kernel in FIRST_KERNELS else later
                    mean = mean_latency(specs[kernel], dict(dims), dtype, device) * noise.lognormvariate(0, 0.03)
                    lat = Latency(min=mean * 0.9, p50=mean * 0.98, p90=mean * 1.06, p99=mean * 1.25, max=mean * 2.5)
                    w = Window(
                        start=ws,
                        end=we,
                        service=service,
                        kernel=kernel,
                        variant="generic",
                        dims=dims,
                        dtype=dtype,
                        device=device[0],
                        arch=device[1],
                        calls=calls,
                        time_s=mean * calls,
                        latency=lat,
                        timing="cuda_event",
                        versions=(("aina", "0.1.0"), ("generator", "scripts/make_sample_telemetry.py seed=%d" % seed)),
                    )
                    fh.write(encode_line(w) + "\n")
                    n += 1
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "telemetry" / "sample-fleet-day.jsonl", metavar="FILE")
    p.add_argument("--seed", type=int, default=20250602)
    p.add_argument("--date", default="2025-06-02", help="the UTC day to cover (default: %(default)s)")
    p.add_argument(
        "--window-min",
        type=int,
        default=10,
        choices=[1, 5, 10, 15, 30, 60],
        metavar="MIN",
        help="window length in minutes (default: %(default)s)",
    )
    args = p.parse_args(argv)
    start = datetime.fromisoformat(args.date).replace(tzinfo=UTC)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    n = make(args.out, seed=args.seed, start=start, window_min=args.window_min)
    print(f"{args.out}: {n} windows, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
