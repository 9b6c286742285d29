"""Sampling a config: an Optuna trial (or anything with its ``suggest_*`` methods) in,
a frozen :class:`TrialConfig` out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hpsearch.space.params import PARAMS, TrialConfig, Value
from hpsearch.space.presets import Preset, load_preset, parse_preset

# ---------------------------------------------------------------------------- sampling


class Suggester(Protocol):
    """The part of ``optuna.Trial`` that :func:`sample` uses."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False,
                      step: float | None = None) -> float: ...


def sample_config(trial: Suggester, preset: Preset | None = None, *,
                  arms: tuple[str, Sequence[Value]] | None = None) -> TrialConfig:
    """Sample one config: fixed params are not suggested, inactive ones keep "off".

    ``arms`` (a param and its values: the paired design, which trains the config under each)
    samples every param that is active under any of those values, so each arm has what it
    needs: the l2 strength of a weight_penalty=l2 arm, the gamma of a step-scheduler arm.
    The config holds the first value; ``cfg.replace(param=value)`` makes each arm's (it
    resets what that value turns off: the none arm trains with l2 = 0).
    """
    preset = preset or Preset()
    values: dict[str, Value] = {}
    for base in PARAMS:
        p = preset.param(base.name)
        if not (p.active(values) or (arms is not None and any(
                p.active({**values, arms[0]: v}) for v in arms[1]))):
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


def suggest_config(trial: Suggester, fixed: Mapping[str, Any] | None = None, *,
                   preset: Preset | str | None = None) -> TrialConfig:
    """Sample hpsearch's regularization space into a config, from an Optuna trial.

    The public face of :func:`sample_config` for a user's own objective. ``fixed`` maps a
    param to one value (``{"model": "cnn"}``), a list of choices (``{"optimizer": ["adam",
    "sgd"]}``) or a range (``{"lr": {"low": 1e-3, "high": 1e-2}}``), as a preset's
    ``[params]`` table does; ``preset`` is a :class:`Preset` or a preset's name or path,
    applied first. The trial's params get hpsearch's names, so ``hpsearch report`` asks
    its questions of the study.
    """
    base = load_preset(preset) if isinstance(preset, str) else preset or Preset()
    if fixed:
        extra = parse_preset({"params": dict(fixed)}, name=base.name, source="fixed")
        base = Preset(name=base.name, question=base.question, description=base.description,
                      fixed={**{k: v for k, v in base.fixed.items() if k not in extra.narrowed},
                             **extra.fixed},
                      narrowed={**{k: v for k, v in base.narrowed.items()
                                   if k not in extra.fixed}, **extra.narrowed},
                      settings=base.settings)
    return sample_config(trial, base)
