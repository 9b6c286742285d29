"""Each question's effects, adjusted for the other params, from every finished trial.

Why not compare the complete trials' values by choice, as the first version did? Two
reasons, both measured on planted studies (``scripts/check_answers.py``):

- Pruning. The median pruner stops about half the trials at each epoch, so two thirds of
  a study are pruned. Their values are not missing at random in the usual sense, but they
  are *missing at random given what the trial reported*: the pruner decides from the
  values it saw. That is the condition under which a sequence of regressions, each fitted
  on the trials that got that far, is unbiased (monotone missing data, Little and Rubin
  2019, ch. 7). Complete trials alone are a selected sample (conditioning on survival
  blurs every effect), and a pruned trial's last value read as its final one penalizes
  slow starters.
- Confounding. Other params, the learning rate above all, move accuracy by several points
  where an effect is half a point; and TPE samples params together. Every fit holds the
  other params fixed with flexible terms (:mod:`hpsearch.analysis.matrix`), selected by a
  plug-in lasso and double selection (:mod:`hpsearch.analysis.regress`).

The estimator, per question param:

1. *Common fidelity.* At the first epoch where pruning stopped anyone, every finished
   trial has a value: a regression on all of them (one per question param, see
   ``_first_stage``) gives ``theta_1``, the effects at that epoch, with no selection at all.
2. *The chain to the end.* For each later epoch where pruning stopped trials, and then
   for the end of training, regress the trials that got there on their previous value,
   the choices and the selected nuisance terms: ``value_k = a * value_(k-1) + delta_c +
   ...``. The effect at stage k is ``a * effect_(k-1) + delta_c``; chained to the end this
   is ``theta_end``, with a delta-method variance (the stages' estimates are independent:
   each is a factor of the likelihood). Every choice that any trial carried to a stage is
   followed there; a choice that fewer than ``MIN_SURVIVORS`` trials carried (the
   default of ``min_survivors``) is *lost*: its
   end-of-training effect is unknown, and every contrast with it stays open. Measured on
   TPE slow starters: carrying a lost choice's early effect to the end called dropout in
   5 of 20 studies; following every survivor, see ``scripts/check_answers.py``.
3. *One answer: the end of training.* The verdict is always ``theta_end``. Earlier epochs
   enter only as covariates: each stage regresses a trial's value on its previous one, so
   the early values sharpen the end-of-training estimate (they explain most of a trial's
   own noise) without ever standing in for it. An earlier version answered with
   ``theta_1`` whenever a Wald test of change did not reject; on TPE-sampled planted
   slow starters (dropout hurts early, ends equal) that called false differences in 5 of
   32 studies, because "no detected change" is not "no change". ``change_p`` is still
   computed, for the caveat; the effect at every analysed epoch is in ``by_level`` (the
   report's effect over training). When the end is too imprecise the verdict is open and
   says what would settle it (:mod:`hpsearch.analysis.questions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as sps

from hpsearch.analysis.matrix import Design, Factor
from hpsearch.analysis.regress import Fit, independent, ols, plugin_lasso, residualize
from hpsearch.analysis.table import FINAL, TrialTable

# A choice that fewer trials carried to the end of training is lost (its contrasts stay
# open): the chain's model-based interval says nothing of its extrapolation error. On the
# README's quick start (TPE, median pruning), 2 survivors of batch_norm=after gave "after >
# before by 34.72 pts [5.76, 63.67]" against raw medians of 52% vs 98.5%.
MIN_SURVIVORS = 3


@dataclass
class LevelEffects:
    """One factor's effects (choice minus reference) over ``choices``, with covariance."""

    factor: Factor
    choices: list[str]          # reference first, then every choice with a column
    effect: np.ndarray          # at the chosen fidelity; effect[0] = 0 (the reference)
    cov: np.ndarray
    df: int
    n: int                      # trials in the common-fidelity fit
    fidelity: int               # the epoch of the answer: always FINAL (end of training)
    first_level: int            # the common fidelity (FINAL when nothing was pruned)
    change_p: float             # p of "the effect changed from the common fidelity to the end"
    survivors: dict[str, int] = field(default_factory=dict)  # per choice, at the end
    notes: list[str] = field(default_factory=list)
    # (level, effect, cov) after each stage of the chain: the effect over training
    by_level: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)  # choices too few trials carried to the end

    def contrast(self, weights: np.ndarray) -> tuple[float, float]:
        """Estimate and standard error of ``weights @ effect``; the standard error is
        infinite when the contrast involves a choice the chain could not follow to the
        end (its end-of-training effect is unknown, so the verdict stays open)."""
        var = float(weights @ self.cov @ weights)
        if any(weights[self.choices.index(c)] != 0 for c in self.lost):
            return float(weights @ self.effect), math.inf
        return float(weights @ self.effect), float(np.sqrt(max(var, 0.0)))


