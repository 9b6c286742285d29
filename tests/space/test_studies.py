"""studies/: every preset parses and samples valid configs; the seeds script runs end to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna
import pytest

from hpsearch.settings import settings_from
from hpsearch.space.params import PARAM_BY_NAME, config_from_params
from hpsearch.space.presets import load_preset
from hpsearch.space.questions import QUESTION_BY_ID
from hpsearch.space.suggest import sample_config

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted(p.stem for p in (ROOT / "studies").glob("*.toml"))


def test_one_preset_per_seed_experiment_and_full():
    assert set(PRESETS) == {"full", "bn_placement", "batchnorm_vs_none", "dense_bn_activation",
                            "dropout_activation", "cnn_regularization"}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_parses_and_samples_valid_configs(name):
    preset = load_preset(name)
    text = (ROOT / "studies" / f"{name}.toml").read_text()
    assert text.startswith(f"# {name} "), "each preset opens with a comment block"
    settings_from(preset.settings, source=name)  # its [settings] are valid
    if name != "full":
        assert preset.question in QUESTION_BY_ID
        # The question's param is not fixed: the study can answer it.
        assert QUESTION_BY_ID[preset.question].param not in preset.fixed
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        trial = study.ask()
        cfg = sample_config(trial, preset)
        assert config_from_params(cfg.as_dict()) == cfg
        for key, value in preset.fixed.items():
            assert getattr(cfg, key) == value or not PARAM_BY_NAME[key].active(cfg.as_dict())
        study.tell(trial, 0.5)


def _load_script():
    spec = importlib.util.spec_from_file_location("reproduce_seeds",
                                                  ROOT / "scripts" / "reproduce_seeds.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_reproduce_seeds_runs_end_to_end_on_digits(tmp_path):
    script = _load_script()
    out = tmp_path / "findings.md"
    code = script.main(["--dataset", "digits", "--trials", "2", "--epochs", "1", "--seeds", "6",
                        "--val-size", "300", "--train-size", "0", "--presets", "bn_placement",
                        "--work-dir", str(tmp_path / "runs"), "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "| bn_placement | `bn_placement` | 000: before the activation" in text
    assert "n=6 seeds" in text and "Dataset **digits**" in text
    assert (tmp_path / "runs" / "findings.json").exists()
