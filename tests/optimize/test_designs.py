"""Study designs: balanced assignment, paired arms in lockstep, and their analysis."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpsearch.analysis.arms import paired_contrasts
from hpsearch.errors import ConfigError, StudyError
from hpsearch.optimize.designs import (
    Arms,
    DesignedSampler,
    balanced_value,
    question_arms,
    resolve_design,
    study_arms,
)
from hpsearch.optimize.lockstep import Lockstep
from hpsearch.optimize.samplers import make_sampler
from hpsearch.schema import ARMS, DESIGN
from hpsearch.space import Preset, load_preset, sample_config
from hpsearch.training import DeviceData, train
from hpsearch.training.datasets import make_synthetic

BN = Arms("balanced", "bn_placement", "batch_norm", ("before", "after"))


# ---------------------------------------------------------------------------- assignment


def test_balanced_blocks_hold_every_choice_once_in_a_seeded_order() -> None:
    arms = dataclasses.replace(BN, values=("none", "before", "after"))
    plan = [balanced_value(arms, n, seed=3) for n in range(30)]
    for block in range(10):
        assert sorted(plan[3 * block:3 * block + 3]) == ["after", "before", "none"]
    assert plan == [balanced_value(arms, n, seed=3) for n in range(30)]  # workers agree
    assert plan != [balanced_value(arms, n, seed=4) for n in range(30)]
    assert len({tuple(plan[i:i + 3]) for i in range(0, 30, 3)}) > 1  # not one fixed order


def test_a_named_question_gets_the_default_design_and_none_without_one() -> None:
    assert resolve_design(None, None) == "none"
    assert resolve_design(None, "bn_placement") in ("balanced", "paired")
    assert resolve_design("paired", "bn_placement") == "paired"
    with pytest.raises(ConfigError, match="needs a question"):
        resolve_design("balanced", None)
    with pytest.raises(ConfigError, match="unknown"):
        resolve_design("crossover", "activation")


def test_arms_follow_the_question_and_the_preset() -> None:
    arms = question_arms(dataclasses.replace(Preset(), question="bn_placement"), "balanced")
    assert arms is not None and arms.values == ("before", "after")  # not "none"
    arms = question_arms(load_preset("dropout_activation"), "paired")
    assert arms is not None and arms.param == "activation" and len(arms.values) >= 2
    assert study_arms(Preset(), None) is None
    with pytest.raises(ConfigError, match="numeric|categorical"):
        question_arms(dataclasses.replace(Preset(), question="dropout"), "balanced")
    fixed = Preset().with_overrides(["batch_norm=before"])
    with pytest.raises(ConfigError, match="fixed"):
        question_arms(dataclasses.replace(fixed, question="bn_placement"), "balanced")
    with pytest.raises(ConfigError, match="unknown"):
        question_arms(dataclasses.replace(Preset(), question="nope"), "balanced")


def test_the_sampler_searches_the_rest_and_never_the_designed_param() -> None:
    base = make_sampler("tpe", 0, 0.2)
    sampler = DesignedSampler(base, BN, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    preset = dataclasses.replace(Preset(), question="bn_placement")
    rng = np.random.default_rng(0)

    def objective(trial: optuna.Trial) -> float:
        cfg = sample_config(trial, preset)
        space = sampler.infer_relative_search_space(study, study._storage.get_trial(
            trial._trial_id))
        assert "batch_norm" not in space
        return float(rng.normal()) + (cfg.lr > 0.01)

    study.optimize(objective, n_trials=24)
    trials = study.get_trials()
    assert Counter(t.params["batch_norm"] for t in trials) == {"before": 12, "after": 12}
    for t in trials:
        assert t.user_attrs[DESIGN] == {"design": "balanced", "question": "bn_placement",
                                             "param": "batch_norm",
                                             "value": t.params["batch_norm"]}
    assert len({t.params["lr"] for t in trials}) == 24  # the rest is searched


def test_optimize_with_a_design_records_it_and_refuses_what_it_cannot_design(
        tmp_path: pytest.TempPathFactory) -> None:
    from hpsearch.optimize import optimize
    from hpsearch.settings import Settings
    from hpsearch.storage import load_study

    db = str(tmp_path / "d.db")  # type: ignore[operator]
    settings = Settings(dataset="synthetic", trials=4, epochs=2, storage=db, design="paired",
                        study_name="p", train_size=200, val_size=100)
    optimize(load_preset("bn_placement"), settings, progress=False)
    study = load_study(db, "p")
    assert study.user_attrs["provenance"]["design"] == "paired"
    for t in study.trials:
        arms = t.user_attrs[ARMS]
        assert set(arms) == {"before", "after"}
        # pruned together: both arms ran the same epochs unless one stopped by patience
        assert len(arms["before"]["val_acc"]) == len(arms["after"]["val_acc"]) == 2
    bad = Settings(dataset="synthetic", trials=2, epochs=1, storage=str(tmp_path / "x.db"),  # type: ignore[operator]
                   design="balanced")
    with pytest.raises(ConfigError, match="categorical"):
        optimize(dataclasses.replace(Preset(), question="dropout"), bad, progress=False)
    assert not (tmp_path / "x.db").exists()  # type: ignore[operator]
    with pytest.raises(StudyError, match="design"):  # resuming with another design
        optimize(load_preset("bn_placement"), settings.replace(design="balanced", trials=5),
                 progress=False)


def test_paired_arms_get_the_params_their_choice_turns_on() -> None:
    """The paired design trains one config under every arm: a weight_penalty=l2 arm needs
    an l2 strength even when the config's own (first) value is none. Sampling for the arms
    samples every param some arm turns on; each arm (``cfg.replace``) keeps only its own.
    Before, every cnn_regularization arm trained with l2 = l1 = 0: four identical runs,
    read as "equivalent"."""
    from hpsearch.space import sample_config

    preset = load_preset("cnn_regularization")
    arms = question_arms(preset, "paired")
    assert arms is not None and arms.param == "weight_penalty"
    trial = optuna.create_study().ask()
    cfg = sample_config(trial, preset, arms=(arms.param, arms.values))
    assert {"l2", "l1"} <= set(trial.params)
    by_arm = {v: cfg.replace(**{arms.param: v}) for v in arms.values}
    assert by_arm["none"].l2 == by_arm["none"].l1 == 0.0
    assert by_arm["l2"].l2 == trial.params["l2"] > 0 and by_arm["l2"].l1 == 0.0
    assert by_arm["l1"].l1 == trial.params["l1"] > 0 and by_arm["l1"].l2 == 0.0
    assert by_arm["l1_l2"].l2 > 0 and by_arm["l1_l2"].l1 > 0
    # without arms, an inactive param is not sampled at all (the other designs)
    plain = optuna.create_study().ask()
    if sample_config(plain, preset).weight_penalty == "none":
        assert "l2" not in plain.params


def test_a_paired_study_trains_arms_that_differ(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hpsearch.optimize import optimize
    from hpsearch.settings import Settings
    from hpsearch.storage import load_study

    db = str(tmp_path / "w.db")
    # penalties strong enough to show in 2 epochs on digits
    preset = load_preset("cnn_regularization").with_overrides(
        ["model=mlp", "hidden_layers=1", "hidden_units=64", "augmentation=none",
         "l2=0.05..0.1", "l1=0.0005..0.001", "optimizer=adam", "lr=0.003..0.01"])
    optimize(preset, Settings(dataset="digits", trials=2, epochs=2, storage=db,
                              design="paired", study_name="w", val_size=300, pruner="none"),
             progress=False)
    for t in load_study(db, "w").trials:
        arms = t.user_attrs[ARMS]
        curves = {k: tuple(v["val_acc"]) for k, v in arms.items()}
        assert len(set(curves.values())) > 1, curves  # l1/l2 change the training


# ---------------------------------------------------------------------------- lockstep


def _fake(curve: list[float], log: list[tuple[str, int]], name: str, patience_at: int = 0):
    def arm(on_epoch):
        for e, v in enumerate(curve, 1):
            log.append((name, e))
            if on_epoch(e, v):
                return (name, e, "stopped")
            if patience_at and e == patience_at:
                return (name, e, "early")
        return (name, len(curve), "completed")
    return arm


def test_arms_take_turns_and_stop_together() -> None:
    log: list[tuple[str, int]] = []
    seen: list[tuple[int, list[float]]] = []

    def decide(epoch: int, metrics: list[float]) -> bool:
        seen.append((epoch, list(metrics)))
        return epoch == 3

    out = Lockstep([_fake([1, 2, 3, 4, 5], log, "a"), _fake([10, 20, 30, 40, 50], log, "b")],
                   decide).run()
    assert out == [("a", 3, "stopped"), ("b", 3, "stopped")]
    assert log == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    assert seen == [(1, [1, 10]), (2, [2, 20]), (3, [3, 30])]


def test_an_arm_that_stops_early_leaves_and_its_last_value_stands() -> None:
    log: list[tuple[str, int]] = []
    seen: list[list[float]] = []
    out = Lockstep([_fake([1, 2, 3, 4], log, "a", patience_at=2),
                    _fake([10, 20, 30, 40], log, "b")],
                   lambda e, m: seen.append(list(m)) or False).run()
    assert out == [("a", 2, "early"), ("b", 4, "completed")]
    assert seen == [[1, 10], [2, 20], [2, 30], [2, 40]]


def test_a_failing_arm_stops_the_others_and_raises() -> None:
    def broken(on_epoch):
        on_epoch(1, 0.0)
        raise RuntimeError("out of memory")

    log: list[tuple[str, int]] = []
    with pytest.raises(RuntimeError, match="out of memory"):
        Lockstep([_fake([1, 2, 3], log, "a"), broken], lambda e, m: False).run()
    assert ("a", 3) not in log


def test_paired_arms_train_as_they_would_alone() -> None:
    """Same seed, one arm at a time: each arm's curve is bit for bit its solo run."""
    raw = make_synthetic(n_train=300, n_test=50)
    data = DeviceData.create(raw, val_size=100, seed=0, device="cpu")
    cfg = sample_config(_Defaults(), Preset())
    cfgs = [cfg.replace(batch_norm=v, dropout=0.3) for v in ("before", "after")]
    solo = [[m.val_acc for m in train(c, data, epochs=3, seed=7).history] for c in cfgs]
    arms = [lambda on_epoch, c=c: train(c, data, epochs=3, seed=7, on_epoch=on_epoch)
            for c in cfgs]
    rng = (torch.get_rng_state, torch.set_rng_state)
    paired = Lockstep(arms, lambda e, m: False, rng=rng).run()
    assert [[m.val_acc for m in r.history] for r in paired] == solo


