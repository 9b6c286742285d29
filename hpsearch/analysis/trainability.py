"""Trainability: a trial that never learned is a failure to train, not a low accuracy.

Real studies are bimodal. Beside trials near 98% sit trials that never learned (a
learning rate too high for sigmoid, a penalty that wipes the weights): their accuracy is
chance at every epoch. Averaged into an accuracy difference they dominate it, and in the
small cells where they gather a pooled fit gives them tiny standard errors (one never-learned
trial in a third choice gave "l2 > l1_l2 by 43.28 pts, p=3e-6" on a null study). So each
question answers two things apart:

- does the choice change how often training fails? The failure rate per choice, every pair
  compared by Fisher's exact test (Bonferroni within a question, Holm across questions: the
  "trainability" family) with a Newcombe score interval for the difference of rates, and
  its own verdict: a difference, equivalence within +-``RATE_MARGIN``, or open;
- does it change accuracy among the trials that learned? The accuracy analysis
  (:mod:`hpsearch.analysis.questions`) runs without the never-learned trials.

*Never learned* means that the trial's best value at any epoch stayed within
``TOLERANCE`` of the way from chance to perfect (chance 10%: at most 14.5%). Chance is
``1 / classes``: the dataset hpsearch recorded (its provenance, or a user attr ``dataset``
naming one it knows), or ``--chance`` for any other study; without it nothing is detected,
and a note says so. The rates are raw, not adjusted for the other params: under an adaptive
sampler they read "associated" like the accuracy answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from hpsearch import schema
from hpsearch.analysis import stats
from hpsearch.analysis.stats import excludes_zero, settle
from hpsearch.analysis.table import TrialTable
from hpsearch.schema import DIFFERENCE, EQUIVALENT

# Classes of the datasets hpsearch trains on (hpsearch.training.datasets.CLASSES, which
# imports torch: tests/analysis/test_trainability.py checks that the two agree).
KNOWN_CLASSES: dict[str, int] = {"mnist": 10, "fashion-mnist": 10, "kmnist": 10, "digits": 10,
                                 "synthetic": 10, "cifar10": 10}

# A trial never learned when its best value stayed below chance + this share of the way to
# a perfect score (10 classes: 14.5%). Real never-learned trials sit within a point of
# chance; a slow starter is above it by its first epoch.
TOLERANCE = 0.05

# Failure rates within this many percentage points are "equivalent" (a one-in-twenty change
# in how often training fails is what a reader would still want to know).
RATE_MARGIN = 5.0

TRAINABILITY_TEST = ("failure rates per choice: Fisher's exact test per pair (Bonferroni "
                     "within, Holm across questions), Newcombe score intervals")


def study_chance(user_attrs: Mapping[str, Any], chance: float | None = None,
                 ) -> tuple[float | None, str]:
    """Chance level of a study's objective, and where it comes from (a note when unknown).

    ``chance`` (``report --chance``) wins; else the chance level optimize recorded with the
    study (``schema.CHANCE``: what a model that never learned scores on its validation
    split), its ``n_classes``, or a dataset hpsearch knows named in its provenance or user
    attr ``dataset``.
    """
    if chance is not None:
        if not (isinstance(chance, int | float) and 0 <= chance < 1):
            from hpsearch.errors import ConfigError

            raise ConfigError(f"--chance must be an accuracy in [0, 1) (1 / classes, e.g. 0.1 "
                              f"for 10 classes), got {chance!r}")
        return float(chance), f"chance {chance:g} (--chance)"
    recorded = user_attrs.get(schema.CHANCE)
    if isinstance(recorded, int | float) and 0 < recorded < 1:
        return float(recorded), f"chance {recorded:.3g} (recorded with the study)"
    prov = user_attrs.get(schema.PROVENANCE)
    prov = prov if isinstance(prov, dict) else {}
    dataset = prov.get("dataset", user_attrs.get(schema.DATASET))
    n = prov.get("n_classes", user_attrs.get(schema.N_CLASSES))
    if not isinstance(n, int) or n < 2:
        n = KNOWN_CLASSES.get(str(dataset)) if dataset is not None else None
    if n is None:
        return None, ("chance level unknown (no dataset hpsearch knows is recorded): trials "
                      "that never learned are not told apart from low accuracies; pass "
                      "`report --chance VALUE` (1 / classes) to separate them")
    return 1.0 / n, f"chance {1 / n:.3g} ({dataset}: {n} classes)"


def never_learned(table: TrialTable, chance: float) -> np.ndarray:
    """Per trial of ``table``: its best value at any epoch stayed at chance (within
    ``TOLERANCE``). Only for accuracies (a maximized objective in [0, 1])."""
    if table.unit != "pts":
        return np.zeros(len(table), dtype=bool)
    limit = (chance + TOLERANCE * (1 - chance)) * table.scale
    out = np.zeros(len(table), dtype=bool)
    for i, (curve, fin) in enumerate(zip(table.curves, table.final, strict=True)):
        values = list(curve.values()) + ([float(fin)] if math.isfinite(fin) else [])
        out[i] = bool(values) and max(values) <= limit
    return out


@dataclass
class _Question:
    answer: Any                      # the Answer it belongs to
    groups: dict[str, np.ndarray]    # choice -> trials (bool over the table)


def newcombe(k1: int, n1: int, k2: int, n2: int, level: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for ``k1/n1 - k2/n2`` at
    ``1 - level``: Wilson intervals of each rate, combined; good coverage at small n and
    rates near 0, where the Wald interval collapses."""
    z = float(sps.norm.ppf(1 - level / 2))

    def wilson(k: int, n: int) -> tuple[float, float]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lo, hi


