"""Which objective of a multi-objective study an analysis is about.

The verdicts, importances and figures answer one objective at a time: a study with several
(accuracy and latency, say) has no "best value" or effect until one of them is chosen.
:func:`one_objective` names it, by its index or by the name the study gave it with
``study.set_metric_names``, and returns the study as seen through it (an in-memory copy
whose trials have that one value), so the analysis reads it like any study.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from hpsearch.errors import ConfigError


def objective_labels(study: optuna.Study) -> list[str]:
    """``0 (accuracy, maximize)`` for each objective of ``study``."""
    given: list[str] = study.metric_names or []
    names: list[str | None] = [*given] or [None] * len(study.directions)
    return [f"{i} ({f'{n}, ' if n else ''}{d.name.lower()})"
            for i, (n, d) in enumerate(zip(names, study.directions, strict=True))]


def objective_index(study: optuna.Study, which: int | str | None) -> int | None:
    """The index of objective ``which`` (an index, or a name from ``set_metric_names``;
    None: the only one). Raises :class:`ConfigError` with the study's objectives listed
    when ``which`` is none of them, or is None for a study with several."""
    n = len(study.directions)
    names = study.metric_names or []
    listed = ", ".join(objective_labels(study))
    if which is None:
        if n == 1:
            return None
        how = "--metric NAME or --metric N" if names else "--metric N"
        raise ConfigError(f"study {study.study_name!r} has {n} objectives ({listed}): choose "
                          f"the one to analyse with {how}")
    text = str(which).strip()
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < n:
        return int(text)
    raise ConfigError(f"--metric {which!r}: study {study.study_name!r} has "
                      f"{'objective' if n == 1 else f'{n} objectives'} {listed}; give an "
                      "index" + (" or a name" if names else ""))


def one_objective(study: optuna.Study, which: int | str | None,
                  ) -> tuple[optuna.Study, str | None]:
    """``study`` seen through objective ``which`` (see :func:`objective_index`), and a note
    that says which one it is (None for a single-objective study, returned as it is)."""
    i = objective_index(study, which)
    if i is None or len(study.directions) == 1:
        return study, None
    view = optuna.create_study(study_name=study.study_name, direction=study.directions[i])
    for key, value in study.user_attrs.items():
        view.set_user_attr(key, value)
    view.add_trials([_projected(t, i) for t in study.get_trials(deepcopy=False)])
    note = (f"multi-objective study: this report is about objective "
            f"{objective_labels(study)[i]}, one of {len(study.directions)} (--metric picks "
            "another); trade-offs between them are not analysed")
    return view, note


def _projected(t: FrozenTrial, i: int) -> FrozenTrial:
    values = t.values
    return FrozenTrial(
        number=t.number, state=t.state, value=None,
        values=None if values is None else [values[i]],
        datetime_start=t.datetime_start, datetime_complete=t.datetime_complete,
        params=t.params, distributions=t.distributions, user_attrs=t.user_attrs,
        system_attrs=t.system_attrs, intermediate_values=t.intermediate_values,
        trial_id=t._trial_id)
