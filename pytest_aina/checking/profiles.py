"""Profiles bound the cost of property testing (``--aina-profile ci|dev|thorough``).

On a CPU every kernel runs in Triton's interpreter, where each program instance is
Python executing numpy: cost grows with the number of rows (programs) far more than with
row width. So a profile caps elements per input and rows separately, and keeps a wide-row
budget so the looped path of a kernel is still exercised. On a GPU the caps are larger.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    max_examples: int  # Hypothesis examples per property item
    invariant_examples: int
    max_numel: int  # elements per input
    max_rows: int  # product of all dims but the last
    derandomize: bool  # CI must be reproducible run to run
    description: str


CPU_PROFILES = {
    "ci": Profile("ci", 12, 4, 1 << 16, 48, True, "fast and deterministic, for every push"),
    "dev": Profile("dev", 40, 10, 1 << 18, 256, False, "a few minutes, random, for a kernel author"),
    "thorough": Profile("thorough", 200, 40, 1 << 20, 2048, False, "long; before a release or on a schedule"),
}

# On a GPU the interpreter's cost is gone: test far larger inputs in the same time.
GPU_SCALE = 256


def get(name: str, device: str = "cpu") -> Profile:
    p = CPU_PROFILES[name]
    if device == "cuda":
        return Profile(
            p.name,
            p.max_examples,
            p.invariant_examples,
            p.max_numel * GPU_SCALE,
            p.max_rows * GPU_SCALE,
            p.derandomize,
            p.description,
        )
    return p
