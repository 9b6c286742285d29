"""Small statistics: the three states of a verdict and the one rule that decides them, Holm's
correction and its interval levels, intervals, rank agreement.

Pure numpy/scipy on arrays; nothing here knows Optuna or the search space, so every
function can be checked against numbers worked out by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN

# ---------------------------------------------------------------------------- the verdict

def excludes_zero(intervals: Sequence[tuple[float, float]]) -> bool:
    """Whether some interval lies wholly above or below 0."""
    return any(lo > 0 or hi < 0 for lo, hi in intervals)


def settle(intervals: Sequence[tuple[float, float]], margin: float, *,
           rejected: bool | None = None, lost: bool = False) -> str:
    """The state of a question (or row) from its contrasts' intervals at its level.

    - **difference**: an interval excludes 0; where a test decides it (``rejected``: a Holm
      step-down on sequential or exact p-values, whose intervals are its duals), the test;
    - **equivalent**: not a difference, no contrast ``lost`` (one with no estimate keeps
      equivalence away), and every interval inside ``+-margin`` (a finite, positive margin;
      nan: equivalence is never called);
    - **open**: neither.
    """
    if excludes_zero(intervals) if rejected is None else rejected:
        return DIFFERENCE
    if not lost and math.isfinite(margin) and margin > 0 and all(
            -margin < lo and hi < margin for lo, hi in intervals):
        return EQUIVALENT
    return OPEN



def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control, any dependence).

    Adjusted ``p_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j))`` over the sorted p-values,
    returned in the input order. Valid even though two questions can share one param.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def holm_levels(p_values: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """The per-hypothesis level at which Holm's procedure decided each hypothesis.

    A hypothesis Holm rejects at step j was tested at ``alpha / (m - j + 1)``; every one it
    keeps is at the level where the procedure stopped, ``alpha / (m - r)`` with r
    rejections. An interval at ``1 - level`` then excludes the null value exactly when Holm
    rejects (for a test and interval that are duals), so the interval printed next to a
    verdict can never disagree with it.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    levels = np.empty(m)
    if m == 0:
        return levels
    order = np.argsort(p, kind="stable")
    rejected = 0
    for j, i in enumerate(order):
        if p[i] < alpha / (m - j):
            rejected += 1
        else:
            break
    for j, i in enumerate(order):
        levels[i] = alpha / (m - j) if j < rejected else alpha / (m - rejected)
    return levels


def weighted_holm(p_values: Sequence[float], weights: Sequence[float], alpha: float = 0.05,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Holm's weighted procedure (Holm 1979): adjusted p-values and decision levels.

    Hypothesis i gets the share ``w_i / W`` of what is left, ``W`` the weights of the
    hypotheses not yet rejected: step through ``p_i / w_i`` in increasing order, rejecting
    while ``p_i <= alpha w_i / W``. Family-wise error control at ``alpha`` under any
    dependence, as plain Holm (equal weights give exactly :func:`holm` and
    :func:`holm_levels`). The level returned is where each hypothesis was decided, so an
    interval at ``1 - level`` excludes the null value exactly when it is rejected.
    """
    p = np.asarray(p_values, dtype=float)
    w = np.asarray(weights, dtype=float)
    m = p.size
    adjusted, levels = np.empty(m), np.full(m, math.nan)
    if m == 0:
        return adjusted, levels
    order = np.argsort(p / w, kind="stable")
    remaining = float(w.sum())   # the weight of this hypothesis and those after it
    stop = math.nan              # the weight left where the procedure stopped rejecting
    running = 0.0
    for i in order:
        running = max(running, min(1.0, p[i] * remaining / w[i]))
        adjusted[i] = running
        if math.isnan(stop) and p[i] <= alpha * w[i] / remaining:
            levels[i] = alpha * w[i] / remaining
        elif math.isnan(stop):
            stop = remaining
        remaining -= w[i]
    for i in order:
        if math.isnan(levels[i]):
            levels[i] = alpha * w[i] / stop
    return adjusted, levels


def percentile_ci(samples: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """The percentile bootstrap interval that holds ``1 - alpha`` of ``samples``."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def median_bias_corrected_ci(samples: np.ndarray, estimate: float, alpha: float = 0.05,
                             ) -> tuple[float, float]:
    """Percentile interval moved by the bootstrap's median bias, ``median(samples) - estimate``.

    For statistics the resampling itself biases (a KDE fitted to repeated points), so the
    interval brackets the estimate instead of the resamples' own centre.
    """
    samples = np.asarray(samples, dtype=float)
    lo, hi = percentile_ci(samples, alpha)
    if not np.isfinite(lo):
        return lo, hi
    bias = float(np.median(samples[np.isfinite(samples)])) - estimate
    return lo - bias, hi - bias


