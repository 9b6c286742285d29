"""Paired comparisons of re-runs on the same seeds: Hodges-Lehmann shift, exact
signed-rank interval and p, and the seeds a comparison needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from hpsearch.analysis.stats import min_pairs_for, signed_rank

ALPHA = 0.05

MIN_EFFECT = 0.5     # test-accuracy points that "what it would take" plans for

POWER = 0.8

# ---------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class PairedStats:
    """Paired comparison of two arrays; differences are ``alternative - baseline``."""

    n: int
    mean_diff: float
    shift: float                 # Hodges-Lehmann estimate of the paired difference
    ci_low: float                # exact signed-rank interval at 1 - ci_level's alpha
    ci_high: float
    ci_level: float
    p_wilcoxon: float            # exact two-sided signed-rank p
    p_improvement: float         # share of pairs where the alternative is higher
    wins: int
    ties: int
    losses: int
    sd_diff: float


def paired_stats(baseline: Sequence[float] | np.ndarray, alternative: Sequence[float] | np.ndarray,
                 *, level: float = ALPHA) -> PairedStats:
    """Shift, its interval at ``1 - level``, exact signed-rank p and P(improvement).

    ``baseline[i]`` and ``alternative[i]`` are one pair (the same seed), in any unit.
    """
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(alternative, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal-length, non-empty 1-D arrays, got shapes {a.shape} "
                         f"and {b.shape}")
    # Rounded: accuracies of twins that agree on every example must difference to exactly 0.
    d = np.round(b - a, 10)
    shift, lo, hi, p = signed_rank(d, level)
    wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
    return PairedStats(n=d.size, mean_diff=float(d.mean()), shift=shift, ci_low=lo,
                       ci_high=hi, ci_level=1 - level, p_wilcoxon=p,
                       p_improvement=wins / d.size, wins=wins, ties=d.size - wins - losses,
                       losses=losses, sd_diff=float(d.std(ddof=1)) if d.size > 1 else 0.0)


def seeds_needed(sd_diff: float, level: float, effect: float = MIN_EFFECT) -> int:
    """Seeds for POWER to detect ``effect`` at ``level`` (normal approximation, x 3/pi for
    the signed-rank test's efficiency), and never fewer than the test's minimum."""
    z = sps.norm.ppf(1 - level / 2) + sps.norm.ppf(POWER)
    n = math.ceil((z * sd_diff / effect) ** 2 * math.pi / 3) if sd_diff > 0 else 0
    return max(n, min_pairs_for(level))
