"""Sequential looks for paired comparisons: add seeds in looks, stop each comparison as soon
as it is settled (a difference or an equivalence), keep the Holm family valid.

The design, and why this one
----------------------------
Seeds are added in a few planned looks (by default at 1/2, 3/4 and all of the maximum seed
count ``n_max``). Each comparison spends its share of alpha over the looks with a
power-family spending function ``alpha * t**RHO`` (Kim & DeMets), ``t = n_k / n_max``: look
k may spend ``w_k = t_k**RHO - t_(k-1)**RHO`` of the comparison's level. Like O'Brien-Fleming
it keeps most of alpha for the last look (with ``RHO = 2``: 25%, 31%, 44%), so a comparison
that runs to the end loses little power against the fixed plan; unlike the Lan-DeMets
O'Brien-Fleming function (``RHO`` about 3, 0.6% of alpha at half the seeds) it leaves the
first look enough alpha to stop: the exact signed-rank test of n seeds can never go below
p = 2 / 2**n, so with the ten-odd seeds verify can afford, O'Brien-Fleming's first looks
could never stop anything.

The looks are combined by the union bound (Bonferroni over looks) instead of the joint
normal boundaries of classical group-sequential designs: those need a normal statistic with
independent increments, and verify's statistic is the exact signed-rank test on a handful of
seeds, where no normal approximation holds. The union bound is exact in what it promises
(any dependence between looks, any stopping rule) and costs little, because the looks'
statistics are strongly correlated and most alpha sits at the last look. Concretely:

- a comparison's *sequential p-value* is ``min_k p_k / w_k`` over the looks it reached (p_k:
  the exact signed-rank p of its first n_k seeds). Under its null, ``P(p_seq <= a) <=
  sum_k a * w_k = a`` for every ``a``, whenever it stopped (stopping only drops looks);
- Holm's step-down runs on these p-values: a valid family-wise error for any dependence;
- the interval at the comparison's Holm level L is the intersection, over the looks it
  reached, of the signed-rank intervals at level ``w_k * L``: all of them cover the true
  shift with probability >= 1 - L, so the intersection does too, after any stopping. It
  excludes 0 exactly when ``p_seq <= L`` (each look's interval and p are duals), so the
  printed interval never disagrees with the decision.

Three states per comparison (:func:`hpsearch.analysis.stats.settle`): **difference** (Holm
rejects: the interval excludes 0), **equivalent** (not a difference, and the interval lies
inside ``±margin``: an interval-inclusion (TOST-type) decision at the same Holm level),
**open** (neither). A comparison stops at the first look where it is settled; Holm levels only
grow as the family's p-values fall, and intervals at a larger level are nested inside the
smaller one's, so a settled comparison stays settled. The others go on to the next look.

A twin that never learned on a seed (test accuracy at chance) is a failure, not an accuracy
(:mod:`hpsearch.analysis.discordant`): each look's signed-rank test and interval use the
seeds where both learned, and the seeds where one failed and the other learned get the
exact McNemar test, its p spent over the looks the same way, as one more hypothesis of the
Holm family (for every comparison that has such a seed). A comparison is a difference when
either test rejects, and equivalent only when its accuracy interval lies inside ±margin
*and* its failures are settled equivalent by their own interval (the intersection over the
looks of the failure-rate intervals at ``w_k * level``, inside ±FAILURE_MARGIN:
:func:`hpsearch.analysis.discordant.gate`). Asking only that no seed failed for one twin
alone was too lax: one failure in twenty seeds (4 points of mean accuracy) goes unseen on
14 seeds half the time, and such twins were called "equivalent within 0.5 pts" in half the
families (docs/paired.md, written by scripts/check_paired.py). Bounding failure rates
within 5 pts takes 80-odd seeds, so where failures can be told (a chance level is known)
verify's rows are rarely equivalent: the row stays open and says how many seeds would
settle its failures. Rows with no failure information (plain differences: a user's
objective with no chance level) are decided by their accuracy alone.

Everything here is numbers in, numbers out (:func:`run_looks` takes a callback that returns
the paired differences of the seeds asked for), so the error rates are checked on planted
differences with no training at all (tests/verify/test_sequential.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hpsearch.analysis.discordant import (
    FAILURE_MARGIN,
    Failures,
    failures,
    gate,
    pairs_to_bound,
)
from hpsearch.analysis.stats import holm, holm_levels, settle, signed_rank
from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN

RHO = 2.0                             # spending alpha * t**RHO; see the module docstring
LOOK_FRACTIONS = (0.5, 0.75, 1.0)     # planned looks, as shares of the maximum seed count


@dataclass(frozen=True)
class LookPlan:
    """The planned looks (seed counts, increasing) and the share of alpha each may spend."""

    looks: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def n_max(self) -> int:
        return self.looks[-1]


def _weights(looks: Sequence[int], rho: float) -> tuple[float, ...]:
    t = [0.0] + [n / looks[-1] for n in looks]
    return tuple(t[k + 1] ** rho - t[k] ** rho for k in range(len(looks)))


def plan_looks(n_max: int, level: float, *, fractions: Sequence[float] = LOOK_FRACTIONS,
               rho: float = RHO) -> LookPlan:
    """Looks at ``ceil(f * n_max)`` seeds, minus early looks that could never stop.

    ``level`` is the smallest level a comparison may be tested at (alpha / family size,
    Holm's first step). A look whose alpha share is below what its seed count can reach
    (2 / 2**n: every seed agreeing) would spend alpha for nothing; it is dropped and the
    weights recomputed, down to the one fixed look at ``n_max``.
    """
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    looks = sorted({min(n_max, max(1, math.ceil(f * n_max))) for f in fractions} | {n_max})
    while True:
        weights = _weights(looks, rho)
        if len(looks) == 1 or 2.0 ** (1 - looks[0]) < weights[0] * level:
            return LookPlan(tuple(looks), weights)
        looks = looks[1:]


@dataclass(frozen=True)
class Decision:
    """One comparison after the looks it reached; units are those of the differences."""

    n: int                  # seeds used (the last look it reached)
    looks: int              # how many looks it reached
    shift: float            # Hodges-Lehmann estimate from the seeds where both learned
    p_look: float           # exact signed-rank p of the last look alone
    p_sequential: float     # min over looks of p_k / w_k (capped at 1)
    p_holm: float
    level: float            # the Holm level the row was decided at
    ci_low: float           # running intersection of the looks' intervals at w_k * level
    ci_high: float
    settled: str            # "difference" | "equivalent" | "open"
    margin: float
    # Failures to learn (hpsearch.analysis.discordant): seeds on which the baseline, the
    # alternative never learned; of them, those where the other one learned; the seeds
    # both learned (the accuracy difference's); the failures' own Holm p and state.
    failed_base: int = 0
    failed_alt: int = 0
    only_base: int = 0
    only_alt: int = 0
    n_learned: int = -1     # -1: n (no failure information)
    p_failures: float = 1.0
    # The failures' state: "difference" (McNemar, Holm), "equivalent" (their interval
    # inside ±FAILURE_MARGIN) or "open"; "none": no failure information (plain differences)
    failures: str = "none"
    failures_low: float = -1.0    # alternative's failure rate - baseline's (fractions), the
    failures_high: float = 1.0    # intersection of the looks' intervals at w_k * level
    failures_seeds: int = 0       # about how many seeds would settle the failures as
                                  # equivalent (none more failing for one twin alone);
                                  # 0: settled, or not known; -1: no seed count would
    accuracy: str = "open"        # the accuracy's own state (before the failures' gate)


def sequential_p(diffs: np.ndarray, plan: LookPlan, reached: int,
                 learned: np.ndarray | None = None) -> tuple[float, float]:
    """(sequential p, last look's p) of the first ``reached`` looks, each look over its
    seeds where both learned (``learned``; None: every seed)."""
    p_seq, p_k = 1.0, 1.0
    for n, w in zip(plan.looks[:reached], plan.weights[:reached], strict=True):
        p_k = signed_rank(_learned(diffs, learned, n), 1.0)[3]
        p_seq = min(p_seq, p_k / w if w > 0 else 1.0)
    return min(1.0, p_seq), p_k


def sequential_interval(diffs: np.ndarray, plan: LookPlan, reached: int,
                        level: float, learned: np.ndarray | None = None,
                        ) -> tuple[float, float]:
    """The intersection of the looks' signed-rank intervals at ``w_k * level``."""
    lo, hi = -math.inf, math.inf
    for n, w in zip(plan.looks[:reached], plan.weights[:reached], strict=True):
        _, lo_k, hi_k, _ = signed_rank(_learned(diffs, learned, n), w * level)
        lo, hi = max(lo, lo_k), min(hi, hi_k)
    return lo, hi


def sequential_failures(failed_base: np.ndarray, failed_alt: np.ndarray, plan: LookPlan,
                        reached: int) -> tuple[float, Failures]:
    """(sequential p, counts at the last look) of the exact McNemar test on the seeds where
    one twin never learned and the other learned; spent over the looks as the accuracy's."""
    p_seq = 1.0
    f = failures(failed_alt[:0], failed_base[:0])
    for n, w in zip(plan.looks[:reached], plan.weights[:reached], strict=True):
        f = failures(failed_alt[:n], failed_base[:n])
        p_seq = min(p_seq, f.p / w if w > 0 else 1.0)
    return min(1.0, p_seq), f


def sequential_failure_interval(failed_base: np.ndarray, failed_alt: np.ndarray,
                                plan: LookPlan, reached: int, level: float,
                                ) -> tuple[float, float]:
    """The intersection of the looks' failure-rate intervals (alternative - baseline) at
    ``w_k * level``: valid after any stopping, like the accuracy's."""
    lo, hi = -1.0, 1.0
    for n, w in zip(plan.looks[:reached], plan.weights[:reached], strict=True):
        lo_k, hi_k = failures(failed_alt[:n], failed_base[:n]).interval(w * level)
        lo, hi = max(lo, lo_k), min(hi, hi_k)
    return lo, hi


def failure_seeds(f: Failures, level: float, *, rho: float = RHO) -> int:
    """About how many seeds a re-run (``verify --seeds N``, planned looks and all) would need
    for the failures' interval to lie inside ±FAILURE_MARGIN at the row's ``level``, if no
    more seed failed for one twin alone; always more than the seeds used. -1: no seed count
    would (the seeds where only one learned are too many already)."""
    def last_look(n: int) -> float:   # the narrowest of a plan's looks is its last
        return plan_looks(n, level, rho=rho).weights[-1] * level
    need = pairs_to_bound(f, last_look, FAILURE_MARGIN)
    return -1 if need is None else need


def _learned(diffs: np.ndarray, learned: np.ndarray | None, n: int) -> np.ndarray:
    return diffs[:n] if learned is None else diffs[:n][learned[:n]]


def split_row(row: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(differences, baseline never learned, alternative never learned) of one row's seeds.

    A 1-D array is differences with no failure information (no seed failed); an (n, 3)
    array holds per seed the difference and the two flags (what verify's fetch returns).
    """
    a = np.asarray(row, dtype=float)
    if a.ndim == 1:
        none = np.zeros(a.size, dtype=bool)
        return a, none, none
    return a[:, 0], a[:, 1] > 0, a[:, 2] > 0


def decide(diffs: Sequence[np.ndarray], reached: Sequence[int], plan: LookPlan, *,
           alpha: float, margin: float) -> list[Decision]:
    """Every row of one Holm family, each after the looks it reached.

    ``diffs[i]`` holds at least ``plan.looks[reached[i] - 1]`` seeds of row ``i``, in the
    seeds' order: paired differences (alternative - baseline), or (difference, baseline
    never learned, alternative never learned) per seed (:func:`split_row`). A seed on which
    a twin never learned leaves the accuracy difference; the seeds where exactly one twin
    never learned are the failures' own test (exact McNemar, :mod:`.discordant`), which
    joins the Holm family for every row that has such a seed. A row is a difference when
    either test rejects, and equivalent only when its accuracy interval lies inside
    ``±margin`` and, for rows with failure flags, its failures' interval at the row's level
    lies inside ``±FAILURE_MARGIN`` (:func:`hpsearch.analysis.discordant.gate`).
    """
    if margin <= 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a number > 0, got {margin!r}")
    parts = [split_row(d) for d in diffs]
    known = [np.ndim(d) == 2 for d in diffs]   # failure flags given (else differences only)
    learned = [~(fb | fa) for _, fb, fa in parts]
    seq = [sequential_p(d, plan, k, ok) for (d, _, _), ok, k in zip(parts, learned, reached,
                                                                   strict=True)]
    fails = [sequential_failures(fb, fa, plan, k) for (_, fb, fa), k in zip(parts, reached,
                                                                           strict=True)]
    tested = [i for i, (_, f) in enumerate(fails) if f.discordant]
    p = [s[0] for s in seq] + [fails[i][0] for i in tested]
    p_holm, levels = holm(p), holm_levels(p, alpha)
    f_holm = dict(zip(tested, p_holm[len(diffs):], strict=True))
    out = []
    for i, ((d, fb, fa), ok, k, (p_seq, p_look)) in enumerate(zip(parts, learned, reached, seq,
                                                                  strict=True)):
        n = plan.looks[k - 1]
        level = float(levels[i])
        lo, hi = sequential_interval(d, plan, k, level, ok)
        f = fails[i][1]
        f_rejected = f_holm.get(i, 1.0) < alpha
        accuracy = settle([(lo, hi)], margin, rejected=bool(p_holm[i] < alpha))
        f_lo, f_hi = sequential_failure_interval(fb, fa, plan, k, level)
        if not known[i]:
            f_state, need = "none", 0
        else:
            f_state = (DIFFERENCE if f_rejected else
                       EQUIVALENT if -FAILURE_MARGIN < f_lo and f_hi < FAILURE_MARGIN
                       else OPEN)
            need = failure_seeds(f, level) if f_state == OPEN else 0
        state = (DIFFERENCE if accuracy == DIFFERENCE or f_state == DIFFERENCE else
                 accuracy if f_state == "none" else gate(accuracy, f_state))
        out.append(Decision(
            n=n, looks=k, shift=signed_rank(_learned(d, ok, n), 1.0)[0], p_look=p_look,
            p_sequential=p_seq, p_holm=float(p_holm[i]), level=level, ci_low=lo, ci_high=hi,
            settled=state, margin=margin, failed_base=int(fb[:n].sum()),
            failed_alt=int(fa[:n].sum()), only_base=f.only_b, only_alt=f.only_a,
            n_learned=int(ok[:n].sum()),
            p_failures=float(f_holm.get(i, 1.0)), failures=f_state, failures_low=f_lo,
            failures_high=f_hi, failures_seeds=need, accuracy=accuracy))
    return out


# fetch(rows, n): the first n seeds of each row in ``rows``, as :func:`decide` takes them
Fetch = Callable[[list[int], int], list[np.ndarray]]


def run_looks(n_rows: int, plan: LookPlan, fetch: Fetch, *, alpha: float,
              margin: float) -> list[Decision]:
    """The sequential procedure: at each look, fetch the rows still open, decide the whole
    family, stop the rows that are settled; the rest go on, up to the last look."""
    diffs: list[np.ndarray] = [np.empty(0)] * n_rows
    reached = [0] * n_rows
    active = list(range(n_rows))
    decisions: list[Decision] = []
    for k, n in enumerate(plan.looks, start=1):
        if not active:
            break
        for i, d in zip(active, fetch(active, n), strict=True):
            diffs[i], reached[i] = np.asarray(d, dtype=float), k
        decisions = decide(diffs, reached, plan, alpha=alpha, margin=margin)
        active = [i for i in active if decisions[i].settled == OPEN]
    return decisions
