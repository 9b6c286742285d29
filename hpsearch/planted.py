"""Planted studies: Optuna studies over hpsearch's space whose truth is known.

No training: a trial's accuracy is a dominant learning-rate term, the planted effects of
its choices and noise, reported over epochs as a learning curve so that a pruner can stop
it. The analysis is checked on these (``tests/analysis/`` and ``scripts/check_answers.py``):
a question with a planted effect should be found, one without should not be called.

Two kinds: the clean studies of :func:`planted_study` with a plain :class:`Truth` (smooth
curves, normal noise, every trial learns), and studies that look like real ones
(:func:`realistic` truths run by :func:`realistic_study`): trials that never learn at rates
that depend on params and rates that don't, learning curves of varied shape with
epoch-to-epoch jitter, heavy-tailed noise, the median pruner, patience, hpsearch's
samplers and provenance, foreign params (:func:`svm_space`) and paired designs whose arms
sometimes fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import optuna

from hpsearch import schema
from hpsearch.optimize import Arms, designed, make_pruner, make_sampler
from hpsearch.space import Preset, Value, sample_config

# ------------------------------------------------------------------------ realistic studies
#
# Real studies are not clean: some trials never learn (accuracy at chance at every epoch:
# an lr too high, a deep sigmoid net), learning curves have many shapes and jitter from
# epoch to epoch, a few trials land far from the rest (heavy tails), the median pruner
# stops the weak ones, and a trainer that keeps its best epoch stops by patience. The
# fields below plant all of that; :func:`realistic` turns any truth into such a study.

SHAPES = ("fast", "slow", "plateau", "diverge")
# MNIST's class shares: a net that never learns predicts one class and scores its share.
CLASS_SHARES = (0.0980, 0.1135, 0.1032, 0.1010, 0.0982, 0.0892, 0.0958, 0.1028, 0.0974,
                0.1009)


@dataclass(frozen=True)
class Failure:
    """Trials whose params match every condition of ``when`` never learn with probability
    ``rate`` (rules combine as independent causes). A condition is a value (``"on"`` and
    ``"off"`` as in :class:`Truth`) or a numeric range ``(low, high)``; an empty ``when``
    matches every trial (a rate that depends on no param)."""

    rate: float
    when: Mapping[str, Value | tuple[float, float]] = field(default_factory=dict)

    def matches(self, values: Mapping[str, Value]) -> bool:
        for param, cond in self.when.items():
            if param not in values:
                return False
            v = values[param]
            if isinstance(cond, tuple):
                if not isinstance(v, int | float) or not cond[0] <= float(v) <= cond[1]:
                    return False
            elif not _matches(v, cond):
                return False
        return True


def failure_rate(failures: Sequence[Failure], values: Mapping[str, Value]) -> float:
    """The probability that a trial with ``values`` never learns."""
    ok = 1.0
    for f in failures:
        if f.matches(values):
            ok *= 1.0 - f.rate
    return 1.0 - ok


# What the realistic studies plant unless told otherwise: 30 % of trials with an lr above
# 0.03 never learn, deep sigmoid MLPs fail a quarter of the time, and 3 % of all trials fail
# for no reason a param explains (a bad seed).
FAILURES = (Failure(0.30, {"lr": (0.03, 1.0)}),
            Failure(0.25, {"activation": "sigmoid", "hidden_layers": (3, 4)}),
            Failure(0.03))


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

    The rest make a study look like a real one (all off by default; :func:`realistic`
    turns them on): ``failures``, the trials that never learn (:class:`Failure`; they
    report a class share of ``chance`` at every epoch, and a quarter of them diverge and
    are pruned after an epoch or two, as hpsearch's trainer does with a NaN loss);
    ``shapes``, the learning-curve shapes a trial draws from (:data:`SHAPES`; replaces
    ``curve``); ``epoch_noise``, fresh noise in points on every epoch (the trial's value
    is its best epoch, as the trainer keeps it); ``noise_df``, t-distributed trial noise
    with these degrees of freedom (``noise`` is then its scale); ``patience``, epochs
    without improvement after which a trial stops (complete, with its best value);
    ``arm_failure``, in a paired design, the chance that one arm alone never learns.
    ``epochs=0``: no learning curve at all (a model fitted once, like an SVM).
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
    failures: tuple[Failure, ...] = ()
    chance: float = 0.1
    shapes: tuple[str, ...] = ()
    epoch_noise: float = 0.0
    noise_df: float | None = None
    patience: int | None = None
    arm_failure: float = 0.0

    def trial_noise(self, rng: np.random.Generator) -> float:
        """A trial's own noise (points): normal, or t-distributed with ``noise_df``."""
        if self.noise_df is not None:
            return float(self.noise * rng.standard_t(self.noise_df))
        return float(rng.normal(0, self.noise))

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


