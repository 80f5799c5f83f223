"""The settings of an evolution run: one typed, checked object for ``aina evolve`` and the App.

``aina evolve`` builds :class:`EvolutionSettings` from its flags; the GitHub App parses its
``EVOLUTION`` setting (JSON in ``AINA_EVOLUTION``) with :meth:`EvolutionSettings.from_json`
when it starts, so a misspelt key or a wrong value stops it there, with the key named,
instead of silently becoming a default on the first run. The JSON form::

    {"proposers": ["metaparams"],                  # names: built in, or aina.proposers entry points
     "proposer_config": {"llm": {"model": "openai/gpt-4o", "api_key_env": "OPENAI_API_KEY"}},
     "budget": {"evaluations": 24, "wall_s": 600, "tokens": 250000},  # tokens null: no limit
     "seed": 0,
     "workers": 2,                                 # default: min(2, CPU cores); Ray: the cluster's
     "device": null,                               # "cpu" or "cuda"; null: the executor's (this machine's)
     "telemetry": null,                            # a telemetry file to digest into the record
     "executor": "local",                          # where evaluations run: "local" or "ray"
     "ray_address": null}                          # executor "ray": the head, HOST:PORT; null: RAY_ADDRESS

Nothing secret belongs here: the settings reach the loop, whose candidates are untrusted
code. An LLM's key is named (``api_key_env``), never given.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_aina.changer.proposers.base import available

DEVICES = ("cpu", "cuda")

#: Where a search's evaluations run (pytest_aina.changer.executors): this machine's pool of
#: sandboxes, or one Ray task per candidate on a cluster.
EXECUTORS = ("local", "ray")


#: LLM tokens (prompt + completion, every call, answers that gave no candidate included) a
#: search may spend unless told otherwise: about 25 proposals of a softmax-sized prompt. A
#: run that needs more says so (``stopped_by: tokens``); ``null`` / ``--budget-tokens none``
#: lifts the limit.
DEFAULT_TOKEN_BUDGET = 250_000


class SettingsError(ValueError):
    """A setting is unknown or wrong; the message names it (``budget.wall_s``, ...)."""


@dataclass(frozen=True)
class Budget:
    """What a search may spend: candidates evaluated, wall time, LLM tokens."""

    evaluations: int = 24
    wall_s: float = 600.0
    tokens: int | None = DEFAULT_TOKEN_BUDGET  # LLM tokens, prompt + completion; None: no limit

    def __post_init__(self):
        if isinstance(self.evaluations, bool) or not isinstance(self.evaluations, int) or self.evaluations < 1:
            raise SettingsError(f"budget.evaluations must be a whole number >= 1, got {self.evaluations!r}")
        if isinstance(self.wall_s, bool) or not isinstance(self.wall_s, (int, float)) or self.wall_s <= 0:
            raise SettingsError(f"budget.wall_s must be a number of seconds > 0, got {self.wall_s!r}")
        if self.tokens is not None and (
            isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 0
        ):
            raise SettingsError(f"budget.tokens must be a whole number >= 0 or null, got {self.tokens!r}")

    def as_dict(self) -> dict:
        return {"evaluations": self.evaluations, "wall_s": self.wall_s, "tokens": self.tokens}


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class EvolutionSettings:
    proposers: tuple[str, ...] = ("metaparams",)
    proposer_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    seed: int = 0
    workers: int | None = None  # None: min(2, CPU cores) locally; on Ray, the cluster's GPUs (or CPUs)
    device: str | None = None
    telemetry: str | None = None
    executor: str = "local"
    ray_address: str | None = None  # executor "ray"; None: RAY_ADDRESS, read when the settings are made

    def __post_init__(self):
        if (
            not isinstance(self.proposers, tuple)
            or not self.proposers
            or not all(isinstance(p, str) and p for p in self.proposers)
        ):
            raise SettingsError(f"proposers must be a non-empty list of names, got {self.proposers!r}")
        unknown = [p for p in self.proposers if p not in available()]
        if unknown:
            raise SettingsError(f"proposers: unknown {unknown}; available: {', '.join(available())}")
        if not isinstance(self.proposer_config, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in self.proposer_config.items()
        ):
            raise SettingsError(
                f"proposer_config must map proposer names to objects of their options, got {self.proposer_config!r}"
            )
        if "llm" in self.proposers and not (self.proposer_config.get("llm") or {}).get("model"):
            raise SettingsError(
                "proposers: llm needs proposer_config.llm.model (a litellm model, e.g. "
                "openai/gpt-4o; and api_base / api_key_env for your provider)"
            )
        if not isinstance(self.budget, Budget):
            raise SettingsError(f"budget must be a Budget, got {type(self.budget).__name__}")
        if self.executor not in EXECUTORS:
            raise SettingsError(f"executor must be one of {list(EXECUTORS)}, got {self.executor!r}")
        self._check_ray()
        if self.workers is None and self.executor == "local":
            object.__setattr__(self, "workers", default_workers())
        for name in ("seed", "workers"):
            value = getattr(self, name)
            if name == "workers" and value is None:
                continue  # executor "ray": as many as the cluster has GPUs (or CPUs), counted when it connects
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "workers" else 0):
                raise SettingsError(f"{name} must be a whole number >= {1 if name == 'workers' else 0}, got {value!r}")
        if self.device is not None and self.device not in DEVICES:
            raise SettingsError(f"device must be one of {list(DEVICES)} or null (this machine's), got {self.device!r}")
        if self.telemetry is not None and not isinstance(self.telemetry, str):
            raise SettingsError(f"telemetry must be a file path or null, got {self.telemetry!r}")

    def _check_ray(self) -> None:
        """``ray_address`` goes with executor ``ray`` only; executor ``ray`` needs an address
        (given, or ``RAY_ADDRESS``) and Ray installed (looked up, not imported)."""
        address = self.ray_address
        if address is not None and (not isinstance(address, str) or not address.strip() or " " in address.strip()):
            raise SettingsError(f"ray_address must be the Ray head's HOST:PORT (or null), got {address!r}")
        if self.executor != "ray":
            if address is not None:
                raise SettingsError(
                    f"ray_address {address!r} is set but executor is {self.executor!r}: set executor to 'ray' "
                    "(aina evolve --executor ray) to run the evaluations on that cluster, or drop ray_address"
                )
            return
        address = (address or os.environ.get("RAY_ADDRESS") or "").strip()
        if not address:
            raise SettingsError(
                "executor 'ray' needs the cluster's address: ray_address (aina evolve --ray-address HOST:PORT) "
                "or RAY_ADDRESS in the environment, HOST:PORT of the head node started with "
                "`ray start --head --port=PORT`"
            )
        if importlib.util.find_spec("ray") is None:
            raise SettingsError(
                "executor 'ray' needs Ray on this machine and on every node of the cluster: pip install 'pytest-aina[ray]'"
            )
        object.__setattr__(self, "ray_address", address)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | EvolutionSettings | None) -> EvolutionSettings:
        """The settings in ``data`` (the JSON form above; missing keys take their defaults).
        Raises :class:`SettingsError` naming an unknown key or a wrong value."""
        if isinstance(data, EvolutionSettings):
            return data
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise SettingsError(f"must be a JSON object ({', '.join(_KEYS)}), got {data!r}")
        unknown = sorted(set(map(str, data)) - set(_KEYS))
        if unknown:
            raise SettingsError(f"unknown key(s) {unknown}; known: {', '.join(_KEYS)}")
        values: dict[str, Any] = {k: data[k] for k in _KEYS if k in data}
        if "proposers" in values:
            p = values["proposers"]
            values["proposers"] = tuple(p) if isinstance(p, (list, tuple)) else p
        if "proposer_config" in values and isinstance(values["proposer_config"], Mapping):
            values["proposer_config"] = {
                k: dict(v) if isinstance(v, Mapping) else v for k, v in values["proposer_config"].items()
            }
        if "budget" in values:
            b = values["budget"]
            if not isinstance(b, Mapping):
                raise SettingsError(f"budget must be an object (evaluations, wall_s, tokens), got {b!r}")
            unknown = sorted(set(map(str, b)) - {"evaluations", "wall_s", "tokens"})
            if unknown:
                raise SettingsError(f"budget: unknown key(s) {unknown}; known: evaluations, wall_s, tokens")
            values["budget"] = Budget(**b)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {
            "proposers": list(self.proposers),
            "proposer_config": {k: dict(v) for k, v in self.proposer_config.items()},
            "budget": self.budget.as_dict(),
            "seed": self.seed,
            "workers": self.workers,
            "device": self.device,
            "telemetry": self.telemetry,
            "executor": self.executor,
            "ray_address": self.ray_address,
        }


_KEYS = ("proposers", "proposer_config", "budget", "seed", "workers", "device", "telemetry", "executor", "ray_address")
