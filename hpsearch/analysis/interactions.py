"""Interaction questions: does the effect of A depend on B?

Each param is *coded*: a categorical one by a 0/1 column per choice but its reference (the
choices with at least ``min_per_choice`` trials), a param with an "off" value in the
built-in questions (dropout 0, batch norm none) as off vs on (the differences among the
"on" choices, before vs after or the dropout rate, stay in as main effects), and a numeric
one by its linear term on its meaningful scale (``z`` in [-1, 1], log scale for the
learning rate: "low" and "high" are the ends of its range; its ``z^2`` stays in as a main
effect). The
fit holds A's coding, B's coding, their products and every other param fixed (the same
double-selection regressions as the main questions), and follows the coefficients to the
end of training (:mod:`hpsearch.analysis.terms`).

The *effect of A* at a level of B is a contrast of two A choices there (on - off, a choice
minus another, high - low); the *interaction contrasts* are the differences of one such
effect between two levels of B, for every pair of A choices and every pair of B levels:
Bonferroni within the question, Holm across the interaction family, and the same three
states as the main questions (:mod:`hpsearch.analysis.contrasts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution

from hpsearch.analysis import stats
from hpsearch.analysis.contrasts import (
    ContrastSet,
    Pair,
    clip,
    widest,
)
from hpsearch.analysis.effects import MIN_DF, MIN_SURVIVORS
from hpsearch.analysis.matrix import Design, label
from hpsearch.analysis.numeric import adjusted_for, covered, param_terms, to_value
from hpsearch.analysis.table import FINAL, TrialTable
from hpsearch.analysis.terms import chain_terms
from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN
from hpsearch.space import QUESTIONS, Interaction

MIN_CELL = 3   # trials a (choice of A, choice of B) cell needs for B's choice to be compared


@dataclass
class _Coding:
    param: str
    columns: np.ndarray           # (n_rows, k)
    levels: list[str]             # level names; levels[0] is the reference
    vectors: list[np.ndarray]     # each level's coding (zeros for the reference)
    labels: list[str | None]      # each row's level (None for a numeric param)
    numeric: bool
    extra: np.ndarray             # main-effect-only columns (a numeric param's z^2)


def _off_value(param: str) -> Any:
    return next((q.off_value for q in QUESTIONS if q.param == param
                 and q.off_value is not None), None)


def _coding(table: TrialTable, rows: np.ndarray, design: Design, param: str,
            min_per_choice: int) -> _Coding | None:
    trials = [table.trials[i] for i in rows]
    dist = trials[0].distributions[param]
    values = [t.params[param] for t in trials]
    off = _off_value(param)
    if not isinstance(dist, CategoricalDistribution) and off is None:
        terms, _ = param_terms(design, param)
        if not terms:
            return None
        cols = design.nuisance[rows][:, terms]
        z = cols[:, :1]
        extra = cols[:, 1:]
        # "low" and "high" are the ends of the values the trials that reached the end of
        # training cover, never the range's ends (an extrapolation of the fit)
        span = covered(table, param, rows)
        if span is None:
            return None
        ends = to_value(table, param, np.array(span))
        names = [f"{param}={ends[0]:.3g}", f"{param}={ends[1]:.3g}"]
        # centred z: differences of the codings are what count
        return _Coding(param, z, names, [np.array([span[0]]), np.array([span[1]])],
                       [None] * len(rows), True, extra)
    if isinstance(dist, CategoricalDistribution):
        labels = [label(v) for v in values]
        order = [label(c) for c in dist.choices if label(c) in labels]
    else:
        labels = [f"{param}={label(off)}" if v == off else f"{param}>{label(off)}"
                  for v in values]
        order = [f"{param}={label(off)}", f"{param}>{label(off)}"]
    if off is not None and isinstance(dist, CategoricalDistribution):
        o = label(off)
        labels = [f"{param}={o}" if x == o else f"{param}: any" for x in labels]
        order = [f"{param}={o}", f"{param}: any"]
    order = [c for c in order if labels.count(c) >= min_per_choice]
    if len(order) < 2:
        return None
    extra = np.zeros((len(rows), 0))
    if off is not None:
        # "on" merges several choices (before and after; every dropout rate): the
        # differences among them stay in as main effects, so that how the choices are mixed
        # at each level of the other param cannot pose as an interaction (it did: a planted
        # placement effect made batch norm "depend" on the weight penalty in 7 of 20 nulls).
        if isinstance(dist, CategoricalDistribution):
            names = [f"{param}={label(c)}" for c in dist.choices if label(c) != label(off)][1:]
            cols_extra = [j for j, name in enumerate(design.names) if name in names]
        else:
            cols_extra = param_terms(design, param)[0]
        extra = design.nuisance[rows][:, cols_extra]
    k = len(order) - 1
    cols = np.zeros((len(rows), k))
    for i, x in enumerate(labels):
        if x in order[1:]:
            cols[i, order.index(x) - 1] = 1.0
    vectors = [np.eye(k)[j - 1] if j else np.zeros(k) for j in range(len(order))]
    return _Coding(param, cols, order, vectors, list(labels), False, extra)


def answer_interactions(table: TrialTable, design: Design, specs: Sequence[Interaction], *,
                        alpha: float = 0.05, min_per_choice: int = 5, margin: float,
                        word: str = "associated", step: str = "epoch") -> list[dict[str, Any]]:
    """Each interaction's answer (the JSON keys of ``analysis.interactions``)."""
    out, sets = [], {}
    for spec in specs:
        row, cs = _one(table, design, spec, min_per_choice, margin)
        out.append(row)
        if cs is not None:
            sets[spec.id] = cs
    decided = [r for r in out if r["status"] == "answered"]
    ps = [sets[r["question"]].p_value() for r in decided]
    tested = [sets[r["question"]].tested_p() for r in decided]
    for r, p, p_adj, level in zip(decided, ps, stats.holm(tested),
                                  stats.holm_levels(tested, alpha), strict=True):
        _decide(r, sets[r["question"]], p, float(p_adj), float(level), margin, word, step)
    return out


