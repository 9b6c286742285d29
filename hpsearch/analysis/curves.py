"""What pruning saved, and learning curves grouped by a param's value."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from hpsearch.analysis.matrix import MAX_LEVELS, label, numeric_levels


def pruning_stats(trials: Sequence[FrozenTrial], *, max_epochs: int | None = None,
                  ) -> dict[str, Any]:
    """What pruning saved, counted in epochs (one intermediate value = one epoch).

    Keys: n_complete, n_pruned, n_failed, max_epochs, max_epochs_source, epochs_run,
    epochs_saved (sum over pruned trials of max_epochs - epochs reported), share_saved
    (epochs_saved / (epochs_run + epochs_saved)), epochs_saved_early_stopping (the same for
    complete trials that stopped early) and pruned_at ({epochs reported: n pruned trials}).
    ``max_epochs`` defaults to the most epochs any trial reported.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    source = "study settings"
    if max_epochs is None:
        max_epochs = max((len(t.intermediate_values) for t in complete + pruned), default=0)
        source = "most epochs reported by a trial"
    run = sum(len(t.intermediate_values) for t in complete + pruned)
    saved = sum(max(0, max_epochs - len(t.intermediate_values)) for t in pruned)
    early = sum(max(0, max_epochs - len(t.intermediate_values))
                for t in complete if t.intermediate_values)
    at: dict[int, int] = {}
    for t in pruned:
        at[len(t.intermediate_values)] = at.get(len(t.intermediate_values), 0) + 1
    return {"n_complete": len(complete), "n_pruned": len(pruned),
            "n_failed": sum(t.state == TrialState.FAIL for t in trials),
            "max_epochs": max_epochs, "max_epochs_source": source,
            "epochs_run": run, "epochs_saved": saved,
            "share_saved": saved / (run + saved) if run + saved else float("nan"),
            "epochs_saved_early_stopping": early,
            "pruned_at": {str(k): at[k] for k in sorted(at)}}


def learning_curves(trials: Sequence[FrozenTrial], param: str) -> dict[str, dict[str, Any]]:
    """Median and quartiles of the intermediate values per epoch, by the value of ``param``.

    Uses complete and pruned trials that have ``param``. Later epochs only hold trials that
    survived pruning (``n_at_epoch`` says how many), so the curves flatter late epochs.
    Numeric params with more than ``MAX_LEVELS`` values are grouped into quartile ranges.
    """
    use = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
           and t.intermediate_values and param in t.params]
    if not use:
        return {}
    labels, order = _levels(param, [t.params[param] for t in use], use)
    out: dict[str, dict[str, Any]] = {}
    for name in order:
        members = [t for t, lab in zip(use, labels, strict=True) if lab == name]
        if not members:
            continue
        steps = sorted(set().union(*(t.intermediate_values for t in members)))
        col = {s: j for j, s in enumerate(steps)}
        m = np.full((len(members), len(steps)), np.nan)
        for i, t in enumerate(members):
            for s, v in t.intermediate_values.items():
                m[i, col[s]] = v if math.isfinite(v) else np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an epoch where all diverged
            q25, med, q75 = np.nanquantile(m, [0.25, 0.5, 0.75], axis=0)
        out[name] = {"epochs": steps, "median": med.tolist(), "q25": q25.tolist(),
                     "q75": q75.tolist(), "n": len(members),
                     "n_at_epoch": np.isfinite(m).sum(axis=0).tolist()}
    return out


def _levels(param: str, xs: list[Any], trials: Sequence[FrozenTrial],
            ) -> tuple[list[str], list[str]]:
    """A group label for each raw value of ``param``, and all labels in display order."""
    distinct = set(xs)
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in distinct)
    if numeric and len(distinct) > MAX_LEVELS:
        labels, names = numeric_levels(xs)
        return [x or "" for x in labels], names
    # Categorical choices keep the order the space declares; numbers sort by value.
    dist = next((t.distributions[param] for t in trials if param in t.distributions), None)
    order: list[Any]
    if isinstance(dist, CategoricalDistribution):
        order = [c for c in dist.choices if c in distinct]
        order += [x for x in distinct if x not in order]
    else:
        order = sorted(distinct, key=lambda x: (not numeric, x if numeric else str(x)))
    return [label(x) for x in xs], [label(x) for x in order]
