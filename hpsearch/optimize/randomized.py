"""A study that is both a search and an experiment: TPE with a randomized share.

TPE moves params together towards good regions, which is what a search should do and
what an experiment must not: a choice then looks good because the params it came with
were good. :class:`RandomizedShare` lets the adaptive sampler choose most trials and draws
a seeded share of them (and the first ``n_startup``, which TPE draws at random anyway)
completely at random, each param independently. Those trials carry the user attr
``randomized = True``; the analysis answers the questions from all trials, adjusted for
the other params, and calls an answer an *effect* ("matters") when the randomized trials
settle it on their own (:mod:`hpsearch.analysis.questions`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from hpsearch import schema
from hpsearch.optuna_private import seed_for_trial, set_trial_user_attr


def trial_seeds(seed: int, number: int, salt: int, *, n: int = 1) -> list[int]:
    """``n`` seeds for one trial's draws, from the study's seed, the trial number and a
    ``salt`` (which draws they are for): no two trials or uses share them."""
    key = np.random.SeedSequence([seed % 2**32, number, salt])
    return [int(x) for x in key.generate_state(n)]


class TrialSeededRandom(BaseSampler):
    """Independent uniform draws that depend only on the seed, the trial number and the param.

    Optuna's ``RandomSampler(seed=s)`` draws from one generator per process, so every
    process with the same seed draws the same sequence: a study resumed in a new process
    drew its first configs again (a 24-config study held trial 0's config twice), and two
    workers of one study drew each other's. Here each draw comes from a generator seeded by
    ``(seed, trial number, param name)``: trial numbers are unique within a study, so no two
    trials share their draws, and the same study re-run draws the same configs.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial,
                                    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        (seed,) = trial_seeds(self._seed, trial.number, zlib.crc32(param_name.encode()))
        # A fresh RandomSampler per draw: Optuna's own uniform draw for every distribution
        # (log, step, int, categorical), from a generator no other trial or param shares.
        return RandomSampler(seed=seed).sample_independent(study, trial, param_name,
                                                           param_distribution)


class RandomizedShare(BaseSampler):
    """``base`` for most trials; trial k is drawn at random with probability ``share``.

    Which trials are random, and their draws (:class:`TrialSeededRandom`), depend only on
    ``seed`` and the trial number, so every worker of a distributed study agrees, and a
    resumed study continues the same plan.
    """

    def __init__(self, base: BaseSampler, *, share: float, seed: int,
                 n_startup: int = 10) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share!r}")
        self._base, self._random = base, TrialSeededRandom(seed)
        self._share, self._seed, self._n_startup = share, seed, n_startup

    def is_randomized(self, number: int) -> bool:
        if number < self._n_startup:
            return True
        return bool(np.random.default_rng([self._seed, number]).random() < self._share)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial,
                                    ) -> dict[str, BaseDistribution]:
        if self.is_randomized(trial.number):
            return {}
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if self.is_randomized(trial.number):
            return {}
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        sampler = self._random if self.is_randomized(trial.number) else self._base
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        # The base's own generators too (TPE's startup draws and candidates, GP's, CMA-ES's),
        # for the same reason as TrialSeededRandom.
        seed_for_trial(self._base, trial_seeds(self._seed, trial.number, 0x7BE, n=2))
        self._base.before_trial(study, trial)
        if self.is_randomized(trial.number):
            # Optuna's own samplers record per-trial facts through the storage like this.
            set_trial_user_attr(study, trial, schema.RANDOMIZED, True)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        # The randomized draws need no reseeding: each trial's are its own already.
        self._base.reseed_rng()
