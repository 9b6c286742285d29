"""Trainability: a trial that never learned is a failure to train, not a low accuracy.

Real studies are bimodal. Beside trials near 98% sit trials that never learned (a
learning rate too high for sigmoid, a penalty that wipes the weights): their accuracy is
chance at every epoch. Averaged into an accuracy difference they dominate it, and in the
small cells where they gather a pooled fit gives them tiny standard errors (one never-learned
trial in a third choice gave "l2 > l1_l2 by 43.28 pts, p=3e-6" on a null study). So each
question answers two things apart:

- does the choice change how often training fails? The failure rate per choice, and its own
  verdict: a difference, equivalence within +-``RATE_MARGIN``, or open (below);
- does it change accuracy among the trials that learned? The accuracy analysis
  (:mod:`hpsearch.analysis.questions`) runs without the never-learned trials.

*Never learned* means that the trial's best value at any epoch stayed within
``TOLERANCE`` of the way from chance to perfect (chance 10%: at most 14.5%). Chance is
``1 / classes``: the dataset hpsearch recorded (its provenance, or a user attr ``dataset``
naming one it knows), or ``--chance`` for any other study; without it nothing is detected,
and a note says so. The rates are raw, not adjusted for the other params: under an adaptive
sampler they read "associated" like the accuracy answers.

The test, and why this one
--------------------------
Failures have causes besides the question's param: 30% of trials with a high lr fail
whatever their activation. Counted raw, they add noise to every choice's rate, and with
every pair of choices tested (Bonferroni over ten pairs for five choices) inside a Holm
family of every question (twenty-odd with a study's own params), a sigmoid failing 35%
more often than the rest was called in 70% of planted 200-trial studies. So, per question:

- **contrasts**: each choice against the other choices pooled (one contrast for two
  choices): a choice that fails more (or less) often than the rest is what a failing
  choice looks like, and the pooled rest is measured far more precisely than any one
  choice;
- **strata**: a failure model picks the other params that predict failures best (a
  chi-square test of failures against the param's levels: a choice's values, a numeric
  param's quintiles, trials that lack it as one more level; up to ``STRATA_PARAMS`` params
  with ``p < STRATA_P``), and the trials are stratified by their crossed levels: lr's top
  fifth, the deep models. The param under test is never among its own strata;
- **test**: the Mantel-Haenszel score of each contrast (failures observed minus expected
  within strata, over its variance: the CMH statistic), the largest |z| over the question's
  contrasts as the statistic, and its p from ``PERMUTATIONS`` permutations of the choices
  within strata (a fixed seed: the same study gives the same p). Under a sampler that
  draws the param independently of the others and of the trial's fate (random sampling,
  paired or balanced designs), the choices are exchangeable within any strata built from
  the other params and the failures, so the p is exact however the strata were picked,
  and the maximum over contrasts needs no Bonferroni within the question. Holm across
  questions, as before;
- **intervals**: Newcombe score intervals of the raw rate differences (what the printed
  rates show), at the question's Holm level over the number of contrasts: a difference
  needs the test and a contrast's interval to agree. Equivalence still needs every pair of
  choices within ``RATE_MARGIN`` (their pairwise intervals at the Holm level over the
  number of pairs), so "equivalent" keeps its meaning.

On planted studies (``scripts/check_answers.py``) this calls the sigmoid's failures in
more studies at the same false-call rate on null studies; numbers there.
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

TRAINABILITY_TEST = ("failure rates per choice, each against the other choices pooled: "
                     "Mantel-Haenszel scores within strata of the params that best predict "
                     "failures, the largest over the choices tested by permuting the choices "
                     "within strata (Holm across questions); Newcombe score intervals")

# The test's permutations (p >= 1 / (PERMUTATIONS + 1)), and its strata: at most this many
# other params, each of whose groups predicts failures at chi-square p below STRATA_P.
PERMUTATIONS = 9999
STRATA_PARAMS = 2
STRATA_P = 1e-3
REST = "the other choices"


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
                        word: str = "associated",
                        params: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Fill each answer's ``trainability``: ``questions`` pairs an answer with its choices'
    trials (bool masks over the same trials as ``failed``). One Holm family. ``params``:
    each trial's params (the strata are drawn from them; None: from the questions'
    groups)."""
    qs = [_Question(a, {c: m for c, m in groups.items() if m.sum() > 0})
          for a, groups in questions]
    qs = [q for q in qs if len(q.groups) >= 2]
    candidates = (_covariates(params) if params is not None else
                  [(x, _codes(q, len(failed))) for q in qs if (x := _param(q)) is not None])
    model = _failure_model(candidates, failed)
    ps, strata_of = [], []
    for q in qs:
        picked = [(param, codes) for p, param, codes in model
                  if param != _param(q) and p < STRATA_P][:STRATA_PARAMS]
        strata = np.zeros(len(failed), dtype=np.int64)
        for _, codes in picked:
            strata = strata * (int(codes.max()) + 1) + codes
        p, _ = _permutation_test(q, failed, strata)
        ps.append(p)
        strata_of.append([param for param, _ in picked])
    adjusted, levels = np.asarray(stats.holm(ps)), stats.holm_levels(ps, alpha)
    for q, p, p_adj, level, by in zip(qs, ps, adjusted, levels, strata_of, strict=True):
        q.answer.trainability = _decide(q, failed, p, float(p_adj), float(level), alpha,
                                        word, by)


