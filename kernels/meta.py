"""Meta-parameters as every launcher takes them: a caller's choices checked against the
kernel's ``TUNABLES``, the heuristic's filling the rest."""

from __future__ import annotations

#: Programs a GPU launch should keep so that every SM of a large GPU (H100/H200: 132) has
#: work, about two each: the figure the launch heuristics were written for.
GPU_CONCURRENT_PROGRAMS = 256


def concurrent_programs(device) -> int:
    """How many programs of one launch ``device`` (a ``torch.device``) runs at the same time,
    as a launch heuristic needs to know it: on a GPU, :data:`GPU_CONCURRENT_PROGRAMS`; on a
    CPU, 1, since Triton runs the programs of a launch on CPU tensors one after another,
    each as whole-tile array operations, so a few large tiles beat many small ones.

    A heuristic asks this of the device its tensors live on, never how Triton was set up:
    the kernel code is the same on both."""
    return 1 if device.type == "cpu" else GPU_CONCURRENT_PROGRAMS


def serial(device) -> bool:
    """``device`` runs a launch's programs one at a time (a CPU): fewer, larger tiles win."""
    return concurrent_programs(device) == 1


def resolve_config(fn: str, tunables: dict, config: dict, heuristic: dict) -> dict:
    """Check a caller's meta-parameters against ``tunables``; None (or absent) takes the heuristic."""
    for key, value in config.items():
        if key not in tunables:
            raise ValueError(f"{fn}: unknown meta-parameter {key!r}; tunables are {', '.join(tunables)}")
        if value is not None and value not in tunables[key]:
            raise ValueError(f"{fn}: {key}={value!r} is not allowed; choose one of {tunables[key]}")
    return {k: (config[k] if config.get(k) is not None else heuristic[k]) for k in tunables}
