"""Sampling a config: an Optuna trial (or anything with its ``suggest_*`` methods) in,
a frozen :class:`TrialConfig` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from hpsearch.space.params import PARAMS, TrialConfig, Value
from hpsearch.space.presets import Preset

# ---------------------------------------------------------------------------- sampling


class Suggester(Protocol):
    """The part of ``optuna.Trial`` that :func:`sample` uses."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False,
                      step: float | None = None) -> float: ...


def sample_config(trial: Suggester, preset: Preset | None = None) -> TrialConfig:
    """Sample one config: fixed params are not suggested, inactive ones keep "off"."""
    preset = preset or Preset()
    values: dict[str, Value] = {}
    for base in PARAMS:
        p = preset.param(base.name)
        if not p.active(values):
            values[p.name] = p.default
        elif p.name in preset.fixed:
            values[p.name] = preset.fixed[p.name]
        elif p.kind == "categorical":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log,
                                                 step=p.step)
    return TrialConfig(**values)  # type: ignore[arg-type]
