"""End-of-training coefficients of any columns: numeric questions and interactions.

The chain of :mod:`hpsearch.analysis.effects`, for columns that are not one param's
choices: a numeric param's ``z`` and ``z^2`` terms, or the codings of two params and their
products. Stage 1 regresses every finished trial's value at the common fidelity on the
columns, the numeric nuisance terms (forced) and the nuisance a double-selection lasso
picks; each later stage regresses the trials that got there on their previous value, the
columns and selected nuisance: ``value_k = a value_(k-1) + x delta + ...``, so the
coefficients at stage k are ``a theta_(k-1) + delta``, chained to the end of training with
a delta-method covariance. Earlier epochs enter only as that covariate: the answer is the
end-of-training coefficient, never an early one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hpsearch.analysis.effects import MIN_DF, MIN_SURVIVORS, STAGE_DF, selected_fit
from hpsearch.analysis.regress import independent, ols, plugin_lasso, residualize
from hpsearch.analysis.table import FINAL, TrialTable


@dataclass
class TermEffects:
    """Coefficients of the columns at the end of training, with their covariance."""

    theta: np.ndarray
    cov: np.ndarray
    df: int
    n: int                       # trials in the common-fidelity fit
    first_level: int
    by_level: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)  # columns too few trials carried to the end

    def contrast(self, weights: np.ndarray) -> tuple[float, float]:
        """Estimate and standard error of ``weights @ theta`` (infinite when it involves a
        column the chain could not follow to the end: that effect is unknown)."""
        var = float(weights @ self.cov @ weights)
        if any(weights[j] != 0 for j in self.lost):
            return float(weights @ self.theta), math.inf
        return float(weights @ self.theta), float(np.sqrt(max(var, 0.0)))


def chain_terms(table: TrialTable, rows: np.ndarray, x: np.ndarray, nuisance: np.ndarray,
                numeric: list[int], *, min_survivors: int = MIN_SURVIVORS,
                n_select: int | None = None, always: list[int] | None = None,
                ) -> TermEffects | None:
    """End-of-training coefficients of ``x`` (one row per trial in ``rows``), adjusted for
    ``nuisance`` (its ``numeric`` columns forced into the first stage when there is room).
    The first ``n_select`` columns of ``x`` (default all) are the targets of double
    selection: the nuisance that predicts them is kept (the columns of interest).
    ``always``: nuisance columns forced into every later stage (the "off" steps, see
    :func:`hpsearch.analysis.effects.off_columns`).

    None when the common-fidelity fit has fewer than ``MIN_DF`` residual degrees of freedom.
    """
    levels = table.levels()
    k = x.shape[1]
    nuisance, (numeric, always) = _identified(x, nuisance, [numeric, always or []])
    y_all = table.value_at(levels[0])[rows]
    ok = np.flatnonzero(np.isfinite(y_all))
    n = len(ok)
    if n - 1 - k < MIN_DF:
        return None
    force = numeric if n - (1 + k + len(numeric)) >= max(MIN_DF, n // 3) else []
    rest = np.delete(nuisance[ok], force, axis=1)
    fit = selected_fit(y_all[ok], np.column_stack([x[ok], nuisance[ok][:, force]]), rest,
                       n_choice=k if n_select is None else n_select)
    theta, cov = fit.coef[1:1 + k].copy(), fit.cov[1:1 + k, 1:1 + k].copy()
    out = TermEffects(theta, cov, fit.df, n, levels[0])
    for epoch in table.early_epochs():  # the effect over training; the verdict is FINAL's
        early = table.value_at(epoch)[rows][ok]
        if np.all(np.isfinite(early)):
            efit = selected_fit(early, np.column_stack([x[ok], nuisance[ok][:, force]]), rest,
                                n_choice=k if n_select is None else n_select)
            out.by_level.append((epoch, efit.coef[1:1 + k].copy(),
                                 efit.cov[1:1 + k, 1:1 + k].copy()))
    out.by_level.append((levels[0], theta.copy(), cov.copy()))
    prev, prev_ok = y_all, ok
    for level in levels[1:]:
        v = table.value_at(level)[rows]
        here = np.intersect1d(prev_ok, np.flatnonzero(np.isfinite(v)))
        _step(out, x, v, prev, here, nuisance, level, min_survivors, always)
        out.by_level.append((level, out.theta.copy(), out.cov.copy()))
        prev, prev_ok = v, here
    return out


def _identified(x: np.ndarray, nuisance: np.ndarray, positions: list[list[int]],
                ) -> tuple[np.ndarray, list[list[int]]]:
    """Drop the nuisance columns that ``x`` determines (a child param's "is sampled" flag
    is a combination of its parent's choices): kept, they would leave ``x``'s coefficients
    unidentified, and the pseudo-inverse would report a covariance that is far too small
    (null weight_penalty x batch_norm interactions were called in 2 of 20 studies)."""
    if not nuisance.shape[1] or not x.shape[1]:
        return nuisance, positions
    spread = nuisance.std(0)
    keep = residualize(nuisance, x).std(0) > 1e-6 * (spread + 1e-12)
    index = np.cumsum(keep) - 1
    return nuisance[:, keep], [[int(index[j]) for j in js if keep[j]] for js in positions]


def _usable(col: np.ndarray, min_survivors: int) -> bool:
    """Whether the trials of a stage carry a column: an indicator (or a product of
    indicators) needs ``min_survivors`` on each side, a numeric term (``z``, ``z^2``) that
    many distinct values and twice that many trials (a curve through one or two survivors
    is an extrapolation the model-based interval knows nothing of)."""
    if col.size < 2 or not col.std() > 1e-9:
        return False
    values = np.unique(col)
    if len(values) == 2:  # an indicator (or a product of indicators): both sides populated
        return bool(min(np.sum(col == values[0]), np.sum(col == values[1])) >= min_survivors)
    return bool(len(values) >= min_survivors and col.size >= 2 * min_survivors)


def _confounded(xr: np.ndarray, prev: np.ndarray, kept: list[int], dropped: list[int],
                ) -> set[int]:
    """The kept columns that a dropped (unidentified) column is a combination of."""
    out: set[int] = set()
    if not dropped:
        return out
    z = np.column_stack([np.ones(len(prev)), prev, xr[:, kept]])
    for j in dropped:
        coef, *_ = np.linalg.lstsq(z, xr[:, j], rcond=None)
        out.update(kept[i] for i, c in enumerate(coef[2:]) if abs(c) > 1e-8)
    return out


def _step(te: TermEffects, x: np.ndarray, v: np.ndarray, prev: np.ndarray, rows: np.ndarray,
          nuisance: np.ndarray, level: int, min_survivors: int, always: list[int]) -> None:
    where = "the end" if level == FINAL else f"step {level}"
    xr = x[rows]
    use = [j for j in range(x.shape[1]) if _usable(xr[:, j], min_survivors)]
    identified = [use[i] for i in independent(prev[rows][:, None], xr[:, use])]
    confounded = _confounded(xr, prev[rows], identified, [j for j in use if j not in identified])
    # A column the survivors no longer tell apart from others (a cell with no survivor left
    # makes a main effect a combination of its products) is not followed, and neither are
    # the columns it is a combination of: their coefficients would carry its effect (a
    # product would carry the main effect). Kept, a cell with 0 trials at the end printed
    # "+23.82 [15.39, 32.26]".
    use = [j for j in identified if j not in confounded]
    if not use or len(rows) < len(use) + 2 + STAGE_DF:
        te.notes.append(f"too few trials reached {where} to follow the effect there "
                        f"(n={len(rows)}): its end-of-training value is unknown")
        te.lost.update(range(x.shape[1]))
        return
    nu = nuisance[rows]
    on = [j for j in always if nu[:, j].std() > 0]
    forced = np.column_stack([prev[rows], xr[:, use], nu[:, on]])  # x's columns at 2, 3, ...
    nu = np.delete(nu, on, axis=1)
    chosen = plugin_lasso(residualize(nu, forced), residualize(v[rows][:, None], forced)[:, 0])
    chosen = chosen[:max(0, len(rows) - 1 - forced.shape[1] - STAGE_DF)]
    chosen = chosen[independent(forced, nu[:, chosen])]
    fit = ols(v[rows], np.column_stack([np.ones(len(rows)), forced, nu[:, chosen]]))
    te.df = min(te.df, fit.df)  # the fewest of any stage (see effects._advance)
    a, var_a = fit.coef[1], fit.cov[1, 1]
    pos = list(range(2, 2 + len(use)))
    delta, cov_delta, cov_a_delta = fit.coef[pos], fit.cov[np.ix_(pos, pos)], fit.cov[1, pos]
    kmap = np.zeros((x.shape[1], len(use)))
    for i, j in enumerate(use):
        kmap[j, i] = 1.0
    # theta' = a theta + K delta: a column too few survivors carry keeps a theta (delta 0).
    theta = a * te.theta + kmap @ delta
    kd = kmap @ cov_a_delta
    te.cov = (a * a * te.cov + var_a * np.outer(te.theta, te.theta)
              + kmap @ cov_delta @ kmap.T + np.outer(te.theta, kd) + np.outer(kd, te.theta))
    te.theta = theta
    if len(use) < x.shape[1]:
        te.lost.update(j for j in range(x.shape[1]) if j not in use)
        te.notes.append(f"too few trials reached {where} in some cells: contrasts that need "
                        "them stay open")
