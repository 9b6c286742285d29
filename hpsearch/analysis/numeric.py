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
from hpsearch.analysis.effects import MIN_DF, MIN_SURVIVORS, off_columns, off_steps
from hpsearch.analysis.matrix import Design
from hpsearch.analysis.table import FINAL, TrialTable
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


def to_z(table: TrialTable, param: str, xs: np.ndarray) -> np.ndarray:
    """The param's values on the design's scale, [-1, 1] over its range (the inverse of
    :func:`to_value`)."""
    dist = next(t.distributions[param] for t in table.trials if param in t.distributions)
    low, high = float(getattr(dist, "low")), float(getattr(dist, "high"))  # noqa: B009
    xs = np.asarray(xs, dtype=float)
    if getattr(dist, "log", False):
        low, high, xs = math.log(low), math.log(high), np.log(xs)
    return (xs - (low + high) / 2) / ((high - low) / 2)


# The part of a range a numeric contrast may compare: between these quantiles of the values
# of the trials that reached the end of training. The ends of a quadratic fitted on 13-24
# survivors are extrapolations, and its model-based interval knows nothing of that.
COVERED = (0.1, 0.9)


def covered(table: TrialTable, param: str, rows: np.ndarray) -> tuple[float, float] | None:
    """The z range the trials of ``rows`` that reached the end cover (``COVERED``
    quantiles), or None when fewer than ``2 * MIN_SURVIVORS`` got there or they do not
    spread."""
    end = rows[np.isfinite(table.value_at(FINAL)[rows])]
    values = [float(table.trials[i].params[param]) for i in end]
    if len(values) < 2 * MIN_SURVIVORS:
        return None
    lo, hi = (float(v) for v in np.quantile(to_z(table, param, np.array(values)), COVERED))
    return (lo, hi) if hi - lo > 1e-9 else None


def grid(table: TrialTable, param: str, span: tuple[float, float] = (-1.0, 1.0),
         ) -> tuple[np.ndarray, np.ndarray]:
    """The points the curve is compared at within ``span`` (in z): (z, value). An integer
    param's own values there when it has at most ``GRID`` of them (``depth=4``, not
    ``depth=4.06``)."""
    z = np.linspace(span[0], span[1], GRID)
    xs = to_value(table, param, z)
    dist = next(t.distributions[param] for t in table.trials if param in t.distributions)
    if isinstance(dist, IntDistribution) and (dist.high - dist.low) // dist.step + 1 <= GRID:
        ints = np.arange(dist.low, dist.high + 1, dist.step, dtype=float)
        zi = to_z(table, param, ints)
        inside = (zi >= span[0] - 1e-9) & (zi <= span[1] + 1e-9)
        if inside.sum() >= 2:
            return zi[inside], ints[inside]
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
    a.test = ("adjusted regression on its z and z^2 terms, Scheffe over the points of the "
              "range the trials that reached the end cover (Holm across)")
    span = covered(table, param, rows)
    if span is None:
        te.lost.update(range(len(terms)))
        te.notes.append(f"too few trials reached the end of training with {param} to "
                        "compare its values there")
        span = (-1.0, 1.0)
    else:
        lo, hi = to_value(table, param, np.array(span))
        te.notes.append(f"{param} compared over {lo:.3g}-{hi:.3g}, the 10th-90th percentile "
                        "of the values of the trials that reached the end (no contrast "
                        "beyond the values they cover)")
    return _curve(a, table, te, len(terms), span), te.by_level


def _curve(a: Answer, table: TrialTable, te: TermEffects, k: int,
           span: tuple[float, float]) -> ContrastSet:
    z, xs = grid(table, a.param, span)
    basis = np.column_stack([z, z ** 2][:k])
    names = [f"{x:.3g}" for x in xs]
    f = basis @ te.theta
    best = int(np.argmax(table.sign * f))
    rel = basis - basis[best]
    d = rel @ te.theta
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", rel, te.cov, rel), 0.0))
    lo, hi = pointwise_band(d, se, te.df)
    limit = 100.0 if table.unit == "pts" else math.inf
    lo, hi = np.maximum(lo, -limit), np.minimum(hi, limit)
    near = [i for i in range(len(z)) if lo[i] <= 0 <= hi[i] or i == best]
    if not te.lost:  # a curve the chain could not follow to the end is not drawn
        a.best = names[best]
        a.best_region = (f"{a.param} in [{xs[min(near)]:.3g}, {xs[max(near)]:.3g}] (its best "
                         f"{names[best]}; pointwise 95% against the best, within the values "
                         "the trials that reached the end cover)")
        a.curve = {"param": a.param, "x": xs.tolist(), "effect": d.tolist(),
                   "ci_low": lo.tolist(), "ci_high": hi.tolist(), "best": float(xs[best]),
                   "ci_level": 0.95, "relative_to": "the best point"}
    worst = int(np.argmin(table.sign * f))
    pairs: list[Pair] = []
    prefer: int | None = None
    for i in range(len(z)):
        for j in range(i + 1, len(z)):
            w = basis[i] - basis[j]
            if {i, j} == {best, worst}:
                prefer = len(pairs)
            pairs.append(Pair(names[i], names[j], *te.contrast(w), w=w))
    return ContrastSet(pairs, te.df, method="scheffe", k=k, prefer=prefer, min_df=MIN_DF,
                       extra={"n": te.n, "n_fit": te.n, "first_level": te.first_level,
                              "notes": te.notes})
