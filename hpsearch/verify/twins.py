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
from hpsearch.space import PARAM_BY_NAME, QUESTIONS, Question, TrialConfig, Value


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


# ---------------------------------------------------------------------------- factorial twins


def factor_levels(param: str, best: TrialConfig,
                  prov: Mapping[str, Any]) -> tuple[Value, list[Value]]:
    """The levels an interaction compares for one param: a reference and the others.

    A param with an "off" value (dropout, batch_norm): off vs on (the config's rate or
    placement; else the middle of the range, or the first allowed placement). Another
    categorical param: the config's value vs the other allowed choices. A numeric param
    (lr): the config's value vs one decade away (log scale; half the range otherwise),
    inside the study's range.
    """
    p = PARAM_BY_NAME[param]
    current: Value = getattr(best, param)
    off = next((q.off_value for q in QUESTIONS if q.param == param and q.off_value is not None),
               None)
    if off is not None:
        if current != off:
            return off, [current]
        if p.kind == "categorical":
            return off, [next(v for v in (*allowed_choices(param, prov), *p.choices)
                              if v != off)]
        return off, [middle_value(param, prov)]
    if p.kind == "categorical":
        others = [v for v in allowed_choices(param, prov) if v != current]
        return current, others or [v for v in p.choices if v != current]
    low, high = _range(param, prov)
    x = float(current)
    if p.log:
        candidates = [x * 10, x / 10]
        far = high if math.log(high / x) >= math.log(x / low) else low
    else:
        candidates = [x + (high - low) / 2, x - (high - low) / 2]
        far = high if high - x >= x - low else low
    other = next((c for c in candidates if low <= c <= high), far)
    if p.step:
        other = round(round(other / p.step) * p.step, 10)
    value: Value = int(round(other)) if p.kind == "int" else float(other)
    if value == current:
        raise ConfigError(f"{param}: the study's range has no second level to compare")
    return current, [value]


def factorial_cells(params: tuple[str, str], best: TrialConfig, prov: Mapping[str, Any],
                    ) -> list[tuple[tuple[Value, Value], tuple[Value, Value],
                                    dict[tuple[int, int], TrialConfig]]]:
    """The 2x2 factorial twins of ``best`` for each other level of the second param (2xk).

    Per contrast: A's levels ``(a0, a1)``, B's levels ``(b0, b1)`` and the cells
    ``{(i, j): best with A = a_i and B = b_j}`` (each composed of two :func:`make_twin`
    switches, B first). A's levels are :func:`factor_levels`' reference and its first other
    level; B's reference is paired with each of its other levels.
    """
    pa, pb = params
    a0, a_others = factor_levels(pa, best, prov)
    a = (a0, a_others[0])
    b0, b_others = factor_levels(pb, best, prov)
    out = []
    for b1 in b_others:
        b = (b0, b1)
        cells = {(i, j): make_twin(make_twin(best, pb, b[j], prov), pa, a[i], prov)
                 for i in (0, 1) for j in (0, 1)}
        if len(set(cells.values())) != 4:
            raise ConfigError(f"{pa} x {pb}: the factorial twins of this config are not four "
                              f"different configs ({pa} in {a}, {pb} in {b})")
        out.append((a, b, cells))
    return out
