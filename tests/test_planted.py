"""The planted studies look like real ones: trials that never learn at the planted rates,
pruning, curves of varied shape, heavy tails, foreign params and paired arms that fail.

These pin the generator itself (``hpsearch/planted.py``); what the analysis makes of its
studies is measured by ``scripts/check_answers.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from optuna.trial import TrialState

from hpsearch.optimize import Arms
from hpsearch.planted import (
    FAILURES,
    NULL_TRUTH,
    SVM_TRUTH,
    Failure,
    failure_rate,
    realistic,
    realistic_study,
    svm_space,
)

CHANCE_TOP = 0.12  # MNIST's largest class share is 0.1135


def never_learned(trial) -> bool:
    values = list(trial.intermediate_values.values()) or [trial.value]
    return max(values) <= CHANCE_TOP


@pytest.fixture(scope="module")
def large():
    return realistic_study(realistic(NULL_TRUTH, epochs=4), 300, sampler="random", seed=3)


@pytest.fixture(scope="module")
def long():
    return realistic_study(realistic(NULL_TRUTH, epochs=10), 60, sampler="random", seed=4)


def test_failure_rules_match_values_ranges_and_everything():
    deep = {"activation": "sigmoid", "hidden_layers": 4, "lr": 1e-3}
    assert failure_rate(FAILURES, deep) == pytest.approx(1 - 0.75 * 0.97)
    assert failure_rate(FAILURES, {**deep, "hidden_layers": 2}) == pytest.approx(0.03)
    assert failure_rate(FAILURES, {**deep, "lr": 0.05}) == pytest.approx(1 - 0.7 * 0.75 * 0.97)
    assert not Failure(1.0, {"model": "cnn"}).matches({"lr": 0.1})  # a param it lacks
    assert failure_rate([Failure(0.5, {"dropout": "on"})], {"dropout": 0.0}) == 0.0


def test_never_learned_rates_depend_on_params_and_not(large):
    trials = [t for t in large.trials if t.state.is_finished()]
    high = [t for t in trials if t.params["lr"] > 0.03]
    plain = [t for t in trials if t.params["lr"] <= 0.03 and t.params["activation"] != "sigmoid"]
    rate_high = np.mean([never_learned(t) for t in high])
    rate_plain = np.mean([never_learned(t) for t in plain])
    assert len(high) > 30 and 0.15 < rate_high < 0.5     # planted: 30 % (+3 %)
    assert rate_plain < 0.08                             # planted: 3 %
    assert any(never_learned(t) for t in plain)          # a rate no param explains
    # a never-learned trial sits at a class share at every epoch it reported
    failed = [t for t in trials if never_learned(t)]
    assert all(0.085 < v <= CHANCE_TOP for t in failed for v in t.intermediate_values.values())


def test_pruning_divergence_and_patience_happen(large, long):
    pruned = [t for t in large.trials if t.state == TrialState.PRUNED]
    by_pruner = [t for t in pruned if t.user_attrs["run"]["stop_reason"] == "pruned"]
    diverged = [t for t in pruned if "failure_reason" in t.user_attrs]
    assert len(by_pruner) > 40 and all(len(t.intermediate_values) < 4 for t in by_pruner)
    assert diverged and all(t.user_attrs["failure_reason"].startswith("diverged")
                            for t in diverged)
    stops = {t.user_attrs["run"]["stop_reason"] for t in long.trials}
    assert {"pruned", "patience", "completed"} <= stops
    assert long.user_attrs["provenance"]["settings"]["sampler"] == "random"
    assert long.user_attrs["dataset"] == "mnist"


def test_curve_shapes_vary(long):
    unpruned = realistic_study(realistic(NULL_TRUTH, epochs=10), 40, sampler="random", seed=4,
                               pruner="none")
    learned = [np.array(list(t.intermediate_values.values())) * 100 for t in unpruned.trials
               if not never_learned(t)]
    gaps = [c.max() - c[0] for c in learned]
    assert min(gaps) < 1.5 and max(gaps) > 5             # fast and slow starters
    curves = [np.array(list(t.intermediate_values.values())) * 100 for t in long.trials
              if t.state == TrialState.COMPLETE and not never_learned(t)]
    assert any(c.max() - c[-1] > 3 for c in curves)     # diverging late
    assert any(np.any(np.diff(c) < 0) for c in curves if c.max() - c[-1] < 1)  # jitter
    assert len({len(c) for c in curves}) > 1            # patience stops some early
    # the trial's value is its best epoch, as hpsearch's trainer keeps it
    complete = [t for t in long.trials if t.state == TrialState.COMPLETE]
    assert all(t.value == pytest.approx(max(t.intermediate_values.values())) for t in complete)


def test_trial_noise_is_heavy_tailed():
    rng = np.random.default_rng(0)
    heavy = np.array([realistic(NULL_TRUTH).trial_noise(rng) for _ in range(4000)])
    normal = np.array([NULL_TRUTH.trial_noise(rng) for _ in range(4000)])

    def kurtosis(x):
        return float(np.mean((x - x.mean()) ** 4) / np.var(x) ** 2 - 3)

    assert kurtosis(heavy) > 2 and abs(kurtosis(normal)) < 0.5


def test_svm_study_has_foreign_params_and_only_a_dataset_attr():
    study = realistic_study(SVM_TRUTH, 150, sampler="random", seed=5, space=svm_space,
                            dataset="digits")
    assert set(study.trials[0].params) == {"kernel", "C", "gamma"}
    assert "provenance" not in study.user_attrs and study.user_attrs["dataset"] == "digits"
    assert all(not t.intermediate_values and t.state == TrialState.COMPLETE
               for t in study.trials)
    risky = [t for t in study.trials if t.params["kernel"] == "sigmoid" and t.params["C"] > 10]
    rest = [t for t in study.trials if t not in risky]
    assert np.mean([never_learned(t) for t in risky]) > 0.15
    assert np.mean([never_learned(t) for t in rest]) < 0.08


def test_paired_arms_are_stored_as_hpsearch_stores_them_and_sometimes_fail():
    arms = Arms("paired", "bn_placement", "batch_norm", ("before", "after"))
    truth = realistic(NULL_TRUTH, epochs=4, arm_failure=0.15)
    study = realistic_study(truth, 60, sampler="tpe", seed=6, arms=arms)
    assert study.user_attrs["provenance"]["design"] == "paired"
    one_failed = 0
    for t in study.trials:
        assert t.user_attrs["design"] == arms.record()
        curves = {a: np.array(c["val_acc"]) for a, c in t.user_attrs["arms"].items()}
        assert set(curves) == {"before", "after"}
        assert len({len(c) for c in curves.values()}) == 1  # trained and stopped together
        failed = [a for a, c in curves.items() if c.max() <= CHANCE_TOP]
        one_failed += len(failed) == 1
    assert one_failed >= 3
    assert any(t.state == TrialState.PRUNED for t in study.trials)
