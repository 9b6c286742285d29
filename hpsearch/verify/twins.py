"""Twins: a config and copies of it that differ in one question's param, for ``verify``.

The baseline is the config's own value of the param, except where the question needs
another: ``bn_placement`` compares before vs after (baseline "before" when the config has
no BN), ``batch_norm`` and ``dropout`` compare off vs on (the config's placement or rate;
"before" or 0.5 when it has none). A param the twin switches on gets the config's value if
it has one, else the middle of its range (``weight_penalty=l2`` with no ``l2``: the
geometric middle of the l2 range).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hpsearch.errors import ConfigError
from hpsearch.space import PARAM_BY_NAME, Question, TrialConfig, Value


def _provenance_part(prov: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    part = prov.get(key)
    return part if isinstance(part, Mapping) else {}


def allowed_choices(param: str, prov: Mapping[str, Any]) -> tuple[Value, ...]:
    """The choices of a categorical param the study's space allowed.

    A preset's narrowed choices when it narrowed them, else the full table's. A param
    the preset *fixed* allows the full table's choices: twins then differ from the fixed
    value, which is still a question worth a paired answer.
    """
    narrowed = _provenance_part(prov, "narrowed").get(param)
    if isinstance(narrowed, list) and len(narrowed) > 1:
        return tuple(narrowed)
    return PARAM_BY_NAME[param].choices


def _range(param: str, prov: Mapping[str, Any]) -> tuple[float, float]:
    p = PARAM_BY_NAME[param]
    narrowed = _provenance_part(prov, "narrowed").get(param)
    if isinstance(narrowed, list) and len(narrowed) == 2 and p.kind != "categorical":
        return float(narrowed[0]), float(narrowed[1])
    return p.low, p.high


def middle_value(param: str, prov: Mapping[str, Any]) -> Value:
    """A value for a param a twin switches on: the study's fixed value, else mid-range.

    Geometric middle for log-scaled params, arithmetic otherwise, on the param's step;
    categorical params keep their default.
    """
    fixed = _provenance_part(prov, "fixed")
    p = PARAM_BY_NAME[param]
    if param in fixed and fixed[param] != p.default:  # a fixed "off" (l2 = 0) would not switch on
        return fixed[param]  # type: ignore[no-any-return]
    if p.kind == "categorical":
        return p.default
    low, high = _range(param, prov)
    mid = math.sqrt(low * high) if p.log else (low + high) / 2
    if p.step:
        mid = round(round(mid / p.step) * p.step, 10)
    return int(round(mid)) if p.kind == "int" else float(mid)


def make_twin(best: TrialConfig, param: str, value: Value,
              prov: Mapping[str, Any]) -> TrialConfig:
    """``best`` with ``param = value``; params that only the change switches on get values.

    ``TrialConfig.replace`` resets params the change switches off; a param it switches on
    would otherwise keep its "off" default (l2 = 0 for ``weight_penalty=l2``, strength 0
    for an augmentation), making the twin a copy of the baseline in disguise.
    """
    twin = best.replace(**{param: value})
    for _ in range(len(PARAM_BY_NAME)):  # conditions can chain; each pass settles one level
        base = best.as_dict()
        fills: dict[str, Value] = {}
        for name, p in PARAM_BY_NAME.items():
            switched_on = p.active(twin.as_dict()) and not p.active(base)
            if switched_on and name != param and getattr(twin, name) == p.default:
                fills[name] = middle_value(name, prov)
        fills = {k: v for k, v in fills.items() if getattr(twin, k) != v}
        if not fills:
            break
        twin = twin.replace(**fills)
    return twin


def twin_values(question: Question, best: TrialConfig,
                prov: Mapping[str, Any]) -> tuple[Value, list[Value]]:
    """The baseline value of the question's param and the alternatives to compare with it."""
    param = question.param
    p = PARAM_BY_NAME[param]
    current: Value = getattr(best, param)
    off = question.off_value
    if p.kind != "categorical":  # dropout: the best rate vs off, or off vs a middle rate
        if off is None:
            raise ConfigError(f"question {question.id!r}: numeric param {param} needs an "
                              "off value to compare with")
        if current != off:
            return current, [off]
        low, high = _range(param, prov)
        on = 0.5 if low <= 0.5 <= high and low < high else middle_value(param, {})
        return off, [on]
    allowed = allowed_choices(param, prov)
    if question.id == "bn_placement":  # before vs after, whatever the best config has
        choices = [v for v in allowed if v != "none"]
        if len(choices) < 2:
            choices = [v for v in p.choices if v != "none"]
        baseline = current if current in choices else choices[0]
    elif off is not None:  # batch_norm: none vs the best's placement
        if current != off:
            return current, [off]
        on = next(v for v in (*allowed, *p.choices) if v != off)
        return off, [on]
    else:
        choices, baseline = list(allowed), current
    alternatives = [v for v in choices if v != baseline]
    if not alternatives:  # the study allowed one value only: compare with the whole table
        alternatives = [v for v in p.choices if v != baseline]
    return baseline, alternatives
