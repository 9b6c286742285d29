"""Design matrices: the questions' choices as columns, the other params as flexible terms.

One row per finished trial. The *question block* holds a 0/1 column for each choice of a
question's param (all but a reference choice); those columns are in every fit, since
their coefficients are the answers. The *nuisance block* holds every other param the
study sampled, so each answer is adjusted for them:

- categorical params: one 0/1 column per choice but the first;
- numeric params: ``z`` and ``z^2`` of the value mapped onto [-1, 1] over the param's
  range (on a log scale for log-scaled params): the learning rate's hump-shaped effect,
  which dominates every accuracy study, is a parabola in log(lr);
- a param that is only sometimes sampled (momentum only for SGD and RMSprop) is 0 where
  absent and centred among the trials that have it, so the choice that switches it on
  (``optimizer=sgd``) is measured at the average momentum, not at momentum 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial

from hpsearch.analysis.regress import residualize

MAX_LEVELS = 8  # a numeric question param with more distinct values is binned by quartile


def label(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass
class Factor:
    """One question param as the fits see it: a label per trial and its choice columns."""

    param: str
    labels: list[str | None]          # the trial's choice (None: param absent)
    order: list[str]                  # every label, in display order
    reference: str                    # the choice without a column (effects are vs it)
    columns: dict[str, int] = field(default_factory=dict)  # choice -> column in Design.q

    def carried(self, rows: np.ndarray) -> np.ndarray:
        """Per trial of ``rows``: whether it carries the param (has a label)."""
        return np.array([self.labels[i] is not None for i in rows], dtype=bool)

    def counts(self, rows: np.ndarray | None = None) -> dict[str, int]:
        labels = self.labels if rows is None else [self.labels[i] for i in rows]
        return {c: sum(x == c for x in labels) for c in self.order}


@dataclass
class Design:
    q: np.ndarray                     # question block, (n, k)
    nuisance: np.ndarray              # nuisance block, (n, m)
    names: list[str]                  # nuisance column names ("lr:z", "model=cnn", ...)
    numeric: list[int]                # nuisance columns that are numeric terms (z, z^2)
    factors: dict[str, Factor]


def question_factor(param: str, trials: Sequence[FrozenTrial], off_value: Any = None,
                    ) -> Factor | None:
    """The labels a question compares, or None when no trial has ``param``.

    A numeric param with an ``off_value`` (dropout 0) is off vs on ("0", "> 0") when both
    halves occur, else its values (quartile ranges when there are many).
    """
    present = [t for t in trials if param in t.params]
    if not present:
        return None
    xs = [t.params.get(param) for t in trials]
    dist = present[0].distributions[param]
    if isinstance(dist, CategoricalDistribution):
        order = [label(c) for c in dist.choices]
        labels = [label(t.params[param]) if param in t.params else None for t in trials]
        order += [x for x in dict.fromkeys(labels) if x is not None and x not in order]
    elif off_value is not None and _has_both(xs, off_value):
        off = label(off_value)
        order = [off, f"> {off}"]
        labels = [None if param not in t.params else (off if x == off_value else order[1])
                  for x, t in zip(xs, trials, strict=True)]
    else:
        labels, order = numeric_levels([x if param in t.params else None
                                         for x, t in zip(xs, trials, strict=True)])
    return Factor(param, labels, order, reference=order[0])


def _has_both(xs: Sequence[Any], off: Any) -> bool:
    on = [x for x in xs if x is not None]
    return any(x == off for x in on) and any(x != off for x in on)


def numeric_levels(xs: Sequence[Any]) -> tuple[list[str | None], list[str]]:
    """Labels for numeric values (None: absent): the values, or quartile ranges if many."""
    values = [float(x) for x in xs if x is not None]
    distinct = sorted(set(values))
    if len(distinct) <= MAX_LEVELS:
        return [None if x is None else label(x) for x in xs], [label(v) for v in distinct]
    edges = np.unique(np.quantile(values, [0, 0.25, 0.5, 0.75, 1]))
    names = [f"[{lo:.3g}, {hi:.3g}{']' if j == len(edges) - 2 else ')'}"
             for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))]
    out: list[str | None] = []
    for x in xs:
        if x is None:
            out.append(None)
        else:
            b = int(np.clip(np.searchsorted(edges, float(x), side="right") - 1, 0,
                            len(names) - 1))
            out.append(names[b])
    return out, names


def build_design(trials: Sequence[FrozenTrial], factors: Sequence[Factor],
                 min_per_choice: int) -> Design:
    """The question block for ``factors`` and the nuisance block for every other param.

    A factor's reference is its first choice with at least ``min_per_choice`` trials;
    choices rarer than that still get a column (so their trials do not blur the
    reference) but are not reported. Nuisance columns that the question block determines
    (a child's "is sampled" flag, say) are dropped.
    """
    n = len(trials)
    qcols: list[np.ndarray] = []
    by_param = {}
    for f in factors:
        counts = f.counts()
        f.reference = next(c for c in f.order if counts[c] >= min_per_choice)
        f.columns = {}
        for c in f.order:
            if c != f.reference and counts[c]:
                f.columns[c] = len(qcols)
                qcols.append(np.array([1.0 if x == c else 0.0 for x in f.labels]))
        by_param[f.param] = f
    q = np.column_stack(qcols) if qcols else np.zeros((n, 0))
    params = sorted({p for t in trials for p in t.params} - set(by_param))
    cols, names, numeric = [], [], []
    for p in params:
        for name, col, is_num in _terms(p, trials):
            cols.append(col)
            names.append(name)
            if is_num:
                numeric.append(len(cols) - 1)
    nuisance = np.column_stack(cols) if cols else np.zeros((n, 0))
    if nuisance.shape[1] and q.shape[1]:
        spread = nuisance.std(0)
        left = residualize(nuisance, q).std(0)
        keep = left > 1e-6 * (spread + 1e-12)
        index = np.cumsum(keep) - 1
        numeric = [int(index[j]) for j in numeric if keep[j]]
        nuisance, names = nuisance[:, keep], [x for x, k in zip(names, keep, strict=True) if k]
    return Design(q, nuisance, names, numeric, by_param)


def _terms(param: str, trials: Sequence[FrozenTrial]) -> list[tuple[str, np.ndarray, bool]]:
    """Columns for one nuisance param: (name, column, is a numeric term)."""
    has = np.array([param in t.params for t in trials])
    dist = next(t.distributions[param] for t in trials if param in t.distributions)
    out: list[tuple[str, np.ndarray, bool]] = []
    if isinstance(dist, CategoricalDistribution):
        values = [label(t.params[param]) if param in t.params else None for t in trials]
        present = [label(c) for c in dist.choices if label(c) in values]
        out += [(f"{param}={c}", np.array([1.0 if v == c else 0.0 for v in values]), False)
                for c in present[1:]]
    else:
        x = np.array([float(t.params.get(param, math.nan)) for t in trials])
        low, high = float(getattr(dist, "low")), float(getattr(dist, "high"))  # noqa: B009
        if getattr(dist, "log", False):
            x, low, high = np.log(x), math.log(low), math.log(high)
        if high > low and len(set(x[has])) > 1:
            z = np.where(has, (x - (low + high) / 2) / ((high - low) / 2), 0.0)
            out.append((f"{param}:z", z, True))
            if len(set(x[has])) > 2:
                out.append((f"{param}:z2", np.where(has, z ** 2, 0.0), True))
            if low == 0 and not getattr(dist, "log", False) and len(set(x[has])) > 2:
                # 0 is "off" (dropout 0, no decay): a step a parabola cannot draw. Left to
                # z and z^2, a dropout that costs only early on posed, through the trials
                # that trained on, as a change in other params' effects.
                off = np.where(has & (x == 0), 1.0, 0.0)
                if 0 < off.sum() < has.sum():
                    out.append((f"{param}:off", off, False))
    if not has.all():
        # Centred among the trials that have it; its "is sampled" flag is a column too,
        # unless the question block already fixes it (dropped by build_design).
        out = [(name, np.where(has, col - col[has].mean(), 0.0), num) for name, col, num in out]
        out.append((f"{param}:sampled", has.astype(float), False))
    return out
