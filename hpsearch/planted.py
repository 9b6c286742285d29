"""Planted studies: Optuna studies over hpsearch's space whose truth is known.

No training: a trial's accuracy is a dominant learning-rate term, the planted effects of
its choices and noise, reported over epochs as a learning curve so that a pruner can stop
it. The analysis is checked on these (``tests/test_analysis*.py`` and
``scripts/check_answers.py``): a question with a planted effect should be found, one
without should not be called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import optuna

from hpsearch.space import Preset, Value, sample_config

CURVES = ("additive", "multiplicative", "noisy", "iid", "slow")


@dataclass(frozen=True)
class Truth:
    """What a planted trial's validation accuracy is made of (all sizes in points).

    ``accuracy = base + lr_term + sum of planted effects + noise``, where ``lr_term =
    -lr_scale * (log10(lr) - log10(lr_best))**2`` (6-7 points lost at the ends of the lr
    range: it dominates, as in real studies; ``lr_param`` names the param that plays lr).
    ``effects`` are per param and choice; ``interactions`` per pair of params and pair of
    values, ``{("dropout", "activation"): {("on", "relu"): 0.6}}``, where "on" matches any
    value but the param's off value (0, "none", False) and "off" that value; ``early``
    effects (same form as ``effects``) are present at epoch 1 and gone by the end
    (``(1 - e / epochs)`` of them at epoch e: a slow starter that ends equal). ``curve``
    says how epochs approach it:

    - ``additive``: epoch e reports the final accuracy minus 5 pts / e (plus 5 / epochs);
    - ``multiplicative``: the final accuracy times a rising fraction;
    - ``noisy``: additive plus fresh noise of 0.3 pts on every epoch but the last;
    - ``iid``: every epoch's noise drawn afresh (no trial-level noise at all);
    - ``slow``: the planted effects grow linearly over the epochs (slow starters).
    """

    effects: Mapping[str, Mapping[Value, float]] = field(default_factory=dict)
    interactions: Mapping[tuple[str, str], Mapping[tuple[Value, Value], float]] = field(
        default_factory=dict)
    early: Mapping[str, Mapping[Value, float]] = field(default_factory=dict)
    lr_param: str = "lr"
    base: float = 97.0
    lr_scale: float = 3.0
    lr_best: float = 3e-3
    noise: float = 0.4
    epochs: int = 4
    curve: str = "additive"

    def final(self, values: Mapping[str, Value], noise: float) -> float:
        """Accuracy in points at the end of training."""
        lr = float(values[self.lr_param])  # type: ignore[arg-type]
        lr_term = -self.lr_scale * (math.log10(lr) - math.log10(self.lr_best)) ** 2
        return self.base + lr_term + self.effect(values) + noise

    def effect(self, values: Mapping[str, Value]) -> float:
        main = sum(_lookup(e, values[p]) for p, e in self.effects.items() if p in values)
        pairs = sum(size for (a, b), cells in self.interactions.items()
                    if a in values and b in values
                    for (va, vb), size in cells.items()
                    if _matches(values[a], va) and _matches(values[b], vb))
        return float(main + pairs)

    def early_effect(self, values: Mapping[str, Value]) -> float:
        return float(sum(_lookup(e, values[p]) for p, e in self.early.items() if p in values))

    def at_epoch(self, values: Mapping[str, Value], epoch: int, final: float,
                 rng: np.random.Generator) -> float:
        """Accuracy in points reported after ``epoch`` (the last one equals ``final``)."""
        e, n = epoch, self.epochs
        gap = 5.0 / e - 5.0 / n - self.early_effect(values) * (1 - e / n)
        if self.curve == "multiplicative":
            return final * (1 - 0.5 ** (e + 1)) / (1 - 0.5 ** (n + 1))
        if self.curve == "noisy" and e < n:
            return final - gap + rng.normal(0, 0.3)
        if self.curve == "iid" and e < n:
            return final - gap + rng.normal(0, self.noise) - (final - self.final(values, 0.0))
        if self.curve == "slow":
            return final - gap - self.effect(values) * (1 - e / n)
        return final - gap


OFF_VALUES: tuple[Value | None, ...] = (0, 0.0, "none", False, None)


def _matches(value: Value, key: Value) -> bool:
    if key == "on":
        return value not in OFF_VALUES
    if key == "off":
        return value in OFF_VALUES
    return bool(value == key)


def _lookup(effects: Mapping[Value, float], value: Value) -> float:
    return float(sum(size for key, size in effects.items() if _matches(value, key)))


# Effects the checks plant: batch norm helps by 0.7 pts on average (before more
# than after: placement 0.45 pts), against 0.4 pts of noise and the lr term.
BN_TRUTH = Truth(effects={"batch_norm": {"before": 0.925, "after": 0.475}})
NULL_TRUTH = Truth()
# Issue 18's interaction: dropout on helps with ReLU by 0.6 pts and hurts with sigmoid by
# 0.4 pts (a difference of 1.0 pt in dropout's effect), no main effects.
INTERACTION_TRUTH = Truth(interactions={("dropout", "activation"): {("on", "relu"): 0.6,
                                                                     ("on", "sigmoid"): -0.4}})
# Strong additive main effects of both and no interaction: must not be called one.
ADDITIVE_TRUTH = Truth(effects={"dropout": {"on": -0.8},
                                "activation": {"relu": 1.0, "sigmoid": -1.0}})
# Issue 18's slow starter: dropout costs 1 pt early on and nothing by the end.
SLOW_STARTER_TRUTH = Truth(early={"dropout": {"on": -1.0}})


def foreign_space(trial: optuna.Trial) -> dict[str, Value]:
    """A study that is not hpsearch's: a classifier choice, a log-scaled rate and a depth."""
    return {"classifier": trial.suggest_categorical("classifier", ["svc", "forest", "knn"]),
            "rate": trial.suggest_float("rate", 1e-4, 1e-1, log=True),
            "depth": trial.suggest_int("depth", 1, 8)}


def planted_study(truth: Truth, n_trials: int, *, sampler: optuna.samplers.BaseSampler,
                  pruner: optuna.pruners.BasePruner | None = None, seed: int = 0,
                  storage: str | None = None, study_name: str | None = None,
                  preset: Preset | None = None,
                  space: Callable[[optuna.Trial], dict[str, Value]] | None = None,
                  ) -> optuna.Study:
    """Run a study of ``n_trials`` planted trials (values are fractions, as accuracies).

    ``space`` samples a trial's params (default: hpsearch's space, with ``preset``);
    :func:`foreign_space` is a study of other params (plant with ``lr_param="rate"``).
    """
    rng = np.random.default_rng([seed, 7])
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                sampler=sampler, pruner=pruner or optuna.pruners.NopPruner())

    def objective(trial: optuna.Trial) -> float:
        values = space(trial) if space is not None else sample_config(trial, preset).as_dict()
        final = truth.final(values, rng.normal(0, truth.noise))
        for epoch in range(1, truth.epochs + 1):
            reported = truth.at_epoch(values, epoch, final, rng) / 100
            trial.report(reported, epoch)
            if epoch < truth.epochs and trial.should_prune():
                raise optuna.TrialPruned()
        return float(reported)

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study.optimize(objective, n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(level)
    return study
