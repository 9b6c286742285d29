"""The study: objective attrs, budget and resume, samplers and pruners, provenance."""

from __future__ import annotations

import os
import platform

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.errors import StudyError
from hpsearch.optimize import optimize
from hpsearch.optimize.samplers import make_pruner, make_sampler
from hpsearch.optimize.study import FINISHED, open_study
from hpsearch.settings import PRUNERS, SAMPLERS, Settings
from hpsearch.space.params import config_from_params
from hpsearch.space.presets import Preset
from hpsearch.space.suggest import sample_config
from hpsearch.storage.open import load_study

# Small and fast: a 1-hidden-layer MLP on the 8x8 synthetic set.
FAST = Preset(name="fast", fixed={"model": "mlp", "hidden_layers": 1, "hidden_units": 64,
                                  "batch_size": 128})


def _settings(tmp_path, **kw) -> Settings:
    base = {"dataset": "synthetic", "epochs": 2, "trials": 4, "val_size": 400,
            "storage": str(tmp_path / "s.db")}
    return Settings(**{**base, **kw})


def test_study_reaches_budget_and_records_everything(tmp_path):
    settings = _settings(tmp_path, trials=6)
    summary = optimize(FAST, settings, progress=False)
    study = load_study(settings.storage)
    trials = study.get_trials(states=FINISHED)
    assert summary.n_finished == len(trials) == 6
    assert summary.best_value == study.best_value
    prov = study.user_attrs["provenance"]
    assert prov["dataset"] == "synthetic" and prov["preset"] == "fast"
    assert {"git_hash", "hpsearch_version", "torch", "optuna", "settings"} <= set(prov)
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        attrs = t.user_attrs
        curve, run = attrs["learning_curve"], attrs["run"]
        assert len(curve["val_acc"]) == len(curve["seconds"]) == len(t.intermediate_values)
        assert min(curve["seconds"]) > 0 and 1 <= run["best_epoch"] <= len(curve["val_acc"])
        assert run["n_params"] > 0 and run["device"] == "cpu"
        assert run["stop_reason"] in ("completed", "early_stopping")
        assert run["worker"] == f"{platform.node()}:{os.getpid()}"  # in-process worker
        assert t.intermediate_values  # reported every epoch
        # The stored config equals the params plus the preset's fixed values.
        assert config_from_params(attrs["config"]) == config_from_params(
            {**t.params, **FAST.fixed})


def test_rerun_resumes_to_the_total_not_n_more(tmp_path):
    settings = _settings(tmp_path, trials=3)
    optimize(FAST, settings, progress=False)
    summary = optimize(FAST, settings.replace(trials=5), progress=False)
    assert (summary.n_finished, summary.ran_here) == (5, 2)
    again = optimize(FAST, settings.replace(trials=5), progress=False)
    assert again.ran_here == 0


def test_resuming_with_another_dataset_is_refused(tmp_path):
    settings = _settings(tmp_path, trials=1, study_name="mine")
    optimize(FAST, settings, progress=False)
    with pytest.raises(StudyError, match="dataset='synthetic', not 'digits'"):
        open_study(FAST, settings.replace(dataset="digits"))


def test_two_jobs_share_one_budget(tmp_path):
    settings = _settings(tmp_path, trials=6, jobs=2)
    summary = optimize(FAST, settings, progress=False)
    study = load_study(settings.storage)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert summary.n_finished >= 6 and summary.n_finished <= 7  # at most one in flight extra
    assert not study.get_trials(states=(TrialState.RUNNING,))


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_samples_the_conditional_space(name):
    study = optuna.create_study(direction="maximize", sampler=make_sampler(name, 0))
    study.optimize(lambda t: (sample_config(t), t.number % 3 / 3)[1], n_trials=12)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("name", PRUNERS)
def test_every_pruner_prunes_hopeless_trials(name):
    study = optuna.create_study(direction="maximize", pruner=make_pruner(name, 10),
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        good = trial.number % 2 == 0
        for epoch in range(1, 11):
            trial.report(0.9 if good else 0.1, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.9 if good else 0.1

    study.optimize(objective, n_trials=30)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    if name == "none":
        assert not pruned
    else:
        assert pruned and all(max(t.intermediate_values.values()) < 0.5 for t in pruned)