def answer_trainability(questions: Sequence[tuple[Any, dict[str, np.ndarray]]],
                        failed: np.ndarray, *, alpha: float = 0.05,
                        word: str = "associated") -> None:
    """Fill each answer's ``trainability``: ``questions`` pairs an answer with its choices'
    trials (bool masks over the same trials as ``failed``). One Holm family."""
    qs = [_Question(a, {c: m for c, m in groups.items() if m.sum() > 0})
          for a, groups in questions]
    qs = [q for q in qs if len(q.groups) >= 2]
    ps = []
    for q in qs:
        names = list(q.groups)
        pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
        p_min = min(_fisher(q.groups[x], q.groups[y], failed) for x, y in pairs)
        ps.append(min(1.0, len(pairs) * p_min))
    adjusted, levels = np.asarray(stats.holm(ps)), stats.holm_levels(ps, alpha)
    for q, p, p_adj, level in zip(qs, ps, adjusted, levels, strict=True):
        q.answer.trainability = _decide(q, failed, p, float(p_adj), float(level), alpha,
                                        word)


def _fisher(x: np.ndarray, y: np.ndarray, failed: np.ndarray) -> float:
    kx, ky = int(failed[x].sum()), int(failed[y].sum())
    table = [[kx, int(x.sum()) - kx], [ky, int(y.sum()) - ky]]
    return float(sps.fisher_exact(table).pvalue)


def _decide(q: _Question, failed: np.ndarray, p: float, p_holm: float, level: float,
            alpha: float, word: str) -> dict[str, Any]:
    names = list(q.groups)
    counts = {c: (int(failed[m].sum()), int(m.sum())) for c, m in q.groups.items()}
    pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
    per = level / len(pairs)
    rows: list[dict[str, Any]] = []
    for x, y in pairs:
        (kx, nx), (ky, ny) = counts[x], counts[y]
        lo, hi = newcombe(kx, nx, ky, ny, per)
        rows.append({"a": x, "b": y, "diff": 100 * (kx / nx - ky / ny), "ci_low": 100 * lo,
                     "ci_high": 100 * hi, "p_value": _fisher(q.groups[x], q.groups[y], failed)})
    # a difference needs Fisher's test (Holm) and the interval printed to agree
    intervals = [(r["ci_low"], r["ci_high"]) for r in rows]
    settled = settle(intervals, RATE_MARGIN,
                     rejected=p_holm <= alpha and excludes_zero(intervals))
    total = sum(k for k, _ in counts.values())
    rates = ", ".join(f"{c} {k}/{n}" for c, (k, n) in counts.items())
    if settled == DIFFERENCE:
        h = max((r for r in rows if r["ci_low"] > 0 or r["ci_high"] < 0),
                key=lambda r: abs(r["diff"]))
        worse, better = (h["a"], h["b"]) if h["diff"] > 0 else (h["b"], h["a"])
        lo, hi = sorted((abs(h["ci_low"]), abs(h["ci_high"])))
        lo = lo if h["ci_low"] * h["ci_high"] > 0 else 0.0
        verdict = (f"{word}: training fails more often with {worse} than with {better}, by "
                   f"{abs(h['diff']):.0f} pts of rate [{lo:.0f}, {hi:.0f}] (never learned: "
                   f"{rates}; Holm p={p_holm:.2g})")
    elif settled == EQUIVALENT:
        verdict = (f"equivalent: failure rates differ by less than {RATE_MARGIN:g} pts "
                   f"between choices (never learned: {rates})")
    elif total == 0:
        verdict = f"open: no trial failed to train (never learned: {rates})"
    else:
        verdict = (f"open: no difference in how often training fails detected, nor "
                   f"equivalence within +-{RATE_MARGIN:g} pts (never learned: {rates}; "
                   f"Holm p={p_holm:.2g})")
    return {"settled": settled, "verdict": verdict, "p_value": p, "p_holm": p_holm,
            "ci_level": 1 - per, "margin": RATE_MARGIN, "test": TRAINABILITY_TEST,
            "choices": {c: {"never_learned": k, "n": n} for c, (k, n) in counts.items()},
            "pairs": rows}
