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
were pruned, a trial stopped there keeps its own difference at that epoch plus the change
to the end that the trials which went on show, regressed on the arms' mean at that epoch
(:func:`_ice` says why the change, not the end itself). Values are best-so-far (a
trainer keeps its best epoch's weights, so a trial's value at the end is its best), and a
trial that stopped early by patience has finished: its value stands. Without pruning this
is the plain mean of the final paired differences.

**A config where an arm never learned** (its best value at chance, given ``chance``) is that
arm's failure, not a value: it leaves the accuracy differences (they are over the configs
where every arm learned), and the arms' failures are compared on their own, pairwise, by
the exact McNemar test on the configs where one arm failed and the other learned
(:mod:`hpsearch.analysis.discordant`).

The interval is a bootstrap over trials (the whole chain refitted each time), reported as
a t interval with the bootstrap's standard error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from scipy import stats as sps

from hpsearch import schema
from hpsearch.analysis.discordant import Failures, failures, never_learned

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


def _best_so_far(trial: FrozenTrial, arms: Sequence[str], epochs: int, sign: float = 1.0,
                 scale: float = 100.0) -> np.ndarray | None:
    """(arms x epochs reached) best-so-far values (x ``scale``: points for accuracies; the
    lowest so far where ``sign`` is -1, a user's loss); a finished trial's best stands to
    the end. None if an arm's curve is missing or not finite."""
    curves = []
    for a in arms:
        try:
            y = scale * np.asarray(trial.user_attrs[schema.ARMS][a]["val_acc"], dtype=float)
        except (KeyError, TypeError, ValueError):
            return None
        if y.size == 0 or not np.isfinite(y).all():
            return None
        curves.append(sign * np.maximum.accumulate(sign * y))
    n = epochs if trial.state == TrialState.COMPLETE else max(len(y) for y in curves)
    return np.array([np.concatenate([y, np.full(max(0, n - len(y)), y[-1])])[:n]
                     for y in curves])


def _ice(d: list[np.ndarray], s: list[np.ndarray], reached: np.ndarray, epochs: int,
         fit_slope: bool = False) -> float:
    """Mean end-of-training difference by iterated conditional expectations.

    At each epoch e where trials stopped, a stopped trial's end is its own difference at e
    plus the change from e to the end that the trials which went on show, regressed on the
    arms' mean at e (the pruner's own input). The difference's coefficient is held at 1, not
    fitted: a fitted one is shrunk by the epoch-to-epoch noise of the difference, and then
    the stopped trials (all on one side of the pruner's threshold) get the continuing
    trials' difference extrapolated along a straight line in the mean; a difference that
    depends on the config's quality in any other way (larger in the configs the pruner
    stops, or in the best and the worst) came out biased by half a 0.6-pt effect
    (docs/paired.md, written by scripts/check_paired.py). Held at 1, only the change after
    e is extrapolated: the price is power where the link is a straight line (the fitted
    slope's shrinkage helped there). ``fit_slope``: the earlier chain (kept to measure
    against).
    """
    q = np.array([x[-1] if r >= epochs else np.nan for x, r in zip(d, reached, strict=True)])
    for e in sorted({int(r) for r in reached if r < epochs}, reverse=True):
        stop = np.flatnonzero(reached == e)
        go = np.flatnonzero(reached > e)
        if len(go) == 0:
            q[stop] = [d[i][e - 1] for i in stop]  # nobody went on: carry the last value
            continue
        d_go = np.array([d[i][e - 1] for i in go])
        d_stop = np.array([d[i][e - 1] for i in stop])
        if len(go) >= MIN_FIT and fit_slope:
            x_go = np.array([[1.0, d[i][e - 1], s[i][e - 1]] for i in go])
            coef = np.linalg.lstsq(x_go, q[go], rcond=None)[0]
            q[stop] = np.array([[1.0, d[i][e - 1], s[i][e - 1]] for i in stop]) @ coef
        elif len(go) >= MIN_FIT:
            x_go = np.array([[1.0, s[i][e - 1]] for i in go])
            coef = np.linalg.lstsq(x_go, q[go] - d_go, rcond=None)[0]
            q[stop] = d_stop + np.array([[1.0, s[i][e - 1]] for i in stop]) @ coef
        else:  # too few to fit: the change from this epoch to the end, on average
            q[stop] = d_stop + float(np.mean(q[go] - d_go))
    return float(np.mean(q))


