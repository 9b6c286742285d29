"""Paired-design studies: every config trained under each arm on one seed, pruned together.

A paired trial (:mod:`hpsearch.optimize.designs`) stores each arm's validation curve (user
attr ``arms``). Its difference between two arms is free of everything the arms share (the
config's other params, the learning rate that dominates a study, the seed), so the
question is answered by paired differences, not by a regression over configs.

**The answer is the difference at the end of training.** The arms of a trial stop
together, and the pruner stops a trial from what it reported (the arms' mean), so whether a
trial goes on depends only on its observed history: the end-of-training difference of a
pruned trial is missing at random given its history. It is imputed by iterated
conditional expectations (the g-formula for monotone dropout): at each epoch where trials
were pruned, the end-of-training difference of the trials that went on is regressed on
their difference and their mean at that epoch, and the regression predicts it for the
trials stopped there. Values are best-so-far (a trainer keeps its best epoch's weights, so
a trial's value at the end is its best), and a trial that stopped early by patience has
finished: its value stands. Without pruning this is the plain mean of the final paired
differences. The interval is a bootstrap over trials (the whole chain refitted each time),
reported as a normal interval with the bootstrap's standard error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from scipy import stats as sps

from hpsearch import schema

N_BOOTSTRAP = 400
MIN_FIT = 8              # trials that went on needed to fit an epoch's regression


@dataclass
class PairedContrast:
    """``a - b`` at the end of training, in points (objective x 100)."""

    a: str
    b: str
    estimate: float
    se: float
    n: int                 # paired trials (configs)
    n_complete: int        # of which trained to the end (or stopped by patience)

    def interval(self, level: float) -> tuple[float, float]:
        """The two-sided interval at confidence ``1 - level`` (level: the Holm level)."""
        z = float(sps.norm.ppf(1 - level / 2))
        return self.estimate - z * self.se, self.estimate + z * self.se

    @property
    def p_value(self) -> float:
        if not self.se > 0:
            return 1.0 if self.estimate == 0 else 0.0
        return float(2 * sps.norm.sf(abs(self.estimate) / self.se))


def paired_trials(trials: Sequence[FrozenTrial], question: str | None = None,
                  ) -> list[FrozenTrial]:
    """The finished trials of a paired design (for ``question`` if given)."""
    out = []
    for t in trials:
        d = schema.design(t)
        if (t.state in (TrialState.COMPLETE, TrialState.PRUNED) and d is not None
                and d.get("design") == "paired" and schema.arms(t) is not None
                and (question is None or d.get("question") == question)):
            out.append(t)
    return out


def arm_values(trials: Sequence[FrozenTrial]) -> list[str]:
    """The arms, in the order the design lists them."""
    for t in trials:
        arms = t.user_attrs[schema.DESIGN].get("arms")
        if isinstance(arms, list) and len(arms) >= 2:
            return [str(a) for a in arms]
    return []


def _best_so_far(trial: FrozenTrial, arms: Sequence[str], epochs: int) -> np.ndarray | None:
    """(arms x epochs reached) best-so-far values in points; a finished trial's best stands
    to the end. None if an arm's curve is missing or not finite."""
    curves = []
    for a in arms:
        try:
            y = 100 * np.asarray(trial.user_attrs[schema.ARMS][a]["val_acc"], dtype=float)
        except (KeyError, TypeError, ValueError):
            return None
        if y.size == 0 or not np.isfinite(y).all():
            return None
        curves.append(np.maximum.accumulate(y))
    n = epochs if trial.state == TrialState.COMPLETE else max(len(y) for y in curves)
    return np.array([np.concatenate([y, np.full(max(0, n - len(y)), y[-1])])[:n]
                     for y in curves])


