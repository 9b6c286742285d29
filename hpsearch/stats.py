"""Small statistics for the analysis: rank tests, bootstrap CIs, Holm's correction.

Pure numpy/scipy on arrays of objective values; nothing here knows Optuna or the search
space, so every function can be checked against numbers worked out by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

# Bootstrap draws are made in chunks of at most this many values (8 bytes each), so a
# group of 10k trials does not allocate n_bootstrap * 10k floats at once.
_CHUNK_VALUES = 2_000_000


def bootstrap_medians(x: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``n_bootstrap`` resamples of ``x`` (with replacement), vectorized."""
    x = np.asarray(x, dtype=float)
    rows = max(1, _CHUNK_VALUES // max(1, x.size))
    out = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, rows):
        stop = min(n_bootstrap, start + rows)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        out[start:stop] = np.median(x[idx], axis=1)
    return out


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


def median_diff_ci(a: np.ndarray, b: np.ndarray, *, n_bootstrap: int = 2000,
                   alpha: float = 0.05, rng: np.random.Generator | None = None,
                   ) -> tuple[float, float, float]:
    """``median(a) - median(b)`` and its percentile bootstrap CI.

    The two groups are resampled independently: trials of a study are not paired.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    diff = float(np.median(a) - np.median(b))
    boot = bootstrap_medians(a, n_bootstrap, rng) - bootstrap_medians(b, n_bootstrap, rng)
    return (diff, *percentile_ci(boot, alpha))


def compare_groups(groups: Sequence[np.ndarray]) -> tuple[str, float, float]:
    """Rank test of "all groups come from one distribution": ``(test, statistic, p)``.

    Mann-Whitney U (two-sided) for two groups, Kruskal-Wallis for more. Rank tests because
    accuracies are bounded and skewed (a few diverged configs sit near chance level).
    """
    if len(groups) < 2:
        raise ValueError(f"need at least 2 groups to compare, got {len(groups)}")
    pooled = np.concatenate([np.asarray(g, dtype=float) for g in groups])
    test = "mann-whitney" if len(groups) == 2 else "kruskal-wallis"
    if np.ptp(pooled) == 0:
        # Every value identical: no evidence of any difference (scipy raises or says nan).
        return test, 0.0, 1.0
    if len(groups) == 2:
        res = sps.mannwhitneyu(groups[0], groups[1], alternative="two-sided")
    else:
        res = sps.kruskal(*groups)
    p = float(res.pvalue)
    return test, float(res.statistic), p if np.isfinite(p) else 1.0


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


def rank_agreement(a: dict[str, float], b: dict[str, float]) -> tuple[float, int]:
    """Kendall's tau between two importance rankings over their common params."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return float("nan"), len(common)
    tau = sps.kendalltau([a[k] for k in common], [b[k] for k in common]).statistic
    return float(tau), len(common)
