"""The search space as data: one table of params, the questions, presets and sampling.

Everything that knows which params exist reads :data:`PARAMS`; nothing else calls
``trial.suggest_*``. A :class:`Preset` fixes or narrows params and may name the question a
study is for; :func:`sample` turns an Optuna trial (or any object with the same
``suggest_*`` methods) into a frozen :class:`TrialConfig`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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


@dataclass(frozen=True)
class Question:
    """A question the report answers about one param (the design's "Questions" table)."""

    id: str
    param: str
    title: str
    seed_claim: str
    # For binary questions: the param's "off" value; every other value is grouped as "on".
    off_value: Value | None = None


QUESTIONS: tuple[Question, ...] = (
    Question("bn_placement", "batch_norm", "Batch norm before or after the activation?",
             "000: before the activation did better on MNIST"),
    Question("batch_norm", "batch_norm", "Batch norm or none?",
             "002: BN 97.8% vs none 94.1% after 10 epochs of SGD", off_value="none"),
    Question("activation", "activation", "Which activation?",
             "003: ReLU + dropout beats sigmoid + dropout"),
    Question("dropout", "dropout", "Does dropout help?",
             "003/004: may hurt on MNIST unless trained longer", off_value=0.0),
    Question("weight_penalty", "weight_penalty", "L1, L2, both or none?",
             "004: weight_decay=0.1 destroyed accuracy"),
    Question("init", "init", "Which weight init?", "004: He init for ReLU"),
    Question("scheduler", "scheduler", "Which LR schedule?", "004: schedulers compared"),
    Question("optimizer", "optimizer", "Which optimizer?", "004: optimizers compared"),
    Question("augmentation", "augmentation", "Which augmentation?",
             "004: flip is wrong for digits: does the study find that?"),
    Question("input_norm", "input_norm", "Which input normalization?",
             "004: normalization compared"),
)
QUESTION_BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}


# ---------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """Fixed params, narrowed params, the study's question and its settings overrides.

    ``fixed`` maps a param to its one value; ``narrowed`` maps a param to a narrower
    :class:`Param` (fewer choices or a smaller range). ``settings`` are values for
    :class:`hpsearch.optimize.Settings` fields (epochs, dataset, ...), checked there.
    """

    name: str = "full"
    question: str | None = None
    description: str = ""
    fixed: Mapping[str, Value] = field(default_factory=dict)
    narrowed: Mapping[str, Param] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Param:
        return self.narrowed.get(name, PARAM_BY_NAME[name])

    def with_overrides(self, assignments: Sequence[str], source: str = "--set") -> Preset:
        """Apply ``--set name=value`` strings (``a,b`` narrows choices, ``lo..hi`` a range)."""
        fixed, narrowed = dict(self.fixed), dict(self.narrowed)
        for text in assignments:
            name, sep, raw = text.partition("=")
            name = name.strip()
            if not sep or not raw.strip():
                raise ConfigError(f"{source} {text!r}: expected PARAM=VALUE, "
                                  "e.g. batch_norm=before")
            fixed.pop(name, None)
            narrowed.pop(name, None)
            _apply(name, _parse_cli_value(raw.strip()), fixed, narrowed, f"{source} {text!r}")
        return dataclasses.replace(self, fixed=fixed, narrowed=narrowed)


def _parse_cli_value(raw: str) -> Any:
    if ".." in raw:
        lo, _, hi = raw.partition("..")
        return {"low": _scalar(lo), "high": _scalar(hi)}
    if "," in raw:
        return [_scalar(part) for part in raw.split(",")]
    return _scalar(raw)


def _scalar(text: str) -> Value:
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _coerce(p: Param, value: Any, where: str) -> Value:
    """Check one value against a param and return it in the param's type."""
    if p.kind == "categorical":
        for choice in p.choices:
            if value == choice and type(value) is type(choice):
                return choice
        raise ConfigError(f"{where}: {p.name} = {value!r} is not allowed; "
                          f"choose from {', '.join(repr(c) for c in p.choices)}")
    ok_types: tuple[type, ...] = (int,) if p.kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        what = "an integer" if p.kind == "int" else "a number"
        raise ConfigError(f"{where}: {p.name} must be {what} in [{p.low:g}, {p.high:g}], "
                          f"got {value!r}")
    base = PARAM_BY_NAME[p.name]
    number = float(value)  # type: ignore[arg-type]  # checked just above
    # 0 is the "off" value of a log-scaled penalty and is allowed as a fixed value.
    if not (base.low <= number <= base.high or (number == 0 and base.default == 0)):
        raise ConfigError(f"{where}: {p.name} = {value!r} is outside "
                          f"[{base.low:g}, {base.high:g}]")
    return int(number) if p.kind == "int" else number


