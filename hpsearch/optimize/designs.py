"""Study designs: a study named for a question assigns that question's param by design.

Left to the sampler, the param a study exists for is starved (TPE gave ``bn_placement``'s
"before" 2 trials of 30), confounded with the params it came with, and answerable only
with the word "associated". Two designs make the study an experiment for its question
while the sampler still searches every other param:

- **balanced**: each trial gets one of the question's choices by permuted blocks (every
  block of k consecutive trial numbers holds each choice once, in a seeded random order),
  independently of everything the sampler knows. The sampler draws the other params
  before it sees the assignment of the trial at hand, so the choices are compared on the
  same distribution of configs: a randomized experiment, and the verdict says "matters".
- **paired**: each sampled config is trained under *every* choice with the same training
  seed, epoch by epoch in lockstep, and pruned together (the pruner sees the arms' mean, so
  both arms go on or both stop): the comparison is a paired difference per config, which
  cancels the config-to-config variance that dominates a study.

Which assignment a trial got is recorded per trial in the user attr ``design``
(``{"design", "question", "param", "value"}``; a paired trial has ``"arms"`` instead of
``"value"`` and its per-arm curves in the user attr ``arms``). The sampler only ever sees
the first arm's value for a paired trial's param.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from hpsearch import schema
from hpsearch.errors import ConfigError
from hpsearch.optuna_private import set_trial_user_attr
from hpsearch.settings import DESIGNS
from hpsearch.space import QUESTION_BY_ID, Preset, Value

# What a study named for a question gets when no --design is given: the design that
# settles its question with the fewest trainings (scripts/compare_designs.py, planted
# studies of equal training cost; docs/designs.md).
DEFAULT_DESIGN = "paired"


@dataclass(frozen=True)
class Arms:
    """The choices of ``param`` that a study for ``question`` compares, by design."""

    design: str
    question: str
    param: str
    values: tuple[Value, ...]

    def record(self, value: Value | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"design": self.design, "question": self.question,
                               "param": self.param}
        if value is None:
            out["arms"] = list(self.values)
        else:
            out["value"] = value
        return out


def resolve_design(design: str | None, question: str | None) -> str:
    """The design a study runs: none without a question; the default with one."""
    if design is not None and design not in DESIGNS:
        raise ConfigError(f"--design {design!r} is unknown; choose from {', '.join(DESIGNS)}")
    if question is None:
        if design not in (None, "none"):
            raise ConfigError(f"--design {design} needs a question: name one with "
                              "--question ID or a preset that names one")
        return "none"
    return design or DEFAULT_DESIGN


def study_arms(preset: Preset, design: str | None, *, objective: bool = False,
               ) -> Arms | None:
    """The arms a study runs with ``--design design`` (None: the default), or None.

    ``objective``: the study runs a user's objective, whose question is any categorical
    param it suggests (:func:`user_arms`).
    """
    if objective:
        return user_arms(preset.question, design)
    if preset.question is not None and preset.question not in QUESTION_BY_ID:
        raise ConfigError(f"question {preset.question!r} is unknown; choose from "
                          f"{', '.join(QUESTION_BY_ID)}")
    return question_arms(preset, resolve_design(design, preset.question))


def user_arms(question: str | None, design: str | None) -> Arms | None:
    """A user objective's question is a param it suggests: the arms are its choices,
    learnt when the objective suggests it (``values`` is empty until then)."""
    chosen = resolve_design(design, question)
    if chosen == "none" or question is None:
        return None
    return Arms(chosen, question, question, ())


def question_arms(preset: Preset, design: str) -> Arms | None:
    """The arms of ``preset``'s question under ``design`` (None for design "none").

    Raises :class:`ConfigError` when the question cannot be designed: its param is fixed,
    numeric, or left with fewer than two of the values the question compares.
    """
    if design == "none" or preset.question is None:
        return None
    q = QUESTION_BY_ID.get(preset.question)
    if q is None:
        raise ConfigError(f"question {preset.question!r} is unknown; choose from "
                          f"{', '.join(QUESTION_BY_ID)}")
    if q.param in preset.fixed:
        raise ConfigError(f"question {q.id}: {q.param} is fixed to {preset.fixed[q.param]!r}, "
                          "so there is nothing to compare; remove it from the preset or --set")
    p = preset.param(q.param)
    if p.kind != "categorical":
        raise ConfigError(f"question {q.id}: --design {design} assigns a categorical param, "
                          f"and {q.param} is {p.kind}; use --design none for it")
    values = tuple(v for v in p.choices if not q.compared or v in q.compared)
    if len(values) < 2:
        raise ConfigError(f"question {q.id} compares {', '.join(map(str, q.compared))} of "
                          f"{q.param}, and the preset allows {', '.join(map(str, p.choices))}")
    return Arms(design, q.id, q.param, values)


def balanced_value(arms: Arms, number: int, seed: int) -> Value:
    """Trial ``number``'s choice: permuted blocks of ``len(arms.values)`` trial numbers.

    Depends only on the seed and the trial number, so every worker of a distributed study
    agrees and a resumed study continues the same plan.
    """
    k = len(arms.values)
    block, slot = divmod(number, k)
    order = np.random.default_rng([seed, 0xB10C, block]).permutation(k)
    return arms.values[int(order[slot])]


def designed(sampler: BaseSampler, arms: Arms | None, seed: int) -> BaseSampler:
    """``sampler`` with the design's param assigned by :class:`DesignedSampler`, if any."""
    return sampler if arms is None else DesignedSampler(sampler, arms, seed=seed)


class DesignedSampler(BaseSampler):
    """``base`` searches every param but the design's, which this sampler assigns.

    The design's param is left out of the base sampler's relative search space, so the
    base draws the other params before (and without) the trial's own assignment.
    """

    def __init__(self, base: BaseSampler, arms: Arms, *, seed: int) -> None:
        self._base, self._arms, self._seed = base, arms, seed

    def assigned(self, number: int, arms: Arms | None = None) -> Value:
        arms = arms or self._arms
        if arms.design == "paired":
            return arms.values[0]
        return balanced_value(arms, number, self._seed)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial,
                                    ) -> dict[str, BaseDistribution]:
        space = self._base.infer_relative_search_space(study, trial)
        return {k: v for k, v in space.items() if k != self._arms.param}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if param_name == self._arms.param:
            if self._arms.values:
                return self.assigned(trial.number)
            # A user's objective: the choices are the ones it offers.
            if not isinstance(param_distribution, CategoricalDistribution) \
                    or len(param_distribution.choices) < 2:
                raise ConfigError(f"--question {param_name}: --design {self._arms.design} "
                                  "assigns a categorical param with two choices or more, and "
                                  f"the objective suggests {param_name} otherwise; use "
                                  "--design none for it")
            arms = dataclasses.replace(self._arms, values=tuple(
                param_distribution.choices))  # type: ignore[arg-type]
            value = self.assigned(trial.number, arms)
            if arms.design == "balanced":
                set_trial_user_attr(study, trial, schema.DESIGN,
                                                   arms.record(value))
            return value
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        if not self._arms.values:  # a user's objective: recorded when it suggests the param
            return
        value = None if self._arms.design == "paired" else self.assigned(trial.number)
        # Optuna's own samplers record per-trial facts through the storage like this.
        set_trial_user_attr(study, trial, schema.DESIGN,
                                           self._arms.record(value))

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
