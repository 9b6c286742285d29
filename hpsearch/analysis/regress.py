"""Linear regression pieces for the effects: partialling out, a plug-in lasso, OLS.

Why a lasso at all: a study has ~25 params, so adjusting every question for every other
param's flexible terms costs ~70 columns on 100 trials, and the effects drown in the
noise that the unused columns add. The *plug-in* lasso (Belloni, Chen, Chernozhukov and
Hansen 2012: penalty from the Gaussian maximal inequality, heteroskedastic loadings) picks
the columns that really predict a response, without cross-validation. It is conservative
on purpose: selected columns then enter an ordinary least-squares fit whose classical
standard errors are what the tests use ("post-double-selection", Belloni et al. 2014).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

# Plug-in penalty constants: c = 1.1 and gamma = 0.1 / log(n) are the values the authors
# recommend; three rounds re-estimate the loadings from the post-lasso residuals.
_C, _ROUNDS = 1.1, 3


def residualize(a: np.ndarray, by: np.ndarray) -> np.ndarray:
    """``a`` minus its least-squares fit on an intercept and the columns of ``by``."""
    z = np.column_stack([np.ones(len(a)), by]) if by.size else np.ones((len(a), 1))
    # An orthonormal basis of z's column space (the SVD, with lstsq's own rank cut-off):
    # the same projection as a least-squares fit, four times faster on many columns.
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    u = u[:, s > s[0] * max(z.shape) * np.finfo(float).eps] if s.size and s[0] > 0 else u[:, :0]
    return a - u @ (u.T @ a)


def independent(base: np.ndarray, cols: np.ndarray) -> list[int]:
    """Indices of ``cols`` that, added in order, each raise the rank of ``[1, base, kept]``.

    A stage of the chain fits only the trials that got that far, and among them a column
    can be a combination of others (no survivor in some cell): its coefficient is then not
    identified, and a pseudo-inverse would split the effect between the columns at random
    while reporting almost no variance for the split.
    """
    kept: list[int] = []
    z = np.column_stack([np.ones(len(base)), base]) if base.size else np.ones((len(cols), 1))
    rank = int(np.linalg.matrix_rank(z))
    for j in range(cols.shape[1]):
        trial = np.column_stack([z, cols[:, j]])
        r = int(np.linalg.matrix_rank(trial))
        if r > rank:
            z, rank = trial, r
            kept.append(j)
    return kept


def plugin_lasso(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the columns of ``x`` that a plug-in-penalty lasso of ``y`` selects."""
    from sklearn.linear_model import Lasso

    n, p = x.shape
    spread = x.std(axis=0)
    usable = np.flatnonzero(spread > 1e-9)
    if p == 0 or usable.size == 0 or n < 3 or np.ptp(y) == 0:
        return np.array([], dtype=int)
    xs = (x[:, usable] - x[:, usable].mean(0)) / spread[usable]
    lam = _C * float(sps.norm.ppf(1 - 0.1 / math.log(max(n, 3)) / (2 * usable.size)))
    resid = y - y.mean()
    chosen = np.array([], dtype=int)
    for _ in range(_ROUNDS):
        loadings = np.sqrt(np.mean(xs ** 2 * resid[:, None] ** 2, axis=0)) + 1e-12
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on degenerate columns
            fit = Lasso(alpha=lam / math.sqrt(n), max_iter=20_000).fit(xs / loadings, y)
        chosen = np.flatnonzero(fit.coef_)
        z = np.column_stack([np.ones(n), xs[:, chosen]])
        coef, *_ = np.linalg.lstsq(z, y, rcond=None)
        resid = y - z @ coef
    return usable[chosen]


@dataclass(frozen=True)
class Fit:
    """A regression fit: coefficients, their covariance and residual degrees of freedom."""

    coef: np.ndarray
    cov: np.ndarray
    df: int
    sigma: float      # residual scale
    downweighted: int = 0  # trials the robust fit gave less than full weight
    resid: np.ndarray | None = None  # per trial: value minus fitted value


# Huber's tuning constant: 95% efficiency when the noise is normal.
HUBER_C = 3.0


def ols(y: np.ndarray, z: np.ndarray, extra_df: int = 0) -> Fit:
    """Huber-robust least squares (IRLS) with Huber's covariance for the M-estimator.

    Robust because real studies are bimodal: beside trials near 98% there are trials that
    never learned (10% on digits after a too-small learning rate), and a plain
    least-squares fit lets those dominate every effect and its variance. Huber's loss is
    quadratic within ``HUBER_C`` robust standard deviations and linear beyond, so a
    failed trial still counts but as a large residual, not a huge one. With normal noise
    (the planted studies) it is ordinary least squares to within a few percent.

    The covariance pools the residuals (Huber 1981, eq. 7.6.6 with his small-sample
    factor K), not each trial's own: a choice that only a few trials drew would get its
    variance from those few residuals alone, which in planted TPE studies (3-6 trials of
    a choice) made the intervals far too short. ``extra_df`` more degrees of freedom are
    charged for columns that were selected by their fit to ``y``.
    """
    n = len(y)
    pinv = np.linalg.pinv(z.T @ z)
    coef = pinv @ z.T @ y
    rank = int(np.linalg.matrix_rank(z))
    df = max(1, n - rank - extra_df)  # extra_df: columns chosen for their fit to y
    weights = np.ones(n)
    # Below this residual scale the fit is exact up to rounding (a planted, noiseless stage
    # of the chain): Huber's weights would then be rounding noise, and his covariance divides
    # by the share of residuals inside a vanishing threshold, so plain OLS is used.
    tiny = 1e-9 * max(1.0, float(np.std(y)))
    scale = 0.0
    for _ in range(50):
        resid = y - z @ coef
        scale = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        if not scale > tiny:
            weights = np.ones(n)
            break
        weights = np.minimum(1.0, HUBER_C * scale / np.maximum(np.abs(resid), 1e-300))
        zw = z * weights[:, None]
        new = np.linalg.pinv(z.T @ zw) @ zw.T @ y
        if np.allclose(new, coef, rtol=1e-8, atol=1e-10):
            coef = new
            break
        coef = new
    resid = y - z @ coef
    if np.all(weights == 1.0) or not scale > tiny:
        s2 = float(resid @ resid) / df
        return Fit(coef, s2 * pinv, df, math.sqrt(s2), resid=resid)
    c = HUBER_C * scale
    psi = np.clip(resid, -c, c)
    inside = float(np.mean(np.abs(resid) <= c))
    k = 1 + rank / n * (1 - inside) / max(inside, 1e-12)
    s2 = float(psi @ psi) / df
    cov = k ** 2 * s2 / max(inside, 1e-12) ** 2 * pinv
    return Fit(coef, cov, df, math.sqrt(s2) / max(inside, 1e-12),
               int(np.sum(weights < 1.0)), resid)
