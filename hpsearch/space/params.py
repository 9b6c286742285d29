"""The search space as data: one table of params and the frozen config a trial gets.

Everything that knows which params exist reads :data:`PARAMS`; nothing else calls
``trial.suggest_*`` (that is :func:`hpsearch.space.suggest.sample_config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpsearch.errors import ConfigError

Value = str | int | float | bool


@dataclass(frozen=True)
class Param:
    """One row of the search-space table.

    ``choices`` for categorical params, ``low``/``high`` (and ``log``) for numeric ones.
    ``when`` makes the param conditional: it is sampled only when every named param has one
    of the listed values; otherwise the config keeps ``default`` (which means "off").
    """

    name: str
    kind: str  # "categorical" | "int" | "float"
    default: Value
    choices: tuple[Value, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None  # discrete floats: dropout rates 0.0, 0.1, ... make "off" a value
    when: tuple[tuple[str, tuple[Value, ...]], ...] = ()
    help: str = ""

    def active(self, values: Mapping[str, Value]) -> bool:
        return all(values.get(name) in allowed for name, allowed in self.when)

    def distribution(self) -> Any:
        """The Optuna distribution this param is sampled from (for planted studies)."""
        from optuna import distributions as d

        if self.kind == "categorical":
            return d.CategoricalDistribution(self.choices)
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)


def _cat(name: str, choices: Sequence[Value], default: Value, help: str = "",
         **when: Any) -> Param:
    return Param(name, "categorical", default, choices=tuple(choices), help=help,
                 when=tuple((k, tuple(v)) for k, v in when.items()))


def _num(name: str, kind: str, low: float, high: float, default: Value, *, log: bool = False,
         step: float | None = None, help: str = "", **when: Any) -> Param:
    return Param(name, kind, default, low=low, high=high, log=log, step=step, help=help,
                 when=tuple((k, tuple(v)) for k, v in when.items()))


# The design's table, in sampling order: a param's conditions only name params above it.
# Defaults are what an inactive param means ("off"), chosen so that a TrialConfig built
# from defaults alone is seed 000's MLP without dropout.
PARAMS: tuple[Param, ...] = (
    _cat("model", ["mlp", "cnn"], "mlp", "MLP (seeds 000-003) or the seed-004 CNN"),
    _num("hidden_layers", "int", 1, 4, 2, model=["mlp"], help="hidden Linear layers"),
    _num("hidden_units", "int", 64, 1024, 512, log=True, model=["mlp"],
         help="width of the first hidden layer"),
    _cat("taper", ["constant", "halve"], "halve", "halve: 512-256 as in the seeds",
         model=["mlp"]),
    _cat("cnn_channels", [8, 16, 32], 16, "first conv's channels; doubles per block",
         model=["cnn"]),
    _num("cnn_fc_units", "int", 64, 256, 100, model=["cnn"], help="CNN's hidden FC width"),
    _cat("activation", ["relu", "sigmoid", "tanh", "leaky_relu", "gelu"], "relu"),
    _cat("batch_norm", ["none", "before", "after"], "none",
         "BN before (Linear->BN->act) or after (Linear->act->BN) the activation"),
    # Steps of 0.1 make 0 ("off") a value the sampler can draw, so the report can compare
    # dropout off vs on; a continuous range would almost never give exactly 0.
    _num("dropout", "float", 0.0, 0.7, 0.0, step=0.1,
         help="dropout rate after each hidden block"),
    _num("dropout2d", "float", 0.0, 0.5, 0.0, step=0.1, model=["cnn"],
         help="Dropout2d per conv block"),
    _cat("weight_penalty", ["none", "l2", "l1", "l1_l2"], "none"),
    _num("l2", "float", 1e-6, 1e-1, 0.0, log=True, weight_penalty=["l2", "l1_l2"],
         help="weight decay of the optimizer"),
    _num("l1", "float", 1e-7, 1e-3, 0.0, log=True, weight_penalty=["l1", "l1_l2"],
         help="L1 penalty added to the loss"),
    _cat("init", ["default", "normal", "xavier", "kaiming"], "default"),
    _cat("input_norm", ["none", "standardize", "minmax"], "none"),
    _cat("augmentation", ["none", "shift", "affine", "resized_crop", "flip"], "none"),
    _num("aug_strength", "float", 0.0, 1.0, 0.0,
         augmentation=["shift", "affine", "resized_crop", "flip"]),
    _cat("optimizer", ["sgd", "adagrad", "rmsprop", "adam", "adamw"], "sgd"),
    _num("lr", "float", 1e-4, 1e-1, 0.01, log=True),
    _num("momentum", "float", 0.0, 0.99, 0.0, optimizer=["sgd", "rmsprop"]),
    _cat("nesterov", [False, True], False, optimizer=["sgd"]),
    _cat("scheduler", ["none", "step", "multistep", "exponential", "cosine", "onecycle"], "none"),
    _num("lr_gamma", "float", 0.1, 0.99, 0.1, scheduler=["step", "multistep", "exponential"]),
    _cat("batch_size", [32, 64, 128, 256, 512], 64),
    _num("label_smoothing", "float", 0.0, 0.2, 0.0),
)


PARAM_BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


@dataclass(frozen=True)
class TrialConfig:
    """Every sampled param of one trial; inactive params hold their "off" default."""

    model: str = "mlp"
    hidden_layers: int = 2
    hidden_units: int = 512
    taper: str = "halve"
    cnn_channels: int = 16
    cnn_fc_units: int = 100
    activation: str = "relu"
    batch_norm: str = "none"
    dropout: float = 0.0
    dropout2d: float = 0.0
    weight_penalty: str = "none"
    l2: float = 0.0
    l1: float = 0.0
    init: str = "default"
    input_norm: str = "none"
    augmentation: str = "none"
    aug_strength: float = 0.0
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    scheduler: str = "none"
    lr_gamma: float = 0.1
    batch_size: int = 64
    label_smoothing: float = 0.0

    def hidden_widths(self) -> list[int]:
        """MLP widths: ``taper="halve"`` gives 512-256 for 2 layers of 512 (seed 000)."""
        if self.taper == "constant":
            return [self.hidden_units] * self.hidden_layers
        return [max(8, self.hidden_units >> i) for i in range(self.hidden_layers)]

    def as_dict(self) -> dict[str, Value]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Value) -> TrialConfig:
        """A copy with ``changes`` applied and inactive params reset to "off"."""
        return config_from_params({**self.as_dict(), **changes})


assert [f.name for f in dataclasses.fields(TrialConfig)] == [p.name for p in PARAMS]


def config_from_params(params: Mapping[str, Any]) -> TrialConfig:
    """Build a config from a (possibly partial) params dict, e.g. ``trial.params``.

    Missing params take their default; params whose conditions do not hold are reset to
    their default, so two configs that train identically compare equal.
    """
    unknown = sorted(set(params) - set(PARAM_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown param(s) {', '.join(unknown)}; "
                          f"known: {', '.join(PARAM_BY_NAME)}")
    values: dict[str, Value] = {}
    for p in PARAMS:
        values[p.name] = params.get(p.name, p.default) if p.active(values) else p.default
    return TrialConfig(**values)  # type: ignore[arg-type]


def active_params(params: Mapping[str, Any]) -> dict[str, Value]:
    """Only the params that mean something for this config (e.g. no cnn_* for an MLP)."""
    cfg = config_from_params(params).as_dict()
    out: dict[str, Value] = {}
    for p in PARAMS:
        if p.active(out):
            out[p.name] = cfg[p.name]
    return out