@dataclass
class PairedEffects:
    """Each arm's end-of-training value minus the first arm's (``theta[0] = 0``), in
    points, with the bootstrap covariance; and the same per epoch, over the trials that
    reached it (what "the effect over training" shows). All of it over the configs where
    every arm learned; ``failed`` says, per config (all of them) and arm, which never did."""

    arms: list[str]
    theta: np.ndarray
    cov: np.ndarray
    n: int
    n_complete: int
    by_epoch: list[tuple[int, np.ndarray, np.ndarray, int]]  # (epoch, theta, cov, n)
    final_values: np.ndarray   # (trials that finished, arms): their end values, points
    failed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    def failures_of(self, a: str, b: str) -> Failures:
        """How often ``a`` and ``b`` never learned, over every config."""
        i, j = self.arms.index(a), self.arms.index(b)
        if self.failed.size == 0:
            return failures(np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
        return failures(self.failed[:, i], self.failed[:, j])

    @property
    def failures(self) -> Failures | None:
        """The two arms' failures (None with more than two arms: see :meth:`failures_of`)."""
        return self.failures_of(*self.arms) if len(self.arms) == 2 else None

    @property
    def n_configs(self) -> int:
        """Every paired config, those where an arm never learned included."""
        return int(self.failed.shape[0]) if self.failed.size else self.n

    def contrast(self, a: str, b: str) -> tuple[float, float]:
        w = self.weights(a, b)
        return float(w @ self.theta), float(math.sqrt(max(float(w @ self.cov @ w), 0.0)))

    def weights(self, a: str, b: str) -> np.ndarray:
        w = np.zeros(len(self.arms))
        w[self.arms.index(a)] += 1.0
        w[self.arms.index(b)] -= 1.0
        return w


def paired_effects(trials: Sequence[FrozenTrial], *, epochs: int | None = None,
                   seed: int = 0, n_bootstrap: int = N_BOOTSTRAP,
                   chance: float | None = None, fit_slope: bool = False,
                   sign: float = 1.0, scale: float = 100.0) -> PairedEffects | None:
    """The end-of-training effects of a paired design's arms (None: fewer than 2 configs
    where every arm learned).

    ``chance``: the accuracy (fraction) of a model that never learned; a config where an
    arm stayed at chance (:func:`hpsearch.analysis.discordant.never_learned`, on its best
    value over the epochs it reached) counts as that arm's failure and leaves the accuracy
    differences. None: no failure is recognized (every config is averaged in).
    ``fit_slope``: impute pruned trials with the earlier chain (:func:`_ice`), to measure
    against. ``sign`` and ``scale``: the study's (:class:`~hpsearch.analysis.table.TrialTable`):
    -1 for a minimized objective, 1 for values that are not accuracies.
    """
    trials = paired_trials(trials)
    arms = arm_values(trials)
    if not trials or not arms:
        return None
    if epochs is None:
        epochs = max(max(len(v.get("val_acc", [])) for v in t.user_attrs[schema.ARMS].values()
                         if isinstance(v, dict)) for t in trials)
    every = [y for t in trials
             if (y := _best_so_far(t, arms, epochs, sign, scale)) is not None]
    failed = np.array([never_learned(y[:, -1] / scale, chance) for y in every], dtype=bool)
    failed = failed.reshape(len(every), len(arms))
    ys = [y for y, f in zip(every, failed, strict=True) if not f.any()]
    if len(ys) < 2:
        return None
    reached = np.array([y.shape[1] for y in ys])
    means = [y.mean(axis=0) for y in ys]

    def theta(idx: np.ndarray) -> np.ndarray:
        out = np.zeros(len(arms))
        for j in range(1, len(arms)):
            out[j] = _ice([ys[i][j] - ys[i][0] for i in idx], [means[i] for i in idx],
                          reached[idx], epochs, fit_slope)
        return out

    est = theta(np.arange(len(ys)))
    rng = np.random.default_rng([seed, 0xA125])
    boots = np.array([theta(rng.integers(0, len(ys), len(ys))) for _ in range(n_bootstrap)])
    cov = np.cov(boots, rowvar=False) if len(arms) > 2 else np.diag(
        [0.0, float(np.var(boots[:, 1], ddof=1))])
    # The bootstrap's variance of a mean is (n - 1) / n of the unbiased one: undone, so
    # that intervals over a handful of configs are not too short (5 configs: 0.8).
    cov = cov * len(ys) / max(len(ys) - 1, 1)
    per_epoch = []
    for e in range(1, epochs + 1):
        at = [y[:, e - 1] - y[0, e - 1] for y in ys if y.shape[1] >= e]
        if len(at) >= 2:
            m = np.array(at)
            per_epoch.append((e, m.mean(axis=0), np.cov(m, rowvar=False) / len(m), len(m)))
    finals = np.array([y[:, -1] for y in ys if y.shape[1] >= epochs])
    return PairedEffects(arms, est, np.atleast_2d(cov), len(ys), int(sum(reached >= epochs)),
                         per_epoch, finals, failed)


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
