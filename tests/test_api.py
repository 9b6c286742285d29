"""The public Python API an objective may use: suggest_config and train_arrays, and the
worked example in docs/api.md, run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from click.testing import CliRunner
from support.datasets import images

import hpsearch
from hpsearch.cli import main

ROOT = Path(__file__).resolve().parent.parent


def splits(shape: tuple[int, ...] = (8, 8, 3), n: int = 160, k: int = 3):
    x, y = images(n, shape, k)
    return x[:120], y[:120], x[120:], y[120:]


def trial(params: dict | None = None) -> optuna.Trial:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return study.ask(params and {k: optuna.distributions.CategoricalDistribution([v])
                                 for k, v in params.items()})


# ---------------------------------------------------------------------------- suggest_config


def test_suggest_config_samples_the_space_with_hpsearchs_names():
    t = trial()
    cfg = hpsearch.suggest_config(t)
    assert isinstance(cfg, hpsearch.TrialConfig)
    assert set(t.params) <= {p.name for p in hpsearch.PARAMS} and "model" in t.params
    assert cfg.model == t.params["model"]


def test_suggest_config_fixes_narrows_and_takes_a_preset():
    for seed in range(5):
        t = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        cfg = hpsearch.suggest_config(
            t, {"model": "cnn", "optimizer": ["adam", "sgd"], "lr": {"low": 0.001,
                                                                     "high": 0.002}},
            preset="bn_placement")
        assert cfg.model == "cnn" and "model" not in t.params
        assert cfg.optimizer in ("adam", "sgd") and 0.001 <= cfg.lr <= 0.002
        assert cfg.batch_norm in ("before", "after")  # the preset's narrowing holds
    with pytest.raises(hpsearch.ConfigError, match="fixed: params.modle: unknown param"):
        hpsearch.suggest_config(trial(), {"modle": "cnn"})
    with pytest.raises(hpsearch.ConfigError, match="model = 'rnn' is not allowed"):
        hpsearch.suggest_config(trial(), {"model": "rnn"})


# ---------------------------------------------------------------------------- train_arrays


def test_numpy_channels_last_and_torch_channels_first_train_alike():
    x_train, y_train, x_val, y_val = splits()
    cfg = hpsearch.TrialConfig(model="cnn", cnn_channels=8, cnn_fc_units=64, lr=0.05,
                               input_norm="standardize")
    a = hpsearch.train_arrays(cfg, x_train, y_train, x_val, y_val, epochs=2, device="cpu")
    t = [torch.from_numpy(x_train).permute(0, 3, 1, 2), torch.from_numpy(y_train),
         torch.from_numpy(x_val).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(y_val)]
    b = hpsearch.train_arrays(cfg, *t, epochs=2, device="cpu")
    assert a.curve == b.curve and len(a.curve) == 2 and a.val_acc == max(a.curve)
    assert isinstance(a, hpsearch.TrainResult) and not a.stopped


def test_learns_and_on_epoch_can_stop():
    x_train, y_train, x_val, y_val = splits((8, 8), n=400, k=4)
    seen = []

    def stop_after_two(epoch: int, metrics: hpsearch.EpochMetrics) -> bool:
        seen.append((epoch, metrics.val_acc))
        return epoch == 2

    result = hpsearch.train_arrays({"hidden_units": 64, "lr": 0.05, "input_norm": "minmax"},
                                   x_train[:300], y_train[:300], x_val, y_val, epochs=5,
                                   on_epoch=stop_after_two, classes=("a", "b", "c", "d"))
    assert result.stopped and [e for e, _ in seen] == [1, 2]
    assert result.curve == [acc for _, acc in seen] and result.val_acc > 0.35  # chance 0.25


def test_a_test_split_is_scored_by_the_epoch_validation_chose():
    x_train, y_train, x_val, y_val = splits((8, 8), n=400, k=4)
    cfg = {"hidden_units": 64, "lr": 0.05}
    plain = hpsearch.train_arrays(cfg, x_train[:250], y_train[:250], x_val[:80], y_val[:80],
                                  epochs=3)
    tested = hpsearch.train_arrays(cfg, x_train[:250], y_train[:250], x_val[:80], y_val[:80],
                                   x_test=x_val[80:], y_test=y_val[80:], epochs=3)
    assert plain.test_acc is None and plain.curve == tested.curve  # test never steers it
    assert tested.model is not None and tested.test_acc is not None
    pred = tested.model(torch.from_numpy(x_val[80:]).float()[:, None] / 255).argmax(1)
    assert tested.test_acc == pytest.approx((pred.numpy() == y_val[80:]).mean())


@pytest.mark.parametrize("change, error, expected", [
    ({"y_train": np.zeros(119, np.int64)}, hpsearch.DataError, "y_train: 119 labels for 120"),
    ({"y_val": -np.ones(40, np.int64)}, hpsearch.DataError, "y_val: labels must be class"),
    ({"y_train": np.full(120, 0.5)}, hpsearch.DataError, "labels must be integers"),
    ({"x_val": np.zeros((40, 9, 9, 3), np.uint8)}, hpsearch.DataError, "x_val images are"),
    ({"x_train": np.full((120, 8, 8, 3), 2.0)}, hpsearch.DataError, r"\[0, 1\]"),
    ({"x_train": np.zeros((120, 8), np.uint8)}, hpsearch.DataError, "N x H x W"),
    ({"cfg": {"dropout": 0.95}}, hpsearch.ConfigError, r"dropout = 0.95 is outside"),
    ({"cfg": {"optimizer": ["adam", "sgd"]}}, hpsearch.ConfigError, "one value per param"),
    ({"classes": ("a", "b")}, hpsearch.DataError, "label 2 is out of range for 2 classes"),
    ({"epochs": 0}, hpsearch.ConfigError, "epochs = 0"),
    ({"x_test": np.zeros((5, 8, 8, 3), np.uint8)}, hpsearch.DataError, "x_test and y_test"),
    ({"x_test": np.zeros((5, 8, 8, 1), np.uint8), "y_test": np.zeros(5, np.int64)},
     hpsearch.DataError, "x_test images are"),
])
def test_bad_arrays_and_configs_get_one_clear_error(change, error, expected):
    x_train, y_train, x_val, y_val = splits()
    args = {"cfg": {}, "x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
            **change}
    with pytest.raises(error, match=expected):
        hpsearch.train_arrays(**args)


# ---------------------------------------------------------------------------- the docs


def test_the_worked_example_runs_as_written(tmp_path, monkeypatch):
    """mine.py as docs/api.md gives it: with Optuna alone, then report; under hpsearch's
    optimize --objective, then best --retrain (the objective's test split)."""
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(blocks[0])
    runpy.run_path("mine.py", run_name="__main__")
    study = optuna.load_study(study_name="digits-mine", storage="sqlite:///mine.db")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 6 and study.best_value > 0.5
    assert all(t.intermediate_values for t in finished if t.state.name != "FAIL")
    assert {"batch_norm", "dropout", "optimizer"} <= set(study.best_params)
    out = CliRunner().invoke(main, ["report", "mine.db", "--format", "md"])
    assert out.exit_code == 0, out.output
    assert "batch_norm" in out.output and "dropout" in out.output

    out = CliRunner().invoke(main, ["optimize", "--objective", "mine.py:objective",
                                    "--trials", "2", "--storage", "hp.db", "-q"])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(main, ["best", "hp.db", "--study-name", "mine-objective",
                                    "--retrain", "--seeds", "1"])
    assert out.exit_code == 0 and "test" in out.output, out.output
