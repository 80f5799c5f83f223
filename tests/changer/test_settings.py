"""EvolutionSettings: the one type ``aina evolve`` builds from its flags and the App parses
from its EVOLUTION setting; a misspelt key is an error naming it, never a silent default."""

from __future__ import annotations

import json

import pytest

from pytest_aina.changer.settings import DEFAULT_TOKEN_BUDGET, Budget, EvolutionSettings, SettingsError, default_workers


def test_defaults_are_the_apps_and_round_trip_through_json():
    s = EvolutionSettings.from_json({})
    assert s == EvolutionSettings() == EvolutionSettings.from_json(None)
    assert s.proposers == ("metaparams",) and s.proposer_config == {} and s.seed == 0 and s.device is None
    assert (
        s.budget == Budget(evaluations=24, wall_s=600.0, tokens=DEFAULT_TOKEN_BUDGET) and s.workers == default_workers()
    )
    full = {
        "proposers": ["metaparams", "llm"],
        "proposer_config": {"llm": {"model": "openai/x", "api_key_env": "KEY"}},
        "budget": {"evaluations": 2, "wall_s": 400, "tokens": 1000},
        "seed": 3,
        "workers": 1,
        "device": "cpu",
        "telemetry": "telemetry/day.jsonl",
        "executor": "local",
        "ray_address": None,
    }
    s = EvolutionSettings.from_json(json.loads(json.dumps(full)))
    assert s.to_json() == full and EvolutionSettings.from_json(s.to_json()) == s
    assert EvolutionSettings.from_json(s) is s


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"budgte": {"evaluations": 2}}, r"unknown key\(s\) \['budgte'\]"),
        ({"budget": {"evals": 2}}, r"budget: unknown key\(s\) \['evals'\]"),
        ({"budget": {"evaluations": 0}}, "budget.evaluations must be a whole number >= 1"),
        ({"budget": {"wall_s": -1}}, "budget.wall_s must be a number of seconds > 0"),
        ({"budget": 5}, "budget must be an object"),
        ({"proposers": "metaparams"}, "proposers must be a non-empty list"),
        ({"proposers": ["metaparms"]}, r"proposers: unknown \['metaparms'\]; available: .*metaparams"),
        ({"proposers": ["llm"]}, "llm needs proposer_config.llm.model"),
        ({"proposer_config": {"llm": "gpt"}}, "proposer_config must map proposer names to objects"),
        ({"workers": 0}, "workers must be a whole number >= 1"),
        ({"seed": "7"}, "seed must be a whole number >= 0"),
        ({"device": "gpu"}, r"device must be one of \['cpu', 'cuda'\]"),
        ({"executor": "slurm"}, r"executor must be one of \['local', 'ray'\], got 'slurm'"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_wrong_setting_is_named(data, message):
    with pytest.raises(SettingsError, match=message):
        EvolutionSettings.from_json(data)


def test_ray_settings_say_what_is_missing(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(SettingsError, match=r"ray_address \(aina evolve --ray-address HOST:PORT\) or RAY_ADDRESS"):
        EvolutionSettings(executor="ray")
    with pytest.raises(SettingsError, match="set executor to 'ray'"):
        EvolutionSettings.from_json({"ray_address": "head:6379"})  # an address for a local run: a mistake
    with pytest.raises(SettingsError, match="ray_address must be the Ray head's HOST:PORT"):
        EvolutionSettings.from_json({"executor": "ray", "ray_address": 6379})
    s = EvolutionSettings.from_json({"executor": "ray", "ray_address": "head:6379"})
    assert (s.ray_address, s.workers) == ("head:6379", None)  # workers: the cluster's, counted on connecting
    assert EvolutionSettings.from_json(s.to_json()) == s
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert EvolutionSettings(executor="ray").ray_address == "10.0.0.1:6379"
    assert EvolutionSettings(executor="ray", ray_address="head:1").ray_address == "head:1"  # given wins
    assert EvolutionSettings().ray_address is None  # RAY_ADDRESS alone does not choose Ray


def test_ray_settings_without_ray_installed_say_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(SettingsError, match=r"pip install 'pytest-aina\[ray\]'"):
        EvolutionSettings(executor="ray", ray_address="head:6379")
