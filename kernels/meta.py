"""Meta-parameters as every launcher takes them: a caller's choices checked against the
kernel's ``TUNABLES``, the heuristic's filling the rest."""

from __future__ import annotations


def resolve_config(fn: str, tunables: dict, config: dict, heuristic: dict) -> dict:
    """Check a caller's meta-parameters against ``tunables``; None (or absent) takes the heuristic."""
    for key, value in config.items():
        if key not in tunables:
            raise ValueError(f"{fn}: unknown meta-parameter {key!r}; tunables are {', '.join(tunables)}")
        if value is not None and value not in tunables[key]:
            raise ValueError(f"{fn}: {key}={value!r} is not allowed; choose one of {tunables[key]}")
    return {k: (config[k] if config.get(k) is not None else heuristic[k]) for k in tunables}