def t_interval(estimate: float, se: float, df: float, level: float) -> tuple[float, float]:
    """``estimate -/+ t_{1 - level/2, df} * se``: the dual of the two-sided t test at ``level``."""
    half = float(sps.t.ppf(1 - level / 2, df)) * se
    return estimate - half, estimate + half


def t_p_value(estimate: float, se: float, df: float) -> float:
    """Two-sided p of ``estimate / se`` under a t distribution with ``df`` degrees."""
    if not se > 0:
        return 1.0 if estimate == 0 else 0.0
    return float(2 * sps.t.sf(abs(estimate / se), df))


def rank_agreement(a: dict[str, float], b: dict[str, float]) -> tuple[float, int]:
    """Kendall's tau between two importance rankings over their common params."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return float("nan"), len(common)
    tau = sps.kendalltau([a[k] for k in common], [b[k] for k in common]).statistic
    return float(tau), len(common)


# ---------------------------------------------------------------------------- paired seeds


def signed_rank_counts(n: int) -> np.ndarray:
    """How many of the 2**n sign patterns give each Wilcoxon signed-rank sum 0..n(n+1)/2."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for r in range(1, n + 1):  # add rank r with a + sign: shift the counts by r
        counts[r:] = counts[r:] + counts[:-r].copy()
    return counts


def min_pairs_for(level: float) -> int:
    """The fewest pairs whose exact two-sided signed-rank p can fall below ``level``.

    With n pairs that all agree, p = 2 / 2**n: 6 pairs for 0.05, 11 for 0.05 / 28 (all
    of a study's verify comparisons in one Holm family).
    """
    n = 1
    while 2.0 / 2.0 ** n >= level:
        n += 1
    return n


def signed_rank(diffs: Sequence[float] | np.ndarray, level: float,
                ) -> tuple[float, float, float, float]:
    """Hodges-Lehmann shift, its exact interval at ``1 - level`` and the matching p.

    The interval is read off the sorted Walsh averages ``(d_i + d_j) / 2`` (the inversion
    of the signed-rank test), and the p-value counts Walsh averages on the wrong side of
    0, zeros included, so that ``p <= level`` exactly when the interval excludes 0: one
    decision, whatever the ties. Exact for up to 300 pairs.
    """
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n == 0:
        return (float("nan"),) * 3 + (1.0,)  # type: ignore[return-value]
    if n > 300:
        raise ValueError(f"exact signed-rank statistics need <= 300 pairs, got {n}")
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    cdf = np.cumsum(signed_rank_counts(n)) / 2.0 ** n   # P(T <= t), t = 0..N
    # k: the number of sums t with P(T <= t) <= level / 2; the interval drops the k - 1
    # smallest and largest Walsh averages (none can be dropped: the whole real line).
    k = int(np.sum(cdf <= level / 2))
    n_walsh = walsh.size
    lo, hi = ((float(walsh[k - 1]), float(walsh[n_walsh - k])) if k >= 1
              else (-np.inf, np.inf))
    against = min(int(np.sum(walsh <= 0)), int(np.sum(walsh >= 0)))
    p = min(1.0, 2.0 * float(cdf[min(against, n_walsh)]))
    return float(np.median(walsh)), lo, hi, p