@dataclass
class _Chain:
    """A factor's running estimate: effects over its fitted choices and their covariance."""

    theta: np.ndarray
    cov: np.ndarray
    to_first: np.ndarray        # d theta / d theta_1 (for the change test's covariance)
    by_level: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)
    df: int = 1 << 30           # the fewest residual degrees of freedom of any stage so far

    def snapshot(self, level: int) -> None:
        self.by_level.append((level, self.theta.copy(), self.cov.copy()))


def estimate_effects(table: TrialTable, design: Design, *,
                     min_survivors: int = MIN_SURVIVORS,
                     ) -> dict[str, LevelEffects]:
    """Effects of every factor in ``design`` (see the module docstring)."""
    levels = table.levels()
    y = table.value_at(levels[0])
    rows = np.flatnonzero(np.isfinite(y))
    chains, first, dfs = {}, {}, {}
    for name, (theta, cov, df) in _first_stage(y[rows], design, rows).items():
        chains[name] = _Chain(theta, cov, np.eye(len(theta)))
        chains[name].snapshot(levels[0])
        first[name] = _Chain(theta.copy(), cov.copy(), np.eye(len(theta)))
        dfs[name] = df
        chains[name].df = df
    for epoch in reversed(table.early_epochs()):  # for the figure only: the verdict is FINAL
        early = table.value_at(epoch)[rows]
        if np.all(np.isfinite(early)):
            for name, (theta, cov, _) in _first_stage(early, design, rows).items():
                if name in chains:
                    chains[name].by_level.insert(0, (epoch, theta, cov))
    notes: dict[str, list[str]] = {name: [] for name in design.factors}
    prev, prev_rows = y, rows
    for level in levels[1:]:
        v = table.value_at(level)
        here = np.intersect1d(prev_rows, np.flatnonzero(np.isfinite(v)))
        for name, chain in chains.items():
            _advance(chain, design.factors[name], v, prev, here, design, level, notes[name],
                     min_survivors)
            chain.snapshot(level)
        prev, prev_rows = v, here
    out = {}
    for name, f in design.factors.items():
        if name not in chains:
            continue
        chain, start = chains[name], first[name]
        p_change = _change_p(chain, start) if len(levels) > 1 else 1.0
        out[name] = LevelEffects(
            factor=f, choices=[f.reference, *f.columns], effect=chain.theta, cov=chain.cov,
            df=min(dfs[name], chain.df), n=len(rows), fidelity=FINAL, first_level=levels[0],
            change_p=p_change,
            survivors=f.counts(prev_rows) if len(levels) > 1 else f.counts(rows),
            notes=notes[name], by_level=chain.by_level, lost=chain.lost)
    return out


# Every fit keeps at least this many residual degrees of freedom; a later stage of the
# chain (trials that got that far, regressed on their previous value) at least STAGE_DF.
MIN_DF = 10
STAGE_DF = 5


