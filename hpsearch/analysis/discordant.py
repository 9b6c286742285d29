"""Failures to learn in paired comparisons: a training at chance is a failure, not a value.

A paired comparison (two arms of one config in a paired-design study, two twins on one seed
in ``verify``) has four outcomes per pair: both learned, both never learned, or only one of
them never learned (a *discordant* pair). Averaging a never-learned training's accuracy
(chance, ~10 %) into the accuracy difference turns one failure in twenty pairs into a
4-point shift that a rank test then half-ignores: biased estimates, intervals that miss,
and "equivalent" said of twins that fail at different rates. So the two questions are
kept apart:

- the accuracy difference is taken over the pairs where both learned;
- the failures are compared on the discordant pairs by the exact McNemar test (conditional
  on the discordant count, "a failed, b learned" is Binomial(m, 1/2) under equal failure
  rates), with an interval for the difference in failure rates, and three states of their
  own: difference, equivalent (the interval inside ``±margin``) or open.

Pure numbers in, numbers out; nothing here knows Optuna or verify.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from hpsearch.analysis.trainability import RATE_MARGIN, TOLERANCE
from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN

# A training never learned when its best accuracy stays below chance plus TOLERANCE of the
# way from chance to perfect (14.5 % for ten classes), and two arms' failure rates within
# RATE_MARGIN pts are equivalent: the study answers' own rule and margin, one owner.
AT_CHANCE = TOLERANCE
FAILURE_MARGIN = RATE_MARGIN / 100


def learned_floor(chance: float) -> float:
    """The accuracy (fraction) a training must exceed to count as having learned."""
    if not 0 <= chance < 1:
        raise ValueError(f"chance must be a fraction in [0, 1), got {chance!r}")
    return chance + AT_CHANCE * (1 - chance)


def never_learned(best: Sequence[float] | np.ndarray, chance: float | None) -> np.ndarray:
    """Per training: whether its best accuracy (fraction) stayed at chance. With no chance
    known, or a value that is not finite, nothing is called a failure."""
    b = np.asarray(best, dtype=float)
    if chance is None:
        return np.zeros(b.shape, dtype=bool)
    return np.isfinite(b) & (b <= learned_floor(chance))


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p (twice the smaller binomial tail, capped at 1): the dual of
    the Clopper-Pearson interval of the discordant share."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = float(sps.binom.cdf(min(only_a, only_b), m, 0.5))
    return min(1.0, 2 * tail)


def _clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    lo = 0.0 if k == 0 else float(sps.beta.ppf(level / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - level / 2, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class Failures:
    """The failures of arms ``a`` and ``b`` over ``n`` pairs."""

    n: int
    failed_a: int          # pairs where a never learned
    failed_b: int
    only_a: int            # a never learned, b learned
    only_b: int            # b never learned, a learned

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b

    @property
    def p(self) -> float:
        return mcnemar_p(self.only_a, self.only_b)

    @property
    def difference(self) -> float:
        """a's failure rate minus b's (a fraction)."""
        return (self.only_a - self.only_b) / self.n if self.n else math.nan

    def interval(self, level: float) -> tuple[float, float]:
        """An interval for a's failure rate minus b's at ``1 - level``: Clopper-Pearson
        bounds of the two discordant shares at ``level / 2`` each (so both hold at once
        with probability ``>= 1 - level``), subtracted."""
        if self.n == 0:
            return -1.0, 1.0
        lo_a, hi_a = _clopper_pearson(self.only_a, self.n, level / 2)
        lo_b, hi_b = _clopper_pearson(self.only_b, self.n, level / 2)
        return lo_a - hi_b, hi_a - lo_b

    def settle(self, level: float, margin: float = FAILURE_MARGIN,
               rejected: bool | None = None) -> str:
        """difference (McNemar rejects at ``level``, or ``rejected`` as Holm decided),
        equivalent (the interval inside ±margin) or open."""
        if rejected if rejected is not None else self.p < level:
            return DIFFERENCE
        lo, hi = self.interval(level)
        return EQUIVALENT if -margin < lo and hi < margin else OPEN


def failures(failed_a: Sequence[bool] | np.ndarray,
             failed_b: Sequence[bool] | np.ndarray) -> Failures:
    """Count the outcomes of paired failure flags (one entry per pair)."""
    a = np.asarray(failed_a, dtype=bool)
    b = np.asarray(failed_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equal-length 1-D arrays, got {a.shape} and {b.shape}")
    return Failures(int(a.size), int(a.sum()), int(b.sum()), int((a & ~b).sum()),
                    int((b & ~a).sum()))
