"""The search space as data: sampling, conditionals, presets and their errors."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from hpsearch.errors import ConfigError
from hpsearch.space.params import PARAM_BY_NAME, PARAMS, TrialConfig, config_from_params
from hpsearch.space.presets import Preset, load_preset, parse_preset
from hpsearch.space.questions import QUESTIONS
from hpsearch.space.suggest import sample_config

DESIGN_PARAMS = """model hidden_layers hidden_units taper cnn_channels cnn_fc_units activation
batch_norm dropout dropout2d weight_penalty l2 l1 init input_norm augmentation aug_strength
optimizer lr momentum nesterov scheduler lr_gamma batch_size label_smoothing""".split()


def _sample_many(n: int, preset: Preset | None = None) -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: (sample_config(t, preset), 0.0)[1], n_trials=n)
    return study.trials


def test_table_matches_design_and_config():
    assert [p.name for p in PARAMS] == DESIGN_PARAMS
    assert [f.name for f in dataclasses.fields(TrialConfig)] == DESIGN_PARAMS
    for p in PARAMS:
        for name, _ in p.when:  # conditions only refer to params sampled earlier
            assert DESIGN_PARAMS.index(name) < DESIGN_PARAMS.index(p.name)
    assert {q.param for q in QUESTIONS} <= set(DESIGN_PARAMS)


def test_defaults_are_seed_000_mlp():
    cfg = TrialConfig()
    assert cfg.hidden_widths() == [512, 256]
    assert dataclasses.replace(cfg, taper="constant", hidden_layers=3).hidden_widths() == [512] * 3


def test_sampling_covers_every_param_and_respects_conditions():
    trials = _sample_many(300)
    seen = {name for t in trials for name in t.params}
    assert seen == set(DESIGN_PARAMS)
    for t in trials:
        p = t.params
        assert ("hidden_layers" in p) == (p["model"] == "mlp")
        assert ("dropout2d" in p) == (p["model"] == "cnn")
        assert ("l2" in p) == (p["weight_penalty"] in ("l2", "l1_l2"))
        assert ("l1" in p) == (p["weight_penalty"] in ("l1", "l1_l2"))
        assert ("nesterov" in p) == (p["optimizer"] == "sgd")
        assert ("lr_gamma" in p) == (p["scheduler"] in ("step", "multistep", "exponential"))
        assert ("aug_strength" in p) == (p["augmentation"] != "none")
    values = {name: {t.params[name] for t in trials if name in t.params}
              for name in ("batch_norm", "activation", "init", "optimizer", "scheduler")}
    for name, got in values.items():
        assert got == set(PARAM_BY_NAME[name].choices), name


def test_inactive_params_are_off_in_config():
    cfg = config_from_params({"model": "cnn", "hidden_layers": 4, "weight_penalty": "none",
                              "l2": 0.05, "optimizer": "adam", "momentum": 0.9})
    assert (cfg.hidden_layers, cfg.l2, cfg.momentum) == (2, 0.0, 0.0)
    assert cfg.replace(weight_penalty="l2", l2=0.01).l2 == 0.01
    with pytest.raises(ConfigError, match="unknown param"):
        config_from_params({"bogus": 1})


def test_preset_fixes_and_narrows(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('question = "bn_placement"\n[params]\nmodel = "mlp"\n'
                    'batch_norm = ["before", "after"]\nlr = { low = 0.001, high = 0.01 }\n'
                    '[settings]\nepochs = 3\n')
    preset = load_preset(path)
    assert preset.question == "bn_placement" and preset.settings == {"epochs": 3}
    for t in _sample_many(40, preset):
        assert "model" not in t.params  # fixed: not suggested
        assert t.params["batch_norm"] in ("before", "after")
        assert 0.001 <= t.params["lr"] <= 0.01


@pytest.mark.parametrize("assignment, expected", [
    ("batch_norm=before", {"fixed": {"batch_norm": "before"}}),
    ("lr=0.001..0.01", {"narrowed": ("lr", 0.001, 0.01)}),
    ("activation=relu,sigmoid", {"narrowed": ("activation", "relu", "sigmoid")}),
    ("nesterov=true", {"fixed": {"nesterov": True}}),
    ("hidden_layers=3", {"fixed": {"hidden_layers": 3}}),
])
def test_cli_overrides(assignment, expected):
    preset = Preset().with_overrides([assignment])
    if "fixed" in expected:
        assert dict(preset.fixed) == expected["fixed"]
    else:
        name, a, b = expected["narrowed"]
        p = preset.narrowed[name]
        assert (p.choices[:2] if p.kind == "categorical" else (p.low, p.high)) == (a, b)


@pytest.mark.parametrize("doc, message", [
    ({"bogus": 1}, "unknown key.*bogus"),
    ({"params": {"nope": 1}}, "params.nope: unknown param 'nope'"),
    ({"params": {"batch_norm": "sideways"}}, "batch_norm = 'sideways' is not allowed"),
    ({"params": {"batch_norm": []}}, "empty list of choices"),
    ({"params": {"lr": {"low": 0.1, "high": 0.001}}}, "inverted"),
    ({"params": {"lr": {"low": 0.001}}}, "needs exactly low and high"),
    ({"params": {"lr": "fast"}}, "lr must be a number"),
    ({"params": {"hidden_layers": 2.5}}, "hidden_layers must be an integer"),
    ({"params": {"dropout": 0.9}}, "outside"),
    ({"params": {"batch_norm": {"low": 1, "high": 2}}}, "categorical"),
    ({"question": "why"}, "question = 'why' is unknown"),
])
def test_preset_errors_name_file_key_and_allowed(doc, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_preset(doc, name="x", source="studies/x.toml")
    assert str(err.value).startswith("studies/x.toml")


def test_bad_toml_and_missing_preset(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[params\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_preset(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_preset("no-such-preset")


@pytest.mark.parametrize("text", ["batch_norm", "=before", "bogus=1", "epochs=3"])
def test_bad_cli_overrides(text):
    with pytest.raises(ConfigError):
        Preset().with_overrides([text])
