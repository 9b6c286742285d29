"""A numeric param's question: does it matter, and where is it best?

The param enters every fit as its design terms, ``z`` and ``z^2`` of its value mapped onto
[-1, 1] (log scale for log-scaled params, :mod:`hpsearch.analysis.matrix`), with every
other param held fixed; the terms' coefficients are followed to the end of training
(:mod:`hpsearch.analysis.terms`). The adjusted curve is ``f(z) = b1 z + b2 z^2`` on a grid
of its range, and the question's contrasts are the differences ``f(z_i) - f(z_j)`` between
grid points, with Scheffe intervals, simultaneous over every contrast of the two
coefficients. Its test is therefore the joint test of the terms (Scheffe's projection of the
F test onto the grid), and "equivalent" means no two points of the range differ by more
than the margin. The region of its best values is where the curve's pointwise 95% interval
against the best point still reaches 0.
"""

from __future__ import annotations

import math

import numpy as np
from optuna.distributions import IntDistribution

from hpsearch.analysis.answers import Answer
from hpsearch.analysis.contrasts import ContrastSet, Pair, pointwise_band
from hpsearch.analysis.effects import off_columns, off_steps
from hpsearch.analysis.matrix import Design
from hpsearch.analysis.table import TrialTable
from hpsearch.analysis.terms import TermEffects, chain_terms

GRID = 17  # points of the range the contrasts compare (and the curve is drawn at)


def param_terms(design: Design, param: str) -> tuple[list[int], list[int]]:
    """Nuisance columns of ``param``'s z terms, and all of its columns (z, z2, sampled)."""
    terms = [j for j, name in enumerate(design.names) if name in (f"{param}:z", f"{param}:z2")]
    own = [j for j, name in enumerate(design.names) if name.split(":")[0] == param
           or name.split("=")[0] == param]
    return terms, own


def adjusted_for(design: Design, drop: list[int]) -> tuple[np.ndarray, list[int], list[int]]:
    """Every column but ``drop``: the other questions' choices and the nuisance, with the
    positions of the numeric terms (which the first stage forces in) and of the "off"
    steps (which every later stage forces in)."""
    keep = [j for j in range(design.nuisance.shape[1]) if j not in drop]
    numeric = [design.q.shape[1] + keep.index(j) for j in design.numeric if j in keep]
    off = off_steps(design) + [design.q.shape[1] + keep.index(j)
                               for j in off_columns(design.names) if j in keep]
    return np.column_stack([design.q, design.nuisance[:, keep]]), numeric, off


def to_value(table: TrialTable, param: str, z: np.ndarray) -> np.ndarray:
    """Grid points in z back to the param's own values."""
    dist = next(t.distributions[param] for t in table.trials if param in t.distributions)
    low, high = float(getattr(dist, "low")), float(getattr(dist, "high"))  # noqa: B009
    if getattr(dist, "log", False):
        low, high = math.log(low), math.log(high)
        return np.exp((low + high) / 2 + z * (high - low) / 2)
    return (low + high) / 2 + z * (high - low) / 2


def grid(table: TrialTable, param: str) -> tuple[np.ndarray, np.ndarray]:
    """The points the curve is compared at: (z, value). An integer param's own values when
    it has at most ``GRID`` of them (``depth=4``, not ``depth=4.06``)."""
    z = np.linspace(-1.0, 1.0, GRID)
    xs = to_value(table, param, z)
    dist = next(t.distributions[param] for t in table.trials if param in t.distributions)
    if isinstance(dist, IntDistribution) and (dist.high - dist.low) // dist.step + 1 <= GRID:
        xs = np.arange(dist.low, dist.high + 1, dist.step, dtype=float)
        low, high = float(dist.low), float(dist.high)
        if dist.log:
            low, high, mapped = math.log(low), math.log(high), np.log(xs)
        else:
            mapped = xs
        z = (mapped - (low + high) / 2) / ((high - low) / 2)
    return z, xs


def numeric_contrasts(a: Answer, table: TrialTable, design: Design, min_per_choice: int,
                      word: str) -> tuple[ContrastSet, list] | None:
    """Fill ``a`` (a numeric question) up to its decision; None when it cannot be answered."""
    param = a.param
    terms, own = param_terms(design, param)
    rows = np.array([i for i, t in enumerate(table.trials) if param in t.params], dtype=int)
    if not terms or len(rows) < 2 * min_per_choice:
        a.status = "too_few_trials"
        a.verdict = f"too few trials to tell ({len(rows)} finished trials have {param})"
        return None
    others, numeric, off = adjusted_for(design, own)
    te = chain_terms(table, rows, design.nuisance[rows][:, terms], others[rows], numeric,
                     always=off)
    if te is None:
        a.status = "too_few_trials"
        a.verdict = (f"too few trials to tell ({len(rows)} finished trials cannot hold "
                     f"{param}'s terms and the other params fixed at once)")
        return None
    a.status, a.word, a.fidelity = "answered", word, "end of training"
    a.test = ("adjusted regression on its z and z^2 terms, Scheffe over the points of its "
              "range (Holm across)")
    return _curve(a, table, te, len(terms)), te.by_level


def _curve(a: Answer, table: TrialTable, te: TermEffects, k: int) -> ContrastSet:
    z, xs = grid(table, a.param)
    basis = np.column_stack([z, z ** 2][:k])
    names = [f"{x:.3g}" for x in xs]
    f = basis @ te.theta
    best = int(np.argmax(table.sign * f))
    rel = basis - basis[best]
    d = rel @ te.theta
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", rel, te.cov, rel), 0.0))
    lo, hi = pointwise_band(d, se, te.df)
    near = [i for i in range(len(z)) if lo[i] <= 0 <= hi[i] or i == best]
    a.best = names[best]
    a.best_region = (f"{a.param} in [{xs[min(near)]:.3g}, {xs[max(near)]:.3g}] (its best "
                     f"{names[best]}; pointwise 95% against the best)")
    a.curve = {"param": a.param, "x": xs.tolist(), "effect": d.tolist(), "ci_low": lo.tolist(),
               "ci_high": hi.tolist(), "best": float(xs[best]), "ci_level": 0.95,
               "relative_to": "the best point"}
    worst = int(np.argmin(table.sign * f))
    pairs: list[Pair] = []
    prefer: int | None = None
    for i in range(len(z)):
        for j in range(i + 1, len(z)):
            w = basis[i] - basis[j]
            if {i, j} == {best, worst}:
                prefer = len(pairs)
            pairs.append(Pair(names[i], names[j], float(w @ te.theta),
                              float(np.sqrt(max(float(w @ te.cov @ w), 0.0))), w=w))
    return ContrastSet(pairs, te.df, method="scheffe", k=k, prefer=prefer,
                       extra={"n": te.n, "n_fit": te.n, "first_level": te.first_level,
                              "notes": te.notes})