def _first_stage(y: np.ndarray, design: Design, rows: np.ndarray,
                 ) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """All trials at the common fidelity: (effects over [reference, *columns], cov, df).

    One fit per factor: its choices and every numeric term forced, the other questions'
    choices and the categorical nuisance selected by double selection. Numeric terms are
    forced because under TPE the learning rate varies little among most trials, so a lasso
    skips it, yet the few trials far from the good lr are exactly the ones with the rare
    choices. Measured on planted studies (``scripts/check_answers.py`` and the notes of
    the answers issue): without forced numeric terms null questions were called in 7 of
    12 TPE studies, with them in 0 of 12; and one joint fit of every question at once cost
    so many degrees of freedom that bn_placement was found in 3 of 10 random-sampler
    studies, against 8 of 10 for these per-factor fits. With too few trials for all the
    numeric terms, they are selected like the rest.
    """
    q, nuisance = design.q[rows], design.nuisance[rows]
    numeric = list(design.numeric)
    n = len(rows)
    out = {}
    for name, f in design.factors.items():
        own = list(f.columns.values())
        if n - (1 + len(own)) < MIN_DF:
            continue
        force = numeric if n - (1 + len(own) + len(numeric)) >= max(MIN_DF, n // 3) else []
        others = np.column_stack([np.delete(q, own, axis=1),
                                  np.delete(nuisance, force, axis=1)])
        fit = selected_fit(y, np.column_stack([q[:, own], nuisance[:, force]]), others,
                            n_choice=len(own))
        theta, cov, df = _block(fit, list(range(1, 1 + len(own))))
        grow, df_sub = carried(fit, f.carried(rows), len(own) + 1)
        out[name] = theta, grow * cov, min(df, df_sub)
    return out


def carried(fit: Fit, has: np.ndarray, k: int) -> tuple[float, int]:
    """(variance factor, degrees of freedom) for the effects of a param that only the
    trials ``has`` carry (a conditional param: cnn_channels, momentum, lr_gamma).

    The fit pools every trial's residuals, but its choices' contrasts are known only from
    the trials that carry it, and those can be far noisier than the rest (a small CNN
    beside MLPs on the README's quick start: ten CNN trials between 30% and 95%, MLPs
    within a few points). Pooled, that gave "cnn_channels=16 > 32 by 36.08 pts [11.30,
    60.86], Holm p=0.00023" where the raw values of 16 and 32 overlap everywhere. So the
    variance grows by the carriers' residual variance over the pooled one when larger, and
    the degrees of freedom are at most the carriers' count less the ``k`` choices.
    """
    if fit.resid is None or has.all() or not has.any():
        return 1.0, fit.df
    r = fit.resid
    df_sub = max(1, int(has.sum()) - k)
    pooled = float(r @ r) / max(fit.df, 1)
    own = float(r[has] @ r[has]) / df_sub
    return (max(1.0, own / pooled) if pooled > 0 else 1.0), min(fit.df, df_sub)


def selected_fit(y: np.ndarray, forced: np.ndarray, candidates: np.ndarray,
                  n_choice: int) -> Fit:
    """OLS on ``forced`` plus the candidates a plug-in lasso picks for ``y`` or for any of
    the first ``n_choice`` forced columns (post-double-selection), within a df budget.

    A column picked for its fit to ``y`` costs two residual degrees of freedom, not one: it
    was chosen partly for the noise it fits (Ye 1998's generalized degrees of freedom of a
    selected variable). Counted once, the null effects' t statistics had a standard
    deviation of 1.033 over 2,600 contrasts of 100 planted studies (6% beyond 1.96).
    """
    chosen: list[int] = []  # the response's picks first: they matter most if room runs out
    by_y = 0
    if candidates.shape[1]:
        rest = residualize(candidates, forced)
        chosen += list(plugin_lasso(rest, residualize(y[:, None], forced)[:, 0]))
        by_y = len(chosen)
        keep = forced[:, n_choice:]
        free = residualize(candidates, keep) if n_choice else candidates
        targets = residualize(forced[:, :n_choice], keep) if n_choice else forced[:, :0]
        for j in range(n_choice):
            chosen += list(plugin_lasso(free, targets[:, j]))
    room = len(y) - 1 - forced.shape[1] - MIN_DF
    picked = list(dict.fromkeys(chosen))[:max(0, room)]
    z = np.column_stack([np.ones(len(y)), forced, candidates[:, picked]])
    return ols(y, z, extra_df=min(by_y, len(picked)))


def _block(fit: Fit, idx: list[int]) -> tuple[np.ndarray, np.ndarray, int]:
    theta = np.concatenate([[0.0], fit.coef[idx]])
    cov = np.zeros((len(theta), len(theta)))
    cov[1:, 1:] = fit.cov[np.ix_(idx, idx)]
    return theta, cov, fit.df


def _advance(chain: _Chain, f: Factor, v: np.ndarray, prev: np.ndarray, rows: np.ndarray,
             design: Design, level: int, notes: list[str], min_survivors: int) -> None:
    """One step of the chain for one factor: the trials in ``rows`` went from ``prev`` to ``v``."""
    fitted = [f.reference, *f.columns]
    labels = [f.labels[i] for i in rows]
    counts = {c: labels.count(c) for c in fitted}
    ok = [c for c in fitted if counts[c] >= min_survivors]
    where = "the end" if level == FINAL else f"epoch {level}"
    thin = [f"{c} ({counts[c]})" for c in fitted if c not in ok]
    if len(ok) < 2 or len(rows) < len(ok) + 1 + STAGE_DF:
        notes.append(f"too few trials reached {where} to follow the effects there "
                     f"(n={len(rows)}): their end-of-training effects are unknown")
        chain.lost.update(fitted)
        return
    base = ok[0]
    present = [c for c in dict.fromkeys(labels) if c is not None and c != base]
    cols = np.column_stack([[1.0 if x == c else 0.0 for x in labels] for c in present])
    # The other questions' choices are candidates too, as in the first stage: left out, a
    # choice that changes over training (a slow starter) would pose, through the trials
    # that got this far, as a change in this factor's effect (TPE planted slow starters
    # called optimizer or init in 9 of 20 studies).
    own = list(f.columns.values())
    kept = [j for j in range(design.q.shape[1]) if j not in own]
    others = design.q[:, kept]
    nuisance = np.column_stack([others, design.nuisance])[rows]
    # "Off" steps (dropout 0, as a nuisance term or as another question's choice) are
    # forced in: a lasso rarely picks a column that only a few survivors have, and those
    # few are where a slow starter's change hides (TPE slow starters: 3 of 20 called).
    off = [kept.index(j) for j in off_steps(design) if j in kept]
    off += [others.shape[1] + j for j in off_columns(design.names)]
    off = [j for j in off if nuisance[:, j].std() > 0]
    forced = np.column_stack([prev[rows], cols, nuisance[:, off]])  # choices at 2, 3, ...
    nuisance = np.delete(nuisance, off, axis=1)
    chosen = plugin_lasso(residualize(nuisance, forced),
                          residualize(v[rows][:, None], forced)[:, 0])
    chosen = chosen[:max(0, len(rows) - 1 - forced.shape[1] - STAGE_DF)]
    chosen = chosen[independent(forced, nuisance[:, chosen])]
    fit = ols(v[rows], np.column_stack([np.ones(len(rows)), forced, nuisance[:, chosen]]))
    grow, df_sub = carried(fit, f.carried(rows), len(ok))
    if grow > 1.0:
        fit = replace(fit, cov=grow * fit.cov)
    # The answer's t quantiles use the fewest degrees of freedom of any stage: the end of
    # training is estimated from its survivors (13-24 of them in small studies), and the
    # first stage's df overstated what they know.
    chain.df = min(chain.df, fit.df, df_sub)
    a, var_a = fit.coef[1], fit.cov[1, 1]
    moved = [c for c in ok if c != base]
    pos = [2 + present.index(c) for c in moved]
    delta, cov_delta = fit.coef[pos], fit.cov[np.ix_(pos, pos)]
    cov_a_delta = fit.cov[1, pos]
    # theta'_c = a theta_c + delta_c for followed choices; a choice too few trials carried
    # keeps its effect relative to the base: theta'_c = theta_c + (a - 1) theta_base.
    n, b = len(fitted), fitted.index(base)
    c_map, k_map, grad = np.eye(n), np.zeros((n, len(moved))), np.zeros(n)
    for i, c in enumerate(fitted):
        if c in ok:
            c_map[i, i], grad[i] = a, chain.theta[i]
            if c != base:
                k_map[i, moved.index(c)] = 1.0
        else:
            c_map[i, b] += a - 1.0
            grad[i] = chain.theta[b]
    theta = c_map @ chain.theta + k_map @ delta
    kd = k_map @ cov_a_delta
    cov = (c_map @ chain.cov @ c_map.T + var_a * np.outer(grad, grad)
           + k_map @ cov_delta @ k_map.T + np.outer(grad, kd) + np.outer(kd, grad))
    ref = np.eye(n) - np.eye(n)[0]  # back to effects relative to the reference
    chain.theta, chain.cov = ref @ theta, ref @ cov @ ref.T
    chain.to_first = ref @ c_map @ chain.to_first
    if thin:
        chain.lost.update(c for c in fitted if c not in ok)
        notes.append(f"too few trials reached {where} with {', '.join(thin)} to follow "
                     "their effect there: comparisons with them stay open (an early effect "
                     "never stands in for the end-of-training one)")


def off_steps(design: Design) -> list[int]:
    """Question-block columns that switch a numeric param on (dropout "> 0")."""
    return [col for f in design.factors.values() if len(f.order) == 2
            and f.order[1].startswith("> ") for col in f.columns.values()]


def off_columns(names: list[str]) -> list[int]:
    """The design's "param is off" indicators (``dropout:off``)."""
    return [j for j, name in enumerate(names) if name.endswith(":off")]


def _change_p(chain: _Chain, start: _Chain) -> float:
    """Wald p of "the end-of-training effects equal the common-fidelity ones"."""
    d = (chain.theta - start.theta)[1:]
    if d.size == 0:
        return 1.0
    m = chain.to_first
    cov = chain.cov + start.cov - m @ start.cov - start.cov @ m.T
    cov = cov[1:, 1:]
    # A stage that is exactly deterministic (planted curves) has no variance of its own:
    # a tiny ridge keeps the test defined, and any real difference then counts.
    cov = cov + 1e-9 * max(float(np.trace(start.cov)) / d.size, 1e-12) * np.eye(d.size)
    stat = float(d @ np.linalg.solve(cov, d))
    return float(sps.chi2.sf(stat, d.size))