class _Defaults:
    """A trial that answers every suggest with its first choice or its lower bound."""

    def suggest_categorical(self, name, choices):
        return choices[0]

    def suggest_int(self, name, low, high, *, log=False):
        return low

    def suggest_float(self, name, low, high, *, log=False, step=None):
        return {"lr": 0.01, "dropout": 0.0}.get(name, low)


# ---------------------------------------------------------------------------- analysis


def _paired_study(n: int, diff: float, seed: int, *, prune: bool) -> list:
    """Paired trials whose true end difference is ``diff`` on average, but larger in good
    configs: pruning on the mean leaves complete trials with a biased difference."""
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        q = rng.normal(0, 2.0)                  # config quality, points
        d = diff + 0.5 * q + rng.normal(0, 0.3)  # the difference grows with quality
        a = 95 + q + d / 2 + np.array([-3.0, -1.0, 0.0])
        b = 95 + q - d / 2 + np.array([-3.0, -1.0, 0.0])
        # the early epochs foretell the end (noise 0.2): what the chain regresses on
        a[:2] += rng.normal(0, 0.2, 2)
        b[:2] += rng.normal(0, 0.2, 2)
        stop = 3 if not prune or (a[1] + b[1]) / 2 > 94 else 2
        state = TrialState.COMPLETE if stop == 3 else TrialState.PRUNED
        trials.append(optuna.trial.create_trial(
            state=state, value=float((a[-1] + b[-1]) / 200) if stop == 3 else None,
            intermediate_values={e + 1: float((a[e] + b[e]) / 200) for e in range(stop)},
            user_attrs={DESIGN: {"design": "paired", "question": "bn_placement",
                                      "param": "batch_norm", "arms": ["before", "after"]},
                        ARMS: {"before": {"val_acc": list(a[:stop] / 100)},
                                    "after": {"val_acc": list(b[:stop] / 100)}}}))
    return trials


def test_the_paired_answer_is_the_end_difference_pruned_trials_included() -> None:
    estimates, naive = [], []
    for seed in range(20):
        trials = _paired_study(120, 1.0, seed, prune=True)
        (c,) = paired_contrasts(trials, epochs=3, n_bootstrap=50)
        estimates.append(c.estimate)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        naive.append(np.mean([100 * (t.user_attrs[ARMS]["before"]["val_acc"][-1]
                                     - t.user_attrs[ARMS]["after"]["val_acc"][-1])
                              for t in complete]))
        assert c.n == 120 and 0 < c.n_complete < 120
    assert abs(np.mean(estimates) - 1.0) < 0.1          # the chain recovers the truth
    assert np.mean(naive) - 1.0 > 0.3                   # complete trials alone do not


@pytest.mark.e2e
def test_paired_intervals_cover_the_truth() -> None:
    """95% intervals cover the planted end difference in about 95% of 100 studies."""
    hits = 0
    for seed in range(100):
        (c,) = paired_contrasts(_paired_study(60, 0.6, seed, prune=True), epochs=3,
                                n_bootstrap=200)
        low, high = c.interval(0.05)
        hits += low <= 0.6 <= high
    assert 88 <= hits <= 99