def _empty(spec: Interaction, table: TrialTable, margin: float, why: str) -> dict[str, Any]:
    return {"question": spec.id, "params": list(spec.params), "title": spec.title,
            "seed_claim": spec.seed_claim, "status": "not_sampled", "significant": False,
            "settled": OPEN, "margin": margin, "estimate": math.nan, "ci_low": math.nan,
            "ci_high": math.nan, "p_value": math.nan, "p_holm": math.nan,
            "ci_level": math.nan, "verdict": why, "levels": [], "contrast": None,
            "effect_by_epoch": [], "unit": table.unit, "caveat": "", "needed": ""}


def _one(table: TrialTable, design: Design, spec: Interaction, min_per_choice: int,
         margin: float) -> tuple[dict[str, Any], ContrastSet | None]:
    a, b = spec.params
    rows = np.array([i for i, t in enumerate(table.trials) if a in t.params and b in t.params],
                    dtype=int)
    missing = [p for p in spec.params if not any(p in t.params for t in table.trials)]
    if missing:
        return _empty(spec, table, margin, f"not sampled: no finished trial has "
                      f"{' or '.join(missing)}"), None
    ca = _coding(table, rows, design, a, min_per_choice) if len(rows) else None
    cb = _coding(table, rows, design, b, min_per_choice) if len(rows) else None
    if ca is None or cb is None:
        r = _empty(spec, table, margin, f"too few trials to tell (need >= {min_per_choice} "
                   f"trials in >= 2 choices of each of {a} and {b}; {len(rows)} have both)")
        r["status"] = "too_few_trials"
        return r, None
    b_levels = _populated(ca, cb)
    if len(b_levels) < 2:
        r = _empty(spec, table, margin, f"too few trials to tell: fewer than 2 choices of {b} "
                   f"have >= {MIN_CELL} trials with every compared choice of {a}")
        r["status"] = "too_few_trials"
        return r, None
    ka, kb = ca.columns.shape[1], cb.columns.shape[1]
    prods = np.column_stack([ca.columns[:, i] * cb.columns[:, j]
                             for i in range(ka) for j in range(kb)])
    # The products first: they are the interaction, and double selection targets them only
    # (one lasso per column: the main effects' own would cost as much again, for nothing).
    x = np.column_stack([prods, ca.columns, cb.columns, ca.extra, cb.extra])
    _, own_a = param_terms(design, a)
    _, own_b = param_terms(design, b)
    others, numeric, off = adjusted_for(design, sorted(set(own_a + own_b)))
    te = chain_terms(table, rows, x, others[rows], numeric, n_select=ka * kb, always=off)
    if te is None:
        r = _empty(spec, table, margin, f"too few trials to tell ({len(rows)} trials cannot "
                   f"hold {a}, {b}, their products and the other params fixed at once)")
        r["status"] = "too_few_trials"
        return r, None
    dim = x.shape[1]

    def weights(u: np.ndarray, v: np.ndarray, main: bool) -> np.ndarray:
        w = np.zeros(dim)
        w[:ka * kb] = np.kron(u, v)
        if main:
            w[ka * kb:ka * kb + ka] = u
        return w

    a_pairs = [(i, j) for i in range(len(ca.levels)) for j in range(i)]
    ended = _ended(table, rows, ca, cb)
    pairs = []
    for i, j in a_pairs:
        u = ca.vectors[i] - ca.vectors[j]
        for p, bp in enumerate(b_levels):
            for bq in b_levels[p + 1:]:
                w = weights(u, cb.vectors[bp] - cb.vectors[bq], main=False)
                est, se = te.contrast(w)
                if not ended((i, j), (bp, bq)):
                    se = math.inf  # a cell too few trials carried to the end: no estimate
                pairs.append(Pair(f"{ca.levels[i]} - {ca.levels[j]} | {cb.levels[bp]}",
                                  f"{ca.levels[i]} - {ca.levels[j]} | {cb.levels[bq]}",
                                  est, se, w=w))
    cs = ContrastSet(pairs, te.df, bound=100.0 if table.unit == "pts" else math.inf,
                     min_df=MIN_DF,
                     extra={"te": te, "ca": ca, "cb": cb, "b_levels": b_levels,
                            "weights": weights, "rows": rows, "ended": ended})
    r = _empty(spec, table, margin, "")
    r["status"] = "answered"
    r["n"] = int(te.n)
    return r, cs