def _param(q: _Question) -> str | None:
    return getattr(q.answer, "param", None)


def _codes(q: _Question, n: int) -> np.ndarray:
    """Per trial: 1 + the index of its group in ``q`` (0: in none of them)."""
    codes = np.zeros(n, dtype=np.int64)
    for i, m in enumerate(q.groups.values(), start=1):
        codes[m & (codes == 0)] = i
    return codes


# A numeric param with more distinct values than this is cut at its quintiles for strata.
STRATA_LEVELS = 5


def _covariates(params: Sequence[Mapping[str, Any]]) -> list[tuple[str, np.ndarray]]:
    """Each param as strata codes per trial (0: the trial lacks it): a choice by its value,
    a numeric param with many values by its quintiles."""
    names = sorted({k for p in params for k in p})
    out = []
    for name in names:
        values = [p.get(name) for p in params]
        present = [v for v in values if v is not None]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
        if numeric and len(set(present)) > STRATA_LEVELS:
            x = np.array([float(v) if v is not None else np.nan for v in values])
            cuts = np.quantile(x[np.isfinite(x)], np.linspace(0, 1, STRATA_LEVELS + 1)[1:-1])
            codes = np.where(np.isfinite(x), 1 + np.searchsorted(cuts, x, side="right"), 0)
        else:
            levels = {str(v): i for i, v in enumerate(dict.fromkeys(present), start=1)}
            if len(levels) > 4 * STRATA_LEVELS:
                continue
            codes = np.array([levels[str(v)] if v is not None else 0 for v in values])
        out.append((name, codes.astype(np.int64)))
    return out


def _failure_model(candidates: Sequence[tuple[str, np.ndarray]], failed: np.ndarray,
                   ) -> list[tuple[float, str, np.ndarray]]:
    """(chi-square p of failures against the param's strata, the param, its codes per
    trial), the params that best predict failures first; one per param."""
    out: dict[str, tuple[float, str, np.ndarray]] = {}
    for param, codes in candidates:
        n = np.bincount(codes)
        k = np.bincount(codes, weights=failed.astype(float), minlength=n.size)
        keep = n > 0
        table = np.column_stack([k[keep], n[keep] - k[keep]])
        if table.shape[0] < 2 or (table.sum(axis=0) == 0).any():
            continue
        p = float(sps.chi2_contingency(table, correction=False)[1])
        if param not in out or p < out[param][0]:
            out[param] = (p, param, codes)
    return sorted(out.values(), key=lambda x: x[0])


