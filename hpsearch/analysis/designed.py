"""Questions a study was designed for: their param was assigned, not sampled.

``hpsearch optimize`` with a question (a preset's, or ``--question``) assigns that
question's param by design (:mod:`hpsearch.optimize.designs`) and records it per trial:

- **balanced**: one choice per trial, by permuted blocks, independently of the other
  params. The regression answers it as any question, and the words may say "matters".
- **paired**: every config trained under each choice on one seed. The answer is the paired
  difference at the end of training (:mod:`hpsearch.analysis.arms`), a contrast set that
  joins the question's Holm family like any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from optuna.trial import FrozenTrial

from hpsearch import schema
from hpsearch.analysis import stats
from hpsearch.analysis.answers import Answer, ChoiceSummary, Effect
from hpsearch.analysis.arms import paired_effects, paired_trials
from hpsearch.analysis.contrasts import ContrastSet, Pair
from hpsearch.analysis.table import FINAL

BALANCED = ("Its param was assigned by design (balanced: permuted blocks, independently of "
            "the params the sampler chose), so the adjusted difference is an effect of this "
            "param at this budget; `hpsearch verify STORAGE` confirms it on the test split.")
PAIRED = ("Paired design: every config was trained under each choice on the same seed and "
          "pruned together, so the difference is free of the config and the seed; configs "
          "pruned before the end count through their history (the end imputed by iterated "
          "regressions on the paired difference and the arms' mean; bootstrap standard "
          "error). `hpsearch verify STORAGE` confirms it on the test split.")


def designs(trials: Sequence[FrozenTrial]) -> dict[str, str]:
    """{question: design} for the questions that every trial carrying a design record
    for it was designed for (balanced or paired)."""
    found: dict[str, set[str]] = {}
    for t in trials:
        d = schema.design(t)
        if d is not None and isinstance(d.get("question"), str):
            found.setdefault(d["question"], set()).add(str(d.get("design")))
    return {q: next(iter(ds)) for q, ds in found.items()
            if len(ds) == 1 and next(iter(ds)) in ("balanced", "paired")}


def balanced_share(trials: Sequence[FrozenTrial], question: str) -> bool:
    """Whether every trial of the study was assigned this question's choice by design."""
    return bool(trials) and all(
        (d := schema.design(t)) is not None and d.get("question") == question
        and d.get("design") == "balanced" for t in trials)


def paired_answer(a: Answer, trials: Sequence[FrozenTrial], min_pairs: int,
                  ) -> tuple[ContrastSet, list[tuple[int, np.ndarray, np.ndarray]]] | None:
    """Fill ``a`` from a paired design's trials; its contrast set and effect by epoch."""
    own = paired_trials(trials, a.question)
    fx = paired_effects(own) if len(own) >= min_pairs else None
    if fx is None:
        a.status = "too_few_trials"
        a.verdict = (f"too few paired configs to tell (need >= {min_pairs}; have "
                     f"{len(own)})")
        return None
    a.status, a.word, a.fidelity = "answered", "matters", "end of training"
    a.test = ("paired differences per config at the end of training, normal test with a "
              "bootstrap standard error per pair (Bonferroni within, Holm across)")
    a.choices = []
    for j, arm in enumerate(fx.arms):
        ys = fx.final_values[:, j] if fx.final_values.size else np.array([])
        a.choices.append(ChoiceSummary(
            arm, fx.n, float(np.median(ys)) / 100 if ys.size else math.nan,
            float(np.quantile(ys, 0.9)) / 100 if ys.size else math.nan,
            float(ys.mean()) / 100 if ys.size else math.nan, fx.n_complete))
    pairs = []
    for i, x in enumerate(fx.arms):
        for y in fx.arms[i + 1:]:
            est, se = fx.contrast(x, y)
            pairs.append(Pair(x, y, est, se, w=fx.weights(x, y)))
    best = max(fx.arms, key=lambda x: fx.theta[fx.arms.index(x)])
    a.best = best
    df = max(fx.n - 1, 1)
    for x in fx.arms:
        if x != best:
            d, se = fx.contrast(x, best)
            a.effects.append(Effect(x, best, d, se, se, fx.n, fx.n, stats.t_p_value(d, se, df)))
    cs = ContrastSet(pairs, float(df), extra={"n_fit": fx.n, "first_level": FINAL,
                                              "design": PAIRED})
    h = cs.headline
    a.statistic = h.est / h.se if h.se > 0 else math.nan
    series = [(e, theta, cov) for e, theta, cov, _ in fx.by_epoch]
    series.append((FINAL, fx.theta, fx.cov))
    return cs, series
