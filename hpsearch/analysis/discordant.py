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

"Equivalent" said of a comparison means both: its accuracies within their margin where both
learned, and its failure rates within ``FAILURE_MARGIN`` by their own interval
(:func:`gate`, the one rule for verify's rows and the paired-design answers). No failure
seen on n pairs is not such an interval: it still leaves failure rates up to about
``1 - (level/4)**(1/n)`` apart (27 pts on 14 pairs at 5 %), and bounding them within 5 pts
takes 80-odd pairs (:func:`pairs_to_bound`). Verify's few seeds rarely get there, so its
rows are mostly open rather than equivalent where a chance level is known: the price of an
"equivalent" that a reader may take as "the same in every respect".

Pure numbers in, numbers out; nothing here knows Optuna or verify.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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


def gate(accuracy: str, failures: str) -> str:
    """A comparison's state from its accuracy's and its failures' own states: equivalent only
    when both are (a twin or arm that fails to learn more often is no equivalent, however
    close its accuracy where it learned); otherwise the accuracy's state, an equivalence
    demoted to open. A difference in failures alone stays the failures' answer: callers that
    call the whole row a difference then (verify) do so by their test."""
    if accuracy == EQUIVALENT and failures != EQUIVALENT:
        return OPEN
    return accuracy


def pairs_to_bound(f: Failures, level_at: Callable[[int], float],
                   margin: float = FAILURE_MARGIN, limit: int = 10_000) -> int | None:
    """The fewest pairs, more than ``f.n``, at which the failures' interval would lie inside
    ``±margin`` if no more pair were discordant (the discordant pairs seen so far kept):
    the least that could settle them as equivalent. ``level_at(n)`` is the interval's level
    at ``n`` pairs (a sequential plan spends less than its whole level at the last look).
    None when even ``limit`` pairs would not (the discordant pairs seen are too many)."""
    def inside(n: int) -> bool:
        lo, hi = Failures(n, f.failed_a, f.failed_b, f.only_a, f.only_b).interval(level_at(n))
        return -margin < lo and hi < margin

    start = f.n + 1
    if not inside(limit):
        return None
    # the first n that fits, by bisection: for fixed counts the bound shrinks with n (a
    # plan's level can change a little from one n to the next, so the answer is "about")
    lo_n, hi_n = start, limit
    while lo_n < hi_n:
        mid = (lo_n + hi_n) // 2
        if inside(mid):
            hi_n = mid
        else:
            lo_n = mid + 1
    return lo_n


def failures(failed_a: Sequence[bool] | np.ndarray,
             failed_b: Sequence[bool] | np.ndarray) -> Failures:
    """Count the outcomes of paired failure flags (one entry per pair)."""
    a = np.asarray(failed_a, dtype=bool)
    b = np.asarray(failed_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equal-length 1-D arrays, got {a.shape} and {b.shape}")
    return Failures(int(a.size), int(a.sum()), int(b.sum()), int((a & ~b).sum()),
                    int((b & ~a).sum()))