def _apply(name: str, value: Any, fixed: dict[str, Value], narrowed: dict[str, Param],
           where: str) -> None:
    if name not in PARAM_BY_NAME:
        raise ConfigError(f"{where}: unknown param {name!r}; known: {', '.join(PARAM_BY_NAME)}")
    p = PARAM_BY_NAME[name]
    if isinstance(value, list):
        if p.kind != "categorical":
            raise ConfigError(f"{where}: {name} is numeric; give one value or "
                              "{ low = ..., high = ... }")
        if not value:
            raise ConfigError(f"{where}: {name} has an empty list of choices")
        choices = tuple(dict.fromkeys(_coerce(p, v, where) for v in value))
        if len(choices) == 1:
            fixed[name] = choices[0]
        else:
            narrowed[name] = dataclasses.replace(p, choices=choices)
    elif isinstance(value, dict):
        if p.kind == "categorical" or set(value) != {"low", "high"}:
            raise ConfigError(f"{where}: a range for {name} needs exactly low and high"
                              if p.kind != "categorical" else
                              f"{where}: {name} is categorical; give a value or a list of choices")
        low, high = _coerce(p, value["low"], where), _coerce(p, value["high"], where)
        if float(low) > float(high) or (p.log and float(low) <= 0):
            raise ConfigError(f"{where}: {name} range low={low!r} high={high!r} is empty or "
                              "inverted (log ranges need low > 0)")
        if low == high:
            fixed[name] = low
        else:
            narrowed[name] = dataclasses.replace(p, low=float(low), high=float(high))
    else:
        fixed[name] = _coerce(p, value, where)


PRESET_KEYS = ("question", "description", "params", "settings")
STUDIES_DIR = Path(__file__).resolve().parent.parent / "studies"


def load_preset(path_or_name: str | Path) -> Preset:
    """Read a preset TOML: a path, or a bare name of a file in ``studies/``."""
    path = Path(path_or_name)
    if not path.exists() and path.suffix != ".toml" and "/" not in str(path_or_name):
        # A bare name: ./studies/ first (a user's own presets), then the bundled ones.
        path = next((d / f"{path_or_name}.toml" for d in (Path("studies"), STUDIES_DIR)
                     if (d / f"{path_or_name}.toml").is_file()), path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in STUDIES_DIR.glob("*.toml"))) or "none"
        raise ConfigError(f"preset {str(path_or_name)!r} not found (bundled presets: {known})")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_preset(doc, name=path.stem, source=str(path))


def parse_preset(doc: Mapping[str, Any], *, name: str, source: str) -> Preset:
    """Validate a preset document (already parsed from TOML)."""
    unknown = sorted(set(doc) - set(PRESET_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(PRESET_KEYS)}")
    question = doc.get("question")
    if question is not None and question not in QUESTION_BY_ID:
        raise ConfigError(f"{source}: question = {question!r} is unknown; "
                          f"known: {', '.join(QUESTION_BY_ID)}")
    params, settings = doc.get("params", {}), doc.get("settings", {})
    for key, table in (("params", params), ("settings", settings)):
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{key}] must be a table")
    fixed: dict[str, Value] = {}
    narrowed: dict[str, Param] = {}
    for key, value in params.items():
        _apply(key, value, fixed, narrowed, f"{source}: params.{key}")
    return Preset(name=name, question=question, description=str(doc.get("description", "")),
                  fixed=fixed, narrowed=narrowed, settings=dict(settings))


# ---------------------------------------------------------------------------- sampling


class Suggester(Protocol):
    """The part of ``optuna.Trial`` that :func:`sample` uses."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False,
                      step: float | None = None) -> float: ...


def sample(trial: Suggester, preset: Preset | None = None) -> TrialConfig:
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


def describe_space(preset: Preset | None = None) -> list[dict[str, str]]:
    """Rows for printing the (preset-narrowed) space: name, values, condition."""
    preset = preset or Preset()
    rows = []
    for base in PARAMS:
        p = preset.param(base.name)
        if p.name in preset.fixed:
            values = f"= {preset.fixed[p.name]!r}"
        elif p.kind == "categorical":
            values = ", ".join(str(c) for c in p.choices)
        else:
            values = f"{p.low:g}–{p.high:g}" + (" (log)" if p.log else "")
        when = "; ".join(f"{k} in {', '.join(map(str, v))}" for k, v in p.when) or "always"
        rows.append({"param": p.name, "values": values, "when": when})
    return rows
