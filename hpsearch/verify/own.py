"""Verify through a user's objective: twins of its best params, re-run on the test split.

A study made with ``optimize --objective`` (or any Optuna study, given ``--objective``) has
params of its own. Its questions are its categorical params (every choice against the
best trial's); a twin is the trial's params with one of them switched, and a training is
one call of the objective through a :class:`~hpsearch.objectives.TrialView` of the twin's
params, with ``seed=`` the verify seed and ``split="test"``. A conditional param that the
switch brings in (``degree`` for ``kernel=poly`` when the best trial was ``rbf``) takes the
value of the best trial that has it; the training stores that, and the row says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from hpsearch import schema
from hpsearch.errors import ConfigError
from hpsearch.objectives import LoadedObjective, Params, accepts
from hpsearch.replay import rerun, trial_params
from hpsearch.settings import Settings, settings_from
from hpsearch.space import Question, Value
from hpsearch.verify.store import Training

# (trial number, rank, its own value, the baseline twin, the alternative twins)
Plan = tuple[int, int, Value, tuple[Value, Params], list[tuple[Value, Params]]]


def own_settings(study: optuna.Study) -> Settings:
    """The study's settings as stored (its seed, direction), or the defaults for a study
    that hpsearch did not make."""
    stored = schema.stored_settings(study)
    known = {"seed", "objective", "direction"}
    base = {k: v for k, v in (stored or {}).items() if k in known}
    base["direction"] = study.direction.name.lower()
    return settings_from(base, source="study provenance")


def categorical_params(trials: Sequence[FrozenTrial]) -> dict[str, tuple[Any, ...]]:
    """Every categorical param the finished trials suggested with two choices or more."""
    out: dict[str, tuple[Any, ...]] = {}
    for t in trials:
        for p, d in t.distributions.items():
            if isinstance(d, CategoricalDistribution) and len(d.choices) >= 2:
                out.setdefault(p, tuple(d.choices))
    return out


def own_questions(study: optuna.Study, question: str | None) -> list[Question]:
    finished = study.get_trials(deepcopy=False,
                                states=(TrialState.COMPLETE, TrialState.PRUNED))
    params = categorical_params(finished)
    if question is not None:
        if question not in params:
            every = {p for t in finished for p in t.params}
            what = ("is not categorical: verify compares a categorical param's choices"
                    if question in every else "is not a param its objective suggests")
            shown = ", ".join(params) or "none"
            raise ConfigError(f"--question {question}: in study {study.study_name!r} it {what} "
                              f"(its categorical params: {shown})")
        return [_question(question)]
    if not params:
        raise ConfigError(f"study {study.study_name!r}: its objective suggests no categorical "
                          "param with two choices or more, so there are no twins to compare")
    return [_question(p) for p in params]


def _question(param: str) -> Question:
    return Question(param, param, f"Which {param}?", "", kind="choice")


def own_plan(q: Question, trials: Sequence[FrozenTrial], study: optuna.Study) -> list[Plan]:
    """Per top trial that has the question's param: the trial as found and its twins with
    each other choice."""
    choices = categorical_params(study.get_trials(deepcopy=False))[q.param]
    plans = []
    for rank, t in enumerate(trials):
        best = trial_params(t)
        if q.param not in best.as_dict():
            continue  # this config never asks for the param: nothing to switch
        current: Value = best.as_dict()[q.param]
        twins: list[tuple[Value, Params]] = [(v, best.replace(**{q.param: v}))
                                             for v in choices if v != current]
        plans.append((t.number, rank, current, (current, best), twins))
    if not plans:
        raise ConfigError(f"--question {q.param}: none of the top trials suggested it "
                          "(a conditional param); try --top-k with more trials")
    return plans


class ObjectiveMeasure:
    """Verify's trainings through a user's objective: one call per (twin, seed)."""

    def __init__(self, loaded: LoadedObjective, fallback: Mapping[str, tuple[Any, int]],
                 split: str = "test") -> None:
        self.loaded, self.fallback, self.split = loaded, dict(fallback), split
        self.takes = accepts(loaded.fn)

    def __call__(self, trainings: Sequence[Training], data: Any,
                 ) -> Iterator[tuple[float, dict[str, Any]]]:
        for t in trainings:
            yield self.one(t.config.as_dict(), t.seed)

    def one(self, params: Mapping[str, Any], seed: int) -> tuple[float, dict[str, Any]]:
        return rerun(self.loaded, params, seed=seed, split=self.split,
                     fallback=self.fallback, takes=self.takes)


def filled_text(note: Mapping[str, Any]) -> dict[str, str]:
    """``{"degree": "3 (from trial #7, the best that has it)"}`` from a training's note."""
    filled = note.get("filled") if isinstance(note, Mapping) else None
    if not isinstance(filled, Mapping):
        return {}
    return {k: f"{v.get('value')!r} (from trial #{v.get('trial')}, the best that has it)"
            if v.get("trial", -1) >= 0 else
            f"{v.get('value')!r} (the middle of its range: no finished trial has it)"
            for k, v in filled.items() if isinstance(v, Mapping)}
