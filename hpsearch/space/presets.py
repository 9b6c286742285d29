"""Presets: TOML files (``studies/*.toml``, shipped in the package) and ``--set`` overrides.

A :class:`Preset` fixes or narrows params and may name the question a study is for.
Unknown names, impossible ranges and wrong types are errors that name file, key, allowed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError
from hpsearch.space.params import PARAM_BY_NAME, Param, Value
from hpsearch.space.questions import QUESTION_BY_ID

# ---------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """Fixed params, narrowed params, the study's question and its settings overrides.

    ``fixed`` maps a param to its one value; ``narrowed`` maps a param to a narrower
    :class:`Param` (fewer choices or a smaller range). ``settings`` are values for
    :class:`hpsearch.settings.Settings` fields (epochs, dataset, ...), checked there.
    """

    name: str = "full"
    question: str | None = None
    description: str = ""
    fixed: Mapping[str, Value] = field(default_factory=dict)
    narrowed: Mapping[str, Param] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    # The seed notebook's own values for params the preset searches (its ``[seed]`` table):
    # what the seed ran, where the seed says it. :meth:`at_seed` fixes them.
    seed: Mapping[str, Value] = field(default_factory=dict)
    # Where the seed's config gets the params the seed does not state: "drawn" (once, from
    # the preset's space) or "tuned" (the tuned study's best trial: for a seed that states
    # little beyond the value its claim is about, so its config is one that trains).
    seed_rest: str = "drawn"

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

    def at_seed(self, tuned: Mapping[str, Value] | None = None) -> Preset:
        """This preset with its ``[seed]`` values fixed: the seed's own config, as the seed
        ran it where the seed says. The params it does not name stay searched (drawn once
        by a one-trial study), or with ``seed_rest = "tuned"`` take ``tuned``'s values (the
        tuned study's best trial's params). The study's question stays open, so a study of
        it trains the seed's config under each choice."""
        if not self.seed:
            raise ConfigError(f"preset {self.name!r} has no [seed] table: the seed notebook's "
                              "own values are not known")
        rest: dict[str, Value] = {}
        if self.seed_rest == "tuned":
            if tuned is None:
                raise ConfigError(f"preset {self.name!r} takes the seed's unstated params "
                                  "from the tuned study's best trial: run that study first")
            asked = QUESTION_BY_ID[self.question].param if self.question else None
            rest = {k: v for k, v in tuned.items()
                    if k in PARAM_BY_NAME and k not in self.fixed and k != asked}
        fixed = {**self.fixed, **rest, **self.seed}
        narrowed = {k: v for k, v in self.narrowed.items() if k not in fixed}
        return dataclasses.replace(self, name=f"{self.name}-seed", fixed=fixed,
                                   narrowed=narrowed, seed={})


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


PRESET_KEYS = ("question", "description", "params", "settings", "seed", "seed_rest")
SEED_RESTS = ("drawn", "tuned")




def bundled_dir() -> Path:
    """The presets that ship with hpsearch: the package ``hpsearch.studies``, which
    pyproject.toml maps to the repository's ``studies/`` (a checkout, ``pip install -e``
    and an installed wheel all find them here)."""
    from importlib import resources

    return Path(str(resources.files("hpsearch.studies")))


def load_preset(path_or_name: str | Path) -> Preset:
    """Read a preset TOML: a path, or a bare name of a file in ``studies/``."""
    path = Path(path_or_name)
    if not path.exists() and path.suffix != ".toml" and "/" not in str(path_or_name):
        # A bare name: ./studies/ first (a user's own presets), then the bundled ones.
        path = next((d / f"{path_or_name}.toml" for d in (Path("studies"), bundled_dir())
                     if (d / f"{path_or_name}.toml").is_file()), path)
    if path.exists() and not path.is_file():  # a directory, a FIFO (reading it would block)
        raise ConfigError(f"preset {str(path_or_name)!r} is not a regular file; give a "
                          ".toml file")
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in bundled_dir().glob("*.toml"))) or "none"
        raise ConfigError(f"preset {str(path_or_name)!r} not found (bundled presets: {known})")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read preset {path}: {exc.strerror or exc}") from None
    return parse_preset(doc, name=path.stem, source=str(path))


def parse_preset(doc: Mapping[str, Any], *, name: str, source: str) -> Preset:
    """Validate a preset document (already parsed from TOML)."""
    unknown = sorted(set(doc) - set(PRESET_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(PRESET_KEYS)}")
    question = doc.get("question")
    if question is not None and not isinstance(question, str):
        raise ConfigError(f"{source}: question must be one question id (a string), not "
                          f"{type(question).__name__} {question!r}; known: "
                          f"{', '.join(QUESTION_BY_ID)}")
    if question is not None and question not in QUESTION_BY_ID:
        raise ConfigError(f"{source}: question = {question!r} is unknown; "
                          f"known: {', '.join(QUESTION_BY_ID)}")
    params, settings = doc.get("params", {}), doc.get("settings", {})
    seed_table = doc.get("seed", {})
    for key, table in (("params", params), ("settings", settings), ("seed", seed_table)):
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{key}] must be a table")
    fixed: dict[str, Value] = {}
    narrowed: dict[str, Param] = {}
    for key, value in params.items():
        _apply(key, value, fixed, narrowed, f"{source}: params.{key}")
    asked = QUESTION_BY_ID[question].param if question else None
    rest = doc.get("seed_rest", "drawn")
    if rest not in SEED_RESTS:
        raise ConfigError(f"{source}: seed_rest = {rest!r}; allowed: {', '.join(SEED_RESTS)}")
    return Preset(name=name, question=question, description=str(doc.get("description", "")),
                  fixed=fixed, narrowed=narrowed, settings=dict(settings),
                  seed=_seed_values(seed_table, narrowed, asked, source), seed_rest=rest)


def _seed_values(table: Mapping[str, Any], narrowed: Mapping[str, Param], asked: str | None,
                 source: str) -> dict[str, Value]:
    """The ``[seed]`` table: one value per param the preset searches (inside its range or
    choices); never the question's own param, which the study compares."""
    out: dict[str, Value] = {}
    for key, value in table.items():
        where = f"{source}: seed.{key}"
        if key == asked:
            raise ConfigError(f"{where}: {key} is the question's param; the seed's config is "
                              "trained under each of its choices")
        if key not in narrowed:
            raise ConfigError(f"{where}: {key} is not searched by this preset (only a "
                              f"searched param takes a seed value; searched: "
                              f"{', '.join(narrowed) or 'none'})")
        p = narrowed[key]
        v = _coerce(p, value, where)
        if p.kind != "categorical" and not (p.low <= float(v) <= p.high):  # type: ignore[arg-type]
            raise ConfigError(f"{where}: {key} = {value!r} is outside the preset's range "
                              f"[{p.low:g}, {p.high:g}]")
        out[key] = v
    return out