def _ice(d: list[np.ndarray], s: list[np.ndarray], reached: np.ndarray, epochs: int) -> float:
    """Mean end-of-training difference by iterated conditional expectations."""
    q = np.array([x[-1] if r >= epochs else np.nan for x, r in zip(d, reached, strict=True)])
    for e in sorted({int(r) for r in reached if r < epochs}, reverse=True):
        stop = np.flatnonzero(reached == e)
        go = np.flatnonzero(reached > e)
        if len(go) == 0:
            q[stop] = [d[i][e - 1] for i in stop]  # nobody went on: carry the last value
            continue
        x_go = np.array([[1.0, d[i][e - 1], s[i][e - 1]] for i in go])
        if len(go) >= MIN_FIT:
            coef = np.linalg.lstsq(x_go, q[go], rcond=None)[0]
            x_stop = np.array([[1.0, d[i][e - 1], s[i][e - 1]] for i in stop])
            q[stop] = x_stop @ coef
        else:  # too few to fit: the shift from this epoch to the end, on average
            shift = float(np.mean(q[go] - x_go[:, 1]))
            q[stop] = [d[i][e - 1] + shift for i in stop]
    return float(np.mean(q))


@dataclass
class PairedEffects:
    """Each arm's end-of-training value minus the first arm's (``theta[0] = 0``), in
    points, with the bootstrap covariance; and the same per epoch, over the trials that
    reached it (what "the effect over training" shows)."""

    arms: list[str]
    theta: np.ndarray
    cov: np.ndarray
    n: int
    n_complete: int
    by_epoch: list[tuple[int, np.ndarray, np.ndarray, int]]  # (epoch, theta, cov, n)
    final_values: np.ndarray   # (trials that finished, arms): their end values, points

    def contrast(self, a: str, b: str) -> tuple[float, float]:
        w = self.weights(a, b)
        return float(w @ self.theta), float(math.sqrt(max(float(w @ self.cov @ w), 0.0)))

    def weights(self, a: str, b: str) -> np.ndarray:
        w = np.zeros(len(self.arms))
        w[self.arms.index(a)] += 1.0
        w[self.arms.index(b)] -= 1.0
        return w


def paired_effects(trials: Sequence[FrozenTrial], *, epochs: int | None = None,
                   seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> PairedEffects | None:
    """The end-of-training effects of a paired design's arms (None: fewer than 2 trials)."""
    trials = paired_trials(trials)
    arms = arm_values(trials)
    if not trials or not arms:
        return None
    if epochs is None:
        epochs = max(max(len(v.get("val_acc", [])) for v in t.user_attrs[schema.ARMS].values()
                         if isinstance(v, dict)) for t in trials)
    ys = [y for t in trials if (y := _best_so_far(t, arms, epochs)) is not None]
    if len(ys) < 2:
        return None
    reached = np.array([y.shape[1] for y in ys])
    means = [y.mean(axis=0) for y in ys]

    def theta(idx: np.ndarray) -> np.ndarray:
        out = np.zeros(len(arms))
        for j in range(1, len(arms)):
            out[j] = _ice([ys[i][j] - ys[i][0] for i in idx], [means[i] for i in idx],
                          reached[idx], epochs)
        return out

    every = np.arange(len(ys))
    est = theta(every)
    rng = np.random.default_rng([seed, 0xA125])
    boots = np.array([theta(rng.integers(0, len(ys), len(ys))) for _ in range(n_bootstrap)])
    cov = np.cov(boots, rowvar=False) if len(arms) > 2 else np.diag(
        [0.0, float(np.var(boots[:, 1], ddof=1))])
    per_epoch = []
    for e in range(1, epochs + 1):
        at = [y[:, e - 1] - y[0, e - 1] for y in ys if y.shape[1] >= e]
        if len(at) >= 2:
            m = np.array(at)
            per_epoch.append((e, m.mean(axis=0), np.cov(m, rowvar=False) / len(m), len(m)))
    finals = np.array([y[:, -1] for y in ys if y.shape[1] >= epochs])
    return PairedEffects(arms, est, np.atleast_2d(cov), len(ys), int(sum(reached >= epochs)),
                         per_epoch, finals)


def paired_contrasts(trials: Sequence[FrozenTrial], *, epochs: int | None = None,
                     seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> list[PairedContrast]:
    """Every pair of arms, ``a - b`` at the end of training with its standard error."""
    fx = paired_effects(trials, epochs=epochs, seed=seed, n_bootstrap=n_bootstrap)
    if fx is None:
        return []
    out = []
    for a, b in combinations(fx.arms, 2):
        est, se = fx.contrast(a, b)
        out.append(PairedContrast(a, b, est, se, fx.n, fx.n_complete))
    return out
