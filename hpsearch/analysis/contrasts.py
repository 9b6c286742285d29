"""One question's contrasts and its three-state decision: difference, equivalent or open.

A question is a set of contrasts (pairs of choices, points of a numeric param's curve,
differences of effects between levels of another param), each an estimate with a standard
error on ``df`` degrees of freedom. The set has one p-value, which Holm's procedure
adjusts across the question's family, and Holm gives back the level the question was
decided at. At that level every contrast gets one interval, simultaneous over the set:

- ``bonferroni``: t intervals at ``level / number of contrasts`` (the choices of a param,
  the cells of an interaction);
- ``scheffe``: ``estimate -/+ sqrt(k F_(k, df)(1 - level)) se``, simultaneous over every
  contrast in the span of ``k`` coefficients (the points of a numeric param's curve).

The p-value is the smallest level at which some interval excludes 0, so the decision and
the intervals printed agree by construction. Then:

- **difference**: some interval excludes 0 (``p <= level``);
- **equivalent**: every interval lies inside ``(-margin, +margin)``. This is the interval-
  inside-margin form of TOST (Schuirmann 1987) at the same level as the difference test,
  read off the same intervals, so a question is never both; a level-``L`` two-sided
  interval inside the margin is TOST at ``L / 2``, slightly conservative;
- **open**: neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from hpsearch.analysis.stats import settle
from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN


@dataclass
class Pair:
    a: str
    b: str
    est: float           # a - b, in the answer's unit (raw direction, not "better minus worse")
    se: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    w: np.ndarray | None = None   # weights over the estimator's coefficients (for by-epoch)

    @property
    def lost(self) -> bool:
        """Too few trials reached the end of training to estimate it: no estimate at all."""
        return not math.isfinite(self.se)


@dataclass
class ContrastSet:
    pairs: list[Pair]
    df: float
    method: str = "bonferroni"    # or "scheffe"
    k: int = 1                    # scheffe: the dimension of the span
    level: float = math.nan       # the level it was decided at (after Holm)
    extra: dict[str, Any] = field(default_factory=dict)
    prefer: int | None = None     # the pair to show in words when it agrees with the decision
    # What the metric can do: no interval reaches beyond +-bound (100 pts for accuracies).
    bound: float = math.inf
    # A set estimated with fewer residual degrees of freedom than this is not tested: its
    # estimate and interval are shown, its state stays open (see :attr:`untestable`).
    min_df: float = 0.0

    @property
    def untestable(self) -> bool:
        """Too few degrees of freedom for its intervals to be trusted as tests.

        The study-side estimator (:mod:`hpsearch.analysis.effects`) fits the end of training
        on the trials that got there, with selected terms and a robust loss. With fewer than
        ``MIN_DF`` residual degrees of freedom its intervals were far too short on planted
        studies that look like real ones (24 TPE trials x 10 epochs, 8-16 of them at the
        end): 12 of 15 false differences over 250 null questions' studies came from fits
        with 5-9 residual df, where the residual scale itself is a guess from a handful of
        trials (``scripts/check_answers.py``).
        """
        return self.df < self.min_df

    @property
    def shown(self) -> Pair:
        """The pair the verdict names: ``prefer`` (a numeric param's best vs worst point)
        unless the decision is a difference its interval does not show, else the headline."""
        if self.prefer is None:
            return self.headline
        p = self.pairs[self.prefer]
        decided = any(x.ci_low > 0 or x.ci_high < 0 for x in self.pairs)
        if decided and not (p.ci_low > 0 or p.ci_high < 0):
            return self.headline
        return p

    def _t(self, p: Pair) -> float:
        return abs(p.est) / p.se if p.se > 0 else (math.inf if p.est else 0.0)

    @property
    def headline(self) -> Pair:
        """The contrast furthest from 0 in standard errors (the one that decides); a lost
        one (no estimate) only when every contrast is lost."""
        known = [p for p in self.pairs if not p.lost]
        return max(known, key=self._t) if known else self.pairs[0]

    @property
    def all_lost(self) -> bool:
        return all(p.lost for p in self.pairs)

    def p_value(self) -> float:
        """The smallest level at which some contrast's interval excludes 0."""
        t = self._t(self.headline)
        if self.method == "scheffe":
            return float(sps.f.sf(t * t / self.k, self.k, self.df))
        return float(min(1.0, len(self.pairs) * 2 * sps.t.sf(t, self.df)))

    def tested_p(self) -> float:
        """The p-value Holm's procedure sees: an untestable set stays in the family but never
        rejects (p = 1), so it lends no level to the others."""
        return 1.0 if self.untestable else self.p_value()

    def half_width(self, se: float, level: float) -> float:
        if self.method == "scheffe":
            return float(math.sqrt(self.k * sps.f.ppf(1 - level, self.k, self.df)) * se)
        return float(sps.t.ppf(1 - level / len(self.pairs) / 2, self.df) * se)

    def decide(self, level: float, margin: float) -> str:
        """Intervals at ``level`` for every contrast, and the question's state."""
        self.level = level
        for p in self.pairs:
            if p.lost or self.untestable:
                p.ci_low = p.ci_high = math.nan
                continue
            h = self.half_width(p.se, level)
            p.ci_low, p.ci_high = clip(p.est - h, p.est + h, self.bound)
        if self.untestable:
            return OPEN
        return settle([(p.ci_low, p.ci_high) for p in self.pairs], margin,
                      lost=any(p.lost for p in self.pairs))

    @property
    def pair_level(self) -> float:
        """The confidence level of one interval by itself (1 - this is ``ci_level``)."""
        if self.method == "scheffe":
            return self.level
        return self.level / len(self.pairs)


def clip(low: float, high: float, bound: float) -> tuple[float, float]:
    """An interval kept within what the metric can do, ``[-bound, +bound]`` (a difference of
    two accuracies lies within +-100 pts, whatever a model-based interval says)."""
    return max(low, -bound), min(high, bound)


def widest(pairs: list[Pair]) -> Pair:
    """The contrast whose interval reaches furthest from 0 (what keeps equivalence away)."""
    known = [p for p in pairs if not p.lost] or pairs
    return max(known, key=lambda p: max(abs(p.ci_low), abs(p.ci_high)))


def n_to_settle(n_now: int, est: float, se: float, level: float, margin: float,
                min_effect: float, power: float) -> tuple[int, str]:
    """Finished trials that would settle a contrast with ``power`` at this spread (the
    standard error shrinks as 1/sqrt(n)), planned for the outcome the estimate points to:
    equivalence when ``|est|`` lies within half the margin (a room of ``margin - |est|``),
    else a difference of ``max(|est|, min_effect)``. Returns (trials, that outcome)."""
    if not se > 0 or not math.isfinite(se):
        return 0, ""
    z = float(sps.norm.ppf(1 - level / 2) + sps.norm.ppf(power))
    if math.isfinite(margin) and abs(est) < margin / 2:
        return math.ceil(n_now * (se * z / (margin - abs(est))) ** 2), EQUIVALENT
    return math.ceil(n_now * (se * z / max(min_effect, abs(est))) ** 2), DIFFERENCE


def pointwise_band(est: np.ndarray, se: np.ndarray, df: float, level: float = 0.05,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise t band at ``1 - level`` (for drawing curves, not for deciding)."""
    h = sps.t.ppf(1 - level / 2, df) * se
    return est - h, est + h
