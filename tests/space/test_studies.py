"""studies/: every preset parses and samples valid configs; the seeds script runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_reproduce_seeds_runs_end_to_end_on_digits(tmp_path):
    out = tmp_path / "findings.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reproduce_seeds.py"), "--dataset", "digits",
         "--trials", "2", "--epochs", "1", "--seeds", "6", "--val-size", "300",
         "--train-size", "0", "--presets", "bn_placement", "--work-dir", str(tmp_path / "runs"),
         "--out", str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "| bn_placement | `bn_placement` | 000: before the activation" in text
    assert "seeds" in text and "Dataset **digits**" in text
    assert (tmp_path / "runs" / "findings-full.json").exists()
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["question"] for r in rows] == ["bn_placement"]
    assert rows[0]["settled"] in ("difference", "equivalent", "open")
    assert {"preset", "estimate", "ci_low", "ci_high", "margin"} <= set(rows[0])
