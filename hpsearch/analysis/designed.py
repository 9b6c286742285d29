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
from itertools import combinations
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from hpsearch import schema
from hpsearch.analysis import stats
from hpsearch.analysis.answers import Answer, ChoiceSummary, Effect
from hpsearch.analysis.arms import PairedEffects, paired_effects, paired_trials
from hpsearch.analysis.contrasts import ContrastSet, Pair
from hpsearch.analysis.discordant import FAILURE_MARGIN, gate
from hpsearch.analysis.table import FINAL
from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN

BALANCED = ("Its param was assigned by design (balanced: permuted blocks, independently of "
            "the params the sampler chose), so the adjusted difference is an effect of this "
            "param at this budget; `hpsearch verify STORAGE` confirms it on the test split.")
PAIRED = ("Paired design: every config was trained under each choice on the same seed and "
          "pruned together, so the difference is free of the config and the seed; configs "
          "pruned before the end count through their history (the end imputed by iterated "
          "regressions on the paired difference and the arms' mean; bootstrap standard "
          "error). `hpsearch verify STORAGE` confirms it on the test split.")

PAIRED_FAILURES = ("configs where an arm never learned, per pair of arms: exact McNemar on the "
                   "configs where only one of them learned (Bonferroni within), Clopper-Pearson "
                   "bounds of the two one-sided shares")


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
                  chance: float | None = None, alpha: float = 0.05, *, sign: float = 1.0,
                  scale: float = 100.0,
                  ) -> tuple[ContrastSet, list[tuple[int, np.ndarray, np.ndarray]]] | None:
    """Fill ``a`` from a paired design's trials; its contrast set and effect by epoch.

    ``chance``: the accuracy of a model that never learned (None: unknown, no failure is
    recognized). A config where an arm never learned is that arm's failure: the accuracy
    contrasts are over the configs where every arm learned, and ``a.trainability`` compares
    the failures (:func:`paired_trainability`). ``sign`` and ``scale``: the study table's
    (a minimized objective, values that are not accuracies).
    """
    own = paired_trials(trials, a.question)
    fx = (paired_effects(own, chance=chance, sign=sign, scale=scale)
          if len(own) >= min_pairs else None)
    if fx is not None and fx.n < min_pairs:
        a.trainability = paired_trainability(fx, alpha)
        fx = None
    if fx is None:
        a.status = "too_few_trials"
        a.verdict = (f"too few paired configs to tell (need >= {min_pairs} where every arm "
                     f"learned; have {len(own)} configs)")
        if a.trainability:
            a.verdict += f"; {a.trainability['verdict']}"
        return None
    a.trainability = paired_trainability(fx, alpha)
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


def paired_trainability(fx: PairedEffects, alpha: float = 0.05) -> dict[str, Any]:
    """Does the choice change how often training fails? The keys of
    :mod:`hpsearch.analysis.trainability`'s answers, from paired configs: per arm, the
    configs where it never learned; per pair of arms, the exact McNemar test on the configs
    where one of the two never learned and the other learned (Bonferroni within the
    question) with an interval for the difference of the failure rates; a difference when
    a pair's test rejects, equivalent when every pair's interval lies inside
    ``±FAILURE_MARGIN``, else open. The arms were assigned by design, so "matters"."""
    n = fx.n_configs
    counts = ({arm: int(fx.failed[:, j].sum()) for j, arm in enumerate(fx.arms)}
              if fx.failed.size else dict.fromkeys(fx.arms, 0))
    pairs = list(combinations(fx.arms, 2))
    per = alpha / len(pairs)
    rows: list[dict[str, Any]] = []
    for x, y in pairs:
        f = fx.failures_of(x, y)
        lo, hi = f.interval(per)
        rows.append({"a": x, "b": y, "diff": 100 * f.difference, "ci_low": 100 * lo,
                     "ci_high": 100 * hi, "p_value": f.p, "only_a": f.only_a,
                     "only_b": f.only_b})
    p = min(1.0, len(pairs) * min(r["p_value"] for r in rows))
    margin = 100 * FAILURE_MARGIN
    if p < alpha:
        settled = DIFFERENCE
    elif all(-margin < r["ci_low"] and r["ci_high"] < margin for r in rows):
        settled = EQUIVALENT
    else:
        settled = OPEN
    rates = ", ".join(f"{arm} {counts[arm]}/{n}" for arm in fx.arms)
    h = min(rows, key=lambda r: r["p_value"])
    test = (f"exact McNemar on the {h['only_a'] + h['only_b']} config(s) where only one of "
            f"{h['a']} and {h['b']} learned, p={p:.2g}")
    if settled == DIFFERENCE:
        worse, better = (h["a"], h["b"]) if h["diff"] > 0 else (h["b"], h["a"])
        verdict = (f"matters: training fails more often with {worse} than with {better} "
                   f"(never learned on the same configs: {rates}; {test})")
    elif settled == EQUIVALENT:
        verdict = (f"equivalent: failure rates differ by less than {margin:g} pts between "
                   f"choices (never learned on the same configs: {rates})")
    else:
        verdict = (f"open: no difference in how often training fails detected, nor "
                   f"equivalence within +-{margin:g} pts (never learned on the same "
                   f"configs: {rates}; {test}; {h['a']} - {h['b']} "
                   f"[{h['ci_low']:+.0f}, {h['ci_high']:+.0f}] pts)")
    return {"settled": settled, "verdict": verdict, "p_value": p, "p_holm": p,
            "ci_level": 1 - per, "margin": margin, "test": PAIRED_FAILURES,
            "choices": {arm: {"never_learned": counts[arm], "n": n} for arm in fx.arms},
            "pairs": rows}


def gate_equivalence(a: Answer) -> None:
    """"Equivalent" needs the failures equivalent too: an answer whose accuracies are
    equivalent where every arm learned, but whose trainability is not, is open."""
    t = a.trainability
    if not t or gate(a.settled, str(t.get("settled"))) == a.settled:
        return
    a.settled = OPEN
    a.verdict = (f"open: accuracies equivalent where every arm learned, but not how often "
                 f"they fail to learn ({t['verdict']}); {a.verdict}")
