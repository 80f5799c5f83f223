"""EvolutionSettings: the one type ``aina evolve`` builds from its flags and the App parses
from its EVOLUTION setting; a misspelt key is an error naming it, never a silent default."""

from __future__ import annotations

import json

import pytest

from pytest_aina.changer.settings import Budget, EvolutionSettings, SettingsError, default_workers


def test_defaults_are_the_apps_and_round_trip_through_json():
    s = EvolutionSettings.from_json({})
    assert s == EvolutionSettings() == EvolutionSettings.from_json(None)
    assert s.proposers == ("metaparams",) and s.proposer_config == {} and s.seed == 0 and s.device is None
    assert s.budget == Budget(evaluations=24, wall_s=600.0, tokens=None) and s.workers == default_workers()
    full = {
        "proposers": ["metaparams", "llm"],
        "proposer_config": {"llm": {"model": "openai/x", "api_key_env": "KEY"}},
        "budget": {"evaluations": 2, "wall_s": 400, "tokens": 1000},
        "seed": 3,
        "workers": 1,
        "device": "cpu",
        "telemetry": "telemetry/day.jsonl",
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
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_wrong_setting_is_named(data, message):
    with pytest.raises(SettingsError, match=message):
        EvolutionSettings.from_json(data)