# ------------------------------------------------------------------------ realistic runs


def realistic(truth: Truth, *, epochs: int = 4, failures: Sequence[Failure] = FAILURES,
              arm_failure: float = 0.04) -> Truth:
    """``truth`` planted in a study that looks like a real one: trials that never learn
    (``failures``), every curve shape with 0.3 pts of jitter per epoch, t(3) trial noise,
    patience 3 (as hpsearch's trainer), and in a paired design one arm failing alone in
    ``arm_failure`` of the configs."""
    return replace(truth, epochs=epochs, failures=tuple(failures), shapes=SHAPES,
                   epoch_noise=0.3, noise_df=3.0, patience=3, arm_failure=arm_failure)


def svm_space(trial: optuna.Trial) -> dict[str, Value]:
    """A study that is not hpsearch's: an SVM's kernel, C and gamma (plant with
    ``lr_param="gamma"``, ``epochs=0``)."""
    return {"kernel": trial.suggest_categorical("kernel", ["linear", "poly", "rbf", "sigmoid"]),
            "C": trial.suggest_float("C", 1e-2, 1e3, log=True),
            "gamma": trial.suggest_float("gamma", 1e-4, 1e1, log=True)}


# An SVM on digits: gamma's hump dominates (1 pt per decade squared away from 0.003), the
# sigmoid kernel with a large C fails to fit 40 % of the time (it does), and 2 % of fits
# fail for no reason a param explains.
SVM_FAILURES = (Failure(0.40, {"kernel": "sigmoid", "C": (10.0, 1e3)}), Failure(0.02))
SVM_TRUTH = Truth(lr_param="gamma", lr_best=3e-3, lr_scale=1.0, base=97.0, epochs=0,
                  failures=SVM_FAILURES, noise=0.4, noise_df=3.0)


def _never_learned(truth: Truth, rng: np.random.Generator) -> tuple[list[float], bool]:
    """A curve at chance (points) and whether it diverged (stopped after 1-2 epochs)."""
    n = max(truth.epochs, 1)
    diverged = bool(rng.random() < 0.25) and truth.epochs > 0
    n = min(n, int(rng.integers(1, 3))) if diverged else n
    shares = np.asarray(CLASS_SHARES) * truth.chance / 0.1
    share = float(rng.choice(shares))
    out = []
    for _ in range(n):
        if rng.random() < 0.3:  # the constant prediction switches class now and then
            share = float(rng.choice(shares))
        out.append(100 * share)
    return out, diverged


@dataclass(frozen=True)
class _Shape:
    """One trial's curve shape, drawn once (the arms of a paired trial share it)."""

    kind: str
    gap: float     # points below the peak at epoch 1
    ratio: float   # geometric approach: the gap left shrinks by this each epoch
    peak: int      # the epoch the curve peaks (then flat, or falling when diverging)
    drop: float    # points lost per epoch after the peak ("diverge")


def _draw_shape(truth: Truth, rng: np.random.Generator) -> _Shape:
    n = truth.epochs
    kind = str(rng.choice(truth.shapes))
    gap = {"fast": (0.5, 3.0), "slow": (3.0, 12.0), "plateau": (1.0, 5.0),
           "diverge": (0.5, 3.0)}[kind]
    ratio = {"fast": (0.2, 0.5), "slow": (0.75, 0.95)}.get(kind, (0.3, 0.6))
    peak = n
    if kind == "plateau":
        peak = max(1, round(n * rng.uniform(0.3, 0.6)))
    elif kind == "diverge" and n >= 3:
        peak = max(1, round(n * rng.uniform(0.4, 0.8)))
    return _Shape(kind, rng.uniform(*gap), rng.uniform(*ratio), peak, rng.uniform(0.5, 8.0))