def _ended(table: TrialTable, rows: np.ndarray, ca: _Coding, cb: _Coding) -> Any:
    """``ended(a_levels, b_levels)``: whether every cell the contrast of those levels
    needs kept ``MIN_SURVIVORS`` trials to the end of training (a level of a numeric param
    is its whole range: twice that many). A cell with fewer has no end-of-training value:
    the chain would carry its early effect or a pseudo-coefficient there."""
    end = np.isfinite(table.value_at(FINAL)[rows])

    def count(i: int | None, j: int | None) -> int:
        ok = end.copy()
        if i is not None:
            ok &= np.array([x == ca.levels[i] for x in ca.labels])
        if j is not None:
            ok &= np.array([x == cb.levels[j] for x in cb.labels])
        return int(ok.sum())

    def ended(a_levels: Sequence[int], b_levels: Sequence[int]) -> bool:
        a_ids = [None] if ca.numeric else list(a_levels)
        b_ids = [None] if cb.numeric else list(b_levels)
        need = MIN_SURVIVORS * (2 if ca.numeric or cb.numeric else 1)
        return all(count(i, j) >= need for i in a_ids for j in b_ids)

    return ended


def _populated(ca: _Coding, cb: _Coding) -> list[int]:
    """B's levels to compare: each has >= MIN_CELL trials with every level of A (numeric
    codings have no cells: both ends count)."""
    if cb.numeric:
        return [0, 1]
    out = []
    for j, bl in enumerate(cb.levels):
        if ca.numeric:
            ok = cb.labels.count(bl) >= 2 * MIN_CELL
        else:
            ok = all(sum(1 for x, y in zip(ca.labels, cb.labels, strict=True)
                         if x == al and y == bl) >= MIN_CELL for al in ca.levels)
        if ok:
            out.append(j)
    return out


def _fmt(unit: str, x: float) -> str:
    return f"{x:+.2f}" if unit == "pts" else f"{x:+.3g}"


