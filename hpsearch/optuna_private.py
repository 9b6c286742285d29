"""Every use hpsearch makes of what Optuna does not promise (its private names), in one place.

Optuna's public API has no way to do these, and each has a reason; ``tests/
test_optuna_private.py`` fails when an Optuna release changes one of them, so an upgrade
breaks a test here instead of a study.

- :func:`storage_of`: a study's storage and id (``Study._storage``, ``Study._study_id``), to
  record artifacts as ``optuna.artifacts`` and optuna-dashboard's ``save_note`` do;
- :func:`trial_id`: a trial's id in its storage (``FrozenTrial._trial_id``);
- :func:`set_trial_user_attr`: a fact about a trial recorded from a sampler's
  ``before_trial``, through the storage, as Optuna's own samplers do;
- :func:`trials_view`: a read-only stand-in for a ``Study`` that Optuna's importance
  evaluators accept (they call ``get_trials``, ``directions`` and the private
  ``_is_multi_objective``), so bootstraps need no real study;
- :func:`seed_for_trial`: a sampler's own generators (TPE's and GP's ``_rng``, CMA-ES's
  ``_cma_rng``, and the ``RandomSampler`` each keeps for its startup and independent
  draws, ``._rng``) seeded per trial, so a resumed study or a second worker does not draw
  what the first process drew;
- :func:`enqueued`: whether a trial's params were fixed by ``enqueue_trial`` (the
  ``fixed_params`` system attr).

Where hpsearch subclasses an Optuna storage it overrides the private hooks in place (they
are the subclass's own methods): :mod:`hpsearch.storage.open` (``RDBStorage.
_get_stale_trial_ids``, ``optuna.storages._rdb.models``) and :mod:`hpsearch.storage.journal`
(``optuna.storages._heartbeat.BaseHeartbeat``); the test checks those names too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import optuna
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpsearch import schema


def storage_of(study: optuna.Study) -> tuple[BaseStorage, int]:
    """The study's storage and its id there."""
    return study._storage, study._study_id


def trial_id(trial: FrozenTrial) -> int:
    """The trial's id in its storage (not its number in the study)."""
    return trial._trial_id


def set_trial_user_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Store a user attr on ``trial`` from a sampler's ``before_trial`` (the trial is
    RUNNING; Optuna hands samplers a frozen copy, not a ``Trial``)."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


class _TrialsView:
    """The read-only part of ``optuna.Study`` that Optuna's importance evaluators use.

    Bootstraps and shuffles need a "study" of other trials dozens of times: a real
    in-memory study costs ~0.4 s to fill at 1,000 trials, this view costs nothing.
    """

    def __init__(self, trials: list[FrozenTrial], direction: StudyDirection) -> None:
        self._trials, self.directions = trials, [direction]

    def get_trials(self, deepcopy: bool = True,
                   states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def _is_multi_objective(self) -> bool:
        return False


def trials_view(trials: list[FrozenTrial], direction: StudyDirection) -> optuna.Study:
    """``trials`` as a study for ``optuna.importance.get_param_importances``."""
    return cast(optuna.Study, _TrialsView(trials, direction))


def seed_for_trial(sampler: optuna.samplers.BaseSampler, seeds: Sequence[int]) -> bool:
    """Seed a sampler's own generators from ``seeds`` (two ints) before one trial: TPE's and
    GP's candidates and CMA-ES's start (``_rng``, ``_cma_rng``), and the random sampler
    each falls back on for its startup and for params it cannot model (``_random_sampler``,
    ``_independent_sampler``). False for a sampler with none of these (left as it is).

    Optuna's samplers seed them once, in their constructor: every process that builds one
    (a resumed study, each worker of a shared one) starts the same sequences, so a random
    startup repeats earlier configs exactly, and two workers that see the same trials
    propose the same candidates. ``reseed_rng()`` (public) reseeds from the OS, which would
    make a seeded study irreproducible.
    """
    seeded = False
    for name in ("_rng", "_cma_rng"):
        if isinstance(getattr(sampler, name, None), LazyRandomState):
            getattr(sampler, name).rng.seed(seeds[0])
            seeded = True
    for name in ("_random_sampler", "_independent_sampler"):
        inner = getattr(sampler, name, None)
        if isinstance(inner, optuna.samplers.RandomSampler):
            inner._rng.rng.seed(seeds[1])
            seeded = True
    return seeded


def enqueued(trial: FrozenTrial) -> bool:
    """Whether ``study.enqueue_trial`` fixed this trial's params (a person's choice, or a
    retried trial's copy), rather than a sampler."""
    return schema.FIXED_PARAMS in trial.system_attrs