def _learned(truth: Truth, values: Mapping[str, Value], final: float, shape: _Shape,
             rng: np.random.Generator) -> list[float]:
    """The curve (points) of a trial whose peak is ``final``, with epoch jitter."""
    out = []
    n, m, r = truth.epochs, shape.peak, shape.ratio
    for e in range(1, n + 1):
        if e <= m:
            g = 0.0 if m == 1 else (r ** (e - 1) - r ** (m - 1)) / (1 - r ** (m - 1))
            mean = final - shape.gap * g
        else:
            mean = final - (shape.drop * (e - m) if shape.kind == "diverge" else 0.0)
        mean -= truth.early_effect(values) * (1 - e / n)
        out.append(float(np.clip(mean + rng.normal(0, truth.epoch_noise), 0.0, 100.0)))
    return out


def _stop_by_patience(curve: list[float], patience: int | None) -> int:
    """How many epochs a trainer with ``patience`` runs on ``curve``."""
    if patience is None:
        return len(curve)
    best, since = -math.inf, 0
    for e, v in enumerate(curve, start=1):
        best, since = (v, 0) if v > best else (best, since + 1)
        if since >= patience:
            return e
    return len(curve)


def _arm_curves(truth: Truth, values: Mapping[str, Value], noise: float, fail_u: float,
                rng: np.random.Generator, shape: _Shape | None,
                ) -> tuple[list[float], str]:
    """One run's curve (points) and how it stopped ("completed", "patience", "diverged")."""
    if fail_u < failure_rate(truth.failures, values):
        curve, diverged = _never_learned(truth, rng)
        return curve, "diverged" if diverged else "completed"
    final = truth.final(values, noise)
    if truth.epochs == 0:
        return [float(np.clip(final, 0.0, 100.0))], "completed"  # an accuracy: at most 100
    assert shape is not None
    curve = _learned(truth, values, final, shape, rng)
    stop = _stop_by_patience(curve, truth.patience)
    return curve[:stop], "patience" if stop < len(curve) else "completed"