def _decide(r: dict[str, Any], cs: ContrastSet, p: float, p_holm: float, level: float,
            margin: float, word: str, step: str) -> None:
    state = cs.decide(level, margin)
    h = cs.headline
    te, ca, cb = cs.extra["te"], cs.extra["ca"], cs.extra["cb"]
    unit = r["unit"]
    known = not h.lost
    if cs.untestable:
        p, p_holm = math.nan, 1.0
    r.update(settled=state, significant=state == DIFFERENCE, p_value=p, p_holm=p_holm,
             ci_level=1 - cs.pair_level, estimate=h.est if known else math.nan,
             ci_low=h.ci_low, ci_high=h.ci_high)
    a_name = h.a.split(" | ")[0]
    b1, b2 = h.a.split(" | ")[1], h.b.split(" | ")[1]
    r["contrast"] = {"effect_of": a_name, "levels": [b1, b2]}
    i, j = (ca.levels.index(x) for x in a_name.split(" - "))
    u = ca.vectors[i] - ca.vectors[j]
    levels = []
    for bl in cs.extra["b_levels"]:
        w = cs.extra["weights"](u, cb.vectors[bl], True)
        est, se = te.contrast(w)
        if not cs.extra["ended"]((i, j), (bl,)):
            est, se = math.nan, math.inf
        lo, hi = (clip(*stats.t_interval(est, se, te.df, 0.05), cs.bound)
                  if math.isfinite(se) and not cs.untestable else (math.nan, math.nan))
        n = (cb.labels.count(cb.levels[bl]) if not cb.numeric else len(cb.labels))
        levels.append({"level": cb.levels[bl], "effect": est if math.isfinite(se) else math.nan,
                       "ci_low": lo, "ci_high": hi, "n": n})
    r["levels"] = levels
    per = " and ".join(
        (f"{_fmt(unit, x['effect'])} [{_fmt(unit, x['ci_low'])}, {_fmt(unit, x['ci_high'])}] "
         if math.isfinite(x["effect"]) else "unknown (too few trials reached the end) ")
        + f"with {x['level']}" for x in levels if x["level"] in (b1, b2))
    size = (f"{_fmt(unit, h.est)} {unit} [{_fmt(unit, h.ci_low)}, {_fmt(unit, h.ci_high)}]")
    where = f"end of training; n={r['n']}"
    lost = sum(x.lost for x in cs.pairs)
    if cs.all_lost:
        r["verdict"] = (f"open: too few trials reached the end of training in the cells of "
                        f"{r['params'][0]} x {r['params'][1]} to compare ({where}): no "
                        "estimate")
    elif cs.untestable:
        r["verdict"] = (f"open: too few trials to test it ({where}; the fit of the trials that "
                        f"reached the end of training keeps {cs.df:.0f} residual degrees of "
                        f"freedom, a test needs {cs.min_df:.0f}; estimate: {a_name} differs "
                        f"by {_fmt(unit, h.est)} {unit} between {b1} and {b2}, with no "
                        "interval it can vouch for)")
        r["needed"] = (f"about {math.ceil(cs.min_df - cs.df)} more trials with both params "
                       "that run to the end of training, or hpsearch verify's factorial twins")
    elif state == DIFFERENCE:
        r["verdict"] = (f"depends ({word}): {a_name} is {per}; difference {size} ({where}; "
                        f"Holm p={p_holm:.2g})")
    elif state == EQUIVALENT:
        w = widest(cs.pairs)
        r["verdict"] = (f"equivalent: the effect of {r['params'][0]} differs by no more than "
                        f"{margin:.2f} {unit} between any two levels of {r['params'][1]} "
                        f"(widest: [{_fmt(unit, w.ci_low)}, {_fmt(unit, w.ci_high)}]; {where})")
    else:
        which = (f"the largest of {len(cs.pairs)} contrasts" if len(cs.pairs) > 1
                 else "the contrast")
        r["verdict"] = (f"open: no dependence detected, nor one smaller than +-{margin:.2f} "
                        f"{unit} shown ({where}; {which}: {a_name} is {per}; difference "
                        f"{size}, Holm p={p_holm:.2g})")
    if lost and not cs.all_lost:
        r["verdict"] += (f"; too few trials reached the end of training for {lost} of "
                         f"{len(cs.pairs)} contrasts")
    r["caveat"] = (f"The contrast is {a_name} at {b1} minus at {b2}, with every other param "
                   "held fixed; intervals at the question's Holm level (per-level effects: "
                   "pointwise 95%). " + " ".join(te.notes))
    series = []
    for lvl, theta, cov in te.by_level if known and not cs.untestable else []:
        est = float(h.w @ theta)
        se = float(np.sqrt(max(float(h.w @ cov @ h.w), 0.0)))
        lo, hi = clip(*stats.t_interval(est, se, te.df, 0.05), cs.bound)
        series.append({"epoch": None if lvl == FINAL else lvl,
                       "label": "end" if lvl == FINAL else f"{step} {lvl}",
                       "diff": est, "ci_low": lo, "ci_high": hi})
    r["effect_by_epoch"] = series
