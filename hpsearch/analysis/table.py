"""The evidence a study holds: every finished trial, at every fidelity it reached.

A complete trial has its objective value; a pruned one has the values it reported before
pruning stopped it. Both count. What a trial "has" at epoch ``e`` is its best value so far
(the objective hpsearch reports is the best epoch's accuracy, with that epoch's weights
kept), and a complete trial that stopped early keeps its value at every later epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

FINAL = 0  # the fidelity level "end of training" (epochs are 1-based)


@dataclass
class TrialTable:
    """Finished trials (objective 0) and the values they reached, in the report's unit."""

    trials: list[FrozenTrial]
    curves: list[dict[int, float]]   # epoch -> best value so far, in `unit`
    final: np.ndarray                # objective value of complete trials; nan when pruned
    last_epoch: np.ndarray           # last epoch reported (0: none)
    sign: float                      # +1 when larger is better
    scale: float                     # 100 for accuracies (maximized, in [0, 1]), else 1
    unit: str                        # "pts" or "units"

    @property
    def complete(self) -> np.ndarray:
        return np.isfinite(self.final)

    def __len__(self) -> int:
        return len(self.trials)

    def levels(self) -> list[int]:
        """The fidelities to analyse: the epoch every trial reached, then each epoch where
        pruning stopped some trials, then FINAL.

        With no pruned trial (or none that reported a value) there is only FINAL.
        """
        pruned = self.last_epoch[~self.complete]
        if pruned.size == 0:
            return [FINAL]
        first = int(pruned.min())
        return [first, *sorted({int(e) for e in pruned if e > first}), FINAL]

    def early_epochs(self, most: int = 6) -> list[int]:
        """Epochs before the common fidelity (``levels()[0]``; the last epoch when nothing
        was pruned) that every trial reported: the effect over training is shown there
        too, each from its own fit, while a verdict never uses them. At most ``most``,
        spread evenly, so a long study costs a bounded number of fits."""
        if not len(self) or not all(self.curves):
            return []
        first = self.levels()[0]
        limit = int(self.last_epoch.min()) if first == FINAL else first
        shared = set.intersection(*(set(c) for c in self.curves))
        early = sorted(e for e in shared if e < limit)
        if len(early) > most:
            picks = np.linspace(0, len(early) - 1, most).round().astype(int)
            early = [early[i] for i in sorted(set(picks.tolist()))]
        return early

    def value_at(self, level: int) -> np.ndarray:
        """Each trial's value at ``level`` (nan where it did not get that far)."""
        out = np.full(len(self), np.nan)
        for i, (curve, fin, last) in enumerate(zip(self.curves, self.final, self.last_epoch,
                                                   strict=True)):
            if math.isfinite(fin) and (level == FINAL or last <= level):
                out[i] = fin
            elif level != FINAL and last >= level:
                reached = [e for e in curve if e <= level]
                out[i] = curve[max(reached)] if reached else np.nan
        return out


def finished_table(trials: Sequence[FrozenTrial], direction: StudyDirection) -> TrialTable:
    """Complete trials with a finite objective 0, and pruned trials that reported a value."""
    sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
    kept, curves, final, last = [], [], [], []
    for t in trials:
        raw = {int(e): float(v) for e, v in sorted(t.intermediate_values.items())
               if v is not None and math.isfinite(v)}
        if t.state == TrialState.COMPLETE and t.values and math.isfinite(t.values[0]):
            value = float(t.values[0])
        elif t.state == TrialState.PRUNED and raw:
            value = math.nan
        else:
            continue
        best, curve = -math.inf, {}
        for e, v in raw.items():  # best so far, in the direction of the study
            best = max(best, sign * v)
            curve[e] = sign * best
        kept.append(t)
        curves.append(curve)
        final.append(value)
        last.append(max(raw, default=0))
    values = [v for c in curves for v in c.values()] + [v for v in final if math.isfinite(v)]
    # Accuracy points only for a maximized objective in [0, 1]; a minimized one is a loss or
    # an error (its own units, not "points" of accuracy).
    pts = sign > 0 and bool(values) and all(0.0 <= v <= 1.0 for v in values)
    scale, unit = (100.0, "pts") if pts else (1.0, "units")
    return TrialTable(
        trials=kept, curves=[{e: v * scale for e, v in c.items()} for c in curves],
        final=np.asarray(final, dtype=float) * scale, last_epoch=np.asarray(last, dtype=int),
        sign=sign, scale=scale, unit=unit)
