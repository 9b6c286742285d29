"""What hpsearch takes from Optuna beyond its public API (hpsearch.optuna_private) still
works: each check fails when an Optuna release renames or changes one of these."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
from optuna.importance import get_param_importances
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import TrialState

from hpsearch.analysis import EVALUATORS
from hpsearch.optimize.randomized import TrialSeededRandom
from hpsearch.optuna_private import (
    enqueued,
    seed_for_trial,
    set_trial_user_attr,
    storage_of,
    trial_id,
    trials_view,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _study(n: int = 30) -> optuna.Study:
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + 0.1 * t.suggest_int("k", 0, 3)
                   + 0.01 * (t.suggest_categorical("c", ["a", "b"]) == "a"), n_trials=n)
    return study


def test_storage_and_trial_ids_are_the_storage_s_own() -> None:
    study = _study(3)
    storage, study_id = storage_of(study)
    assert isinstance(storage, BaseStorage)
    assert study_id == storage.get_study_id_from_name(study.study_name)
    for t in study.trials:
        assert trial_id(t) == storage.get_trial_id_from_study_id_trial_number(study_id,
                                                                              t.number)
    storage.set_study_system_attr(study_id, "hpsearch-test", "x")  # what artifacts.py does
    assert storage.get_study_system_attrs(study_id)["hpsearch-test"] == "x"


def test_a_sampler_records_a_fact_about_the_running_trial() -> None:
    class Marking(optuna.samplers.RandomSampler):
        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            super().before_trial(study, trial)
            set_trial_user_attr(study, trial, "marked", trial.number)

    study = optuna.create_study(sampler=Marking(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert [t.user_attrs["marked"] for t in study.trials] == [0, 1, 2]


def test_samplers_are_seeded_through_their_own_generators() -> None:
    """Seeded alike, two TPE samplers draw alike (startup and candidates); seeded apart,
    apart; and another sampler is left alone."""
    def draws(seeds: list[int]) -> list[float]:
        sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=3)
        study = optuna.create_study(sampler=sampler)
        out = []
        for _ in range(6):  # 3 startup draws, then TPE's candidates
            trial = study.ask()
            assert seed_for_trial(sampler, seeds)
            out.append(trial.suggest_float("x", 0, 1))  # sampled after the seeding
            study.tell(trial, out[-1])
        return out

    assert draws([1, 2]) == draws([1, 2])
    a, b = draws([1, 2]), draws([3, 4])
    assert a[0] != b[0] and a[-1] != b[-1]
    assert seed_for_trial(optuna.samplers.RandomSampler(), [1, 2])
    assert not seed_for_trial(TrialSeededRandom(0), [1, 2])  # no generator of its own
    # GP and CMA-ES keep the same kinds of generator under these names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for sampler in (optuna.samplers.GPSampler(seed=0), optuna.samplers.CmaEsSampler(seed=0)):
            assert seed_for_trial(sampler, [1, 2])
            inner = sampler._independent_sampler
            assert inner._rng.rng.randint(1 << 30) == np.random.RandomState(2).randint(1 << 30)


def test_enqueued_trials_are_told_apart() -> None:
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.5})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert [enqueued(t) for t in study.trials] == [True, False]


@pytest.mark.parametrize("name", sorted(EVALUATORS))
def test_importance_evaluators_read_only_what_the_view_offers(name: str) -> None:
    study = _study()
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    spec = EVALUATORS[name]
    on_view = get_param_importances(trials_view(trials, study.direction),
                                    evaluator=spec.make(0), normalize=False)
    on_study = get_param_importances(study, evaluator=spec.make(0), normalize=False)
    assert on_view == pytest.approx(on_study)
    assert hasattr(optuna.Study, "_is_multi_objective")  # the one private call they make


def test_the_storage_hooks_hpsearch_overrides_exist() -> None:
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.storages._rdb import models

    assert callable(getattr(RDBStorage, "_get_stale_trial_ids", None))
    assert callable(getattr(BaseHeartbeat, "_get_stale_trial_ids", None))
    assert hasattr(models, "TrialHeartbeatModel") and hasattr(models, "TrialModel")