def _contrasts(q: _Question) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(choice, what it is compared with, their masks): each choice against the others
    pooled, or the one pair when there are two."""
    names = list(q.groups)
    if len(names) == 2:
        return [(names[0], names[1], q.groups[names[0]], q.groups[names[1]])]
    every = np.logical_or.reduce(list(q.groups.values()))
    return [(c, REST, q.groups[c], every & ~q.groups[c]) for c in names]


def _permutation_test(q: _Question, failed: np.ndarray, strata: np.ndarray,
                      permutations: int = PERMUTATIONS) -> tuple[float, list[float]]:
    """(p of the largest |z| over the contrasts, each contrast's own max-adjusted p).

    z of a choice: its failures minus their expectation within strata, over the
    hypergeometric variance (the Mantel-Haenszel score of it against the rest). The
    choices are permuted within each stratum; strata with one choice or no failure (or
    nothing but failures) carry nothing and are skipped."""
    names = list(q.groups)
    g = len(names)
    label = _codes(q, len(failed)) - 1               # -1: in no group of the question
    rng = np.random.default_rng(24)
    d_obs, d_perm = np.zeros(g), np.zeros((permutations, g))
    var = np.zeros(g)
    for s in np.unique(strata[label >= 0]):
        idx = (strata == s) & (label >= 0)
        lab, y = label[idx], failed[idx]
        n_s, k = lab.size, int(y.sum())
        if k == 0 or k == n_s or np.unique(lab).size < 2:
            continue
        n_g = np.bincount(lab, minlength=g).astype(float)
        expect = n_g * k / n_s
        var += n_g * (n_s - n_g) * k * (n_s - k) / (n_s ** 2 * (n_s - 1))
        d_obs += np.bincount(lab[y], minlength=g) - expect
        # in chunks: a study of thousands of trials stays within tens of MB
        step = max(1, min(permutations, 2_000_000 // (n_s * g)))
        for start in range(0, permutations, step):
            rows = min(step, permutations - start)
            drawn = rng.permuted(np.tile(lab, (rows, 1)), axis=1)[:, :k]
            counts = (drawn[:, :, None] == np.arange(g)).sum(axis=1)
            d_perm[start:start + rows] += counts - expect
    one = slice(0, 1) if g == 2 else slice(0, g)     # two choices: one contrast
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.where(var > 0, np.sqrt(var), np.inf)
        z_obs = np.abs(d_obs / sd)[one]
        t_perm = np.abs(d_perm / sd)[:, one].max(axis=1)
    if not np.isfinite(sd[one]).any():
        return 1.0, [1.0] * len(names[one])
    tol = 1e-9
    each = [(1 + int((t_perm >= z - tol).sum())) / (permutations + 1) for z in z_obs]
    return min(each), each


def _fisher(x: np.ndarray, y: np.ndarray, failed: np.ndarray) -> float:
    kx, ky = int(failed[x].sum()), int(failed[y].sum())
    table = [[kx, int(x.sum()) - kx], [ky, int(y.sum()) - ky]]
    return float(sps.fisher_exact(table).pvalue)


def _decide(q: _Question, failed: np.ndarray, p: float, p_holm: float, level: float,
            alpha: float, word: str, strata: Sequence[str]) -> dict[str, Any]:
    names = list(q.groups)
    counts = {c: (int(failed[m].sum()), int(m.sum())) for c, m in q.groups.items()}
    pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
    per = level / len(pairs)
    rows: list[dict[str, Any]] = []
    for x, y in pairs:   # every pair, for equivalence (and to read)
        (kx, nx), (ky, ny) = counts[x], counts[y]
        lo, hi = newcombe(kx, nx, ky, ny, per)
        rows.append({"a": x, "b": y, "diff": 100 * (kx / nx - ky / ny), "ci_low": 100 * lo,
                     "ci_high": 100 * hi, "p_value": _fisher(q.groups[x], q.groups[y], failed)})
    contrasts = _contrasts(q)
    per_c = level / len(contrasts)
    crows: list[dict[str, Any]] = []
    for a, b, ma, mb in contrasts:   # each choice against the rest: the difference
        ka, na, kb, nb = int(failed[ma].sum()), int(ma.sum()), int(failed[mb].sum()), \
            int(mb.sum())
        lo, hi = newcombe(ka, na, kb, nb, per_c)
        crows.append({"a": a, "b": b, "diff": 100 * (ka / na - kb / nb), "ci_low": 100 * lo,
                      "ci_high": 100 * hi, "never_learned": [ka, kb], "n": [na, nb]})
    # a difference needs the test (Holm) and a contrast's printed interval to agree;
    # equivalence every pair's interval inside the margin
    c_intervals = [(r["ci_low"], r["ci_high"]) for r in crows]
    if p_holm <= alpha and excludes_zero(c_intervals):
        settled = DIFFERENCE
    else:
        settled = settle([(r["ci_low"], r["ci_high"]) for r in rows], RATE_MARGIN,
                         rejected=False)
    total = sum(k for k, _ in counts.values())
    rates = ", ".join(f"{c} {k}/{n}" for c, (k, n) in counts.items())
    within = f", within strata of {' and '.join(strata)}" if strata else ""
    if settled == DIFFERENCE:
        h = max((r for r in crows if r["ci_low"] > 0 or r["ci_high"] < 0),
                key=lambda r: abs(r["diff"]))
        lo, hi = sorted((abs(h["ci_low"]), abs(h["ci_high"])))
        others = "the other choices" if h["b"] == REST else h["b"]
        if h["diff"] > 0:
            how = f"more often with {h['a']} than with {others}"
        elif h["b"] == REST:
            how = f"less often with {h['a']} than with {others}"
        else:
            how = f"more often with {h['b']} than with {h['a']}"
        verdict = (f"{word}: training fails {how}, by {abs(h['diff']):.0f} pts of rate "
                   f"[{lo:.0f}, {hi:.0f}] (never learned: {rates}; Holm p={p_holm:.2g}"
                   f"{within})")
    elif settled == EQUIVALENT:
        verdict = (f"equivalent: failure rates differ by less than {RATE_MARGIN:g} pts "
                   f"between choices (never learned: {rates})")
    elif total == 0:
        verdict = f"open: no trial failed to train (never learned: {rates})"
    else:
        verdict = (f"open: no difference in how often training fails detected, nor "
                   f"equivalence within +-{RATE_MARGIN:g} pts (never learned: {rates}; "
                   f"Holm p={p_holm:.2g}{within})")
    return {"settled": settled, "verdict": verdict, "p_value": p, "p_holm": p_holm,
            "ci_level": 1 - per, "contrast_ci_level": 1 - per_c, "margin": RATE_MARGIN,
            "test": TRAINABILITY_TEST, "strata": list(strata),
            "choices": {c: {"never_learned": k, "n": n} for c, (k, n) in counts.items()},
            "pairs": rows, "contrasts": crows}