def realistic_study(truth: Truth, n_trials: int, *, sampler: str = "tpe", seed: int = 0,
                    arms: Arms | None = None, preset: Preset | None = None,
                    space: Callable[[optuna.Trial], dict[str, Value]] | None = None,
                    dataset: str | None = "mnist", pruner: str = "median",
                    storage: str | None = None, study_name: str | None = None,
                    ) -> optuna.Study:
    """Run ``n_trials`` trials of a :func:`realistic` truth as hpsearch would.

    ``sampler`` is hpsearch's by name ("tpe": TPE with its 20 % randomized share;
    "random"), ``pruner`` hpsearch's by name (median by default), and the study records hpsearch's
    provenance (sampler, epochs, pruner, design) and ``dataset`` (so its chance level is
    known). ``space`` (e.g. :func:`svm_space`): a study of other params, with no
    provenance and only the user attr ``dataset`` (None: not even that). ``arms``: a
    paired design (each config trained under every arm on one seed, reported as the arms'
    mean and pruned together, the arms' curves in the trial's user attr ``arms``); an arm
    never learns when its config does, or alone with ``truth.arm_failure``.
    """
    base = make_sampler(sampler, seed, 0.2 if sampler == "tpe" else 0.0)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                sampler=designed(base, arms, seed),
                                pruner=make_pruner(pruner if truth.epochs > 1 else "none",
                                                   truth.epochs))
    if space is None:
        design = arms.design if arms is not None else "none"
        study.set_user_attr(schema.PROVENANCE, {
            "planted": True, "dataset": dataset, "seed": seed, "design": design,
            "question": arms.question if arms is not None else None,
            "settings": {"sampler": sampler, "epochs": truth.epochs, "pruner": pruner,
                         "patience": truth.patience, "dataset": dataset, "seed": seed,
                         "design": design, "random_share": 0.2 if sampler == "tpe" else 0.0}})
        if arms is not None:
            study.set_user_attr(schema.QUESTION, arms.question)
        # what optimize records beside the dataset: its classes and the largest one's share
        study.set_user_attr(schema.N_CLASSES, len(CLASS_SHARES))
        study.set_user_attr(schema.CHANCE, max(CLASS_SHARES) * truth.chance / 0.1)
    if dataset is not None:
        study.set_user_attr(schema.DATASET, dataset)
    rng = np.random.default_rng([seed, 24])
    objective = _paired_objective(truth, arms, preset, rng) if arms is not None else \
        _objective(truth, preset, space, rng)
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study.optimize(objective, n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(level)
    return study


def _objective(truth: Truth, preset: Preset | None,
               space: Callable[[optuna.Trial], dict[str, Value]] | None,
               rng: np.random.Generator) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        values = space(trial) if space is not None else sample_config(trial, preset).as_dict()
        schema.set_config(trial, dict(values))
        shape = _draw_shape(truth, rng) if truth.epochs else None
        curve, how = _arm_curves(truth, values, truth.trial_noise(rng), float(rng.random()),
                                 rng, shape)
        if truth.epochs == 0:
            return curve[-1] / 100
        for epoch, v in enumerate(curve, start=1):
            trial.report(v / 100, epoch)
            if epoch < truth.epochs and how != "diverged" and trial.should_prune():
                _record(trial, curve[:epoch], "pruned")
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")
        _record(trial, curve, how)
        if how == "diverged":
            schema.set_failure_reason(trial, f"diverged: loss is nan at epoch {len(curve)}")
            raise optuna.TrialPruned("diverged")
        return max(curve) / 100

    return objective


def _record(trial: optuna.Trial, curve: list[float], how: str) -> None:
    """The user attrs hpsearch's objective stores (the learning curve, how it stopped)."""
    schema.set_learning_curve(trial, {"val_acc": [v / 100 for v in curve]})
    schema.set_run_info(trial, {"stop_reason": how,
                                "best_epoch": int(np.argmax(curve)) + 1 if curve else 0})


def _paired_objective(truth: Truth, arms: Arms, preset: Preset | None,
                      rng: np.random.Generator) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        values = sample_config(trial, preset).as_dict()
        schema.set_config(trial, dict(values))
        shape = _draw_shape(truth, rng) if truth.epochs else None
        noise, fail_u = truth.trial_noise(rng), float(rng.random())
        curves = []
        for v in arms.values:  # the same seed: shared noise, shape and failure draw
            alone = rng.random() < truth.arm_failure
            curve, _ = _arm_curves(replace(truth, patience=None), {**values, arms.param: v},
                                   noise, -1.0 if alone else fail_u, rng, shape)
            if alone or len(curve) < truth.epochs:  # lockstep: a failed arm runs on
                curve = (curve * truth.epochs)[:truth.epochs] if alone else \
                    curve + [curve[-1]] * (truth.epochs - len(curve))
            curves.append(curve)
        best = [list(np.maximum.accumulate(c)) for c in curves]
        stopped = truth.epochs
        for epoch in range(1, truth.epochs + 1):
            trial.report(float(np.mean([b[epoch - 1] for b in best])) / 100, epoch)
            if epoch < truth.epochs and trial.should_prune():
                stopped = epoch
                break
        schema.set_arms(trial, {
            str(v): {"val_acc": [x / 100 for x in c[:stopped]], "final": max(c[:stopped]) / 100,
                     "stop_reason": "stopped" if stopped < truth.epochs else "completed",
                     "best_epoch": int(np.argmax(c[:stopped])) + 1}
            for v, c in zip(arms.values, curves, strict=True)})
        top = int(np.argmax([max(c[:stopped]) for c in curves]))
        schema.set_config(trial, {**values, arms.param: arms.values[top]})  # as hpsearch
        if stopped < truth.epochs:
            raise optuna.TrialPruned(f"pruned after epoch {stopped}")
        return float(np.mean([b[-1] for b in best])) / 100

    return objective
