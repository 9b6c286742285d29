"""A user's objective as a study's objective: seeds, checks, failures, the paired design.

Without a paired design the user's function gets Optuna's own trial, so
``trial.report``/``should_prune`` and every ``suggest_*`` behave as in Optuna's examples.
Under the paired design each trial first *probes* the objective (runs it up to its
suggest of the question's param, which tells the choices; a config that never suggests
the param is a plain trial and the probe's value is its value), then calls it once per
choice with the same seed, through a :class:`~hpsearch.objectives.TrialView` that answers
the param with the arm's choice and passes every other suggest to the real trial. The arms
take turns between reports (:mod:`.lockstep`, each arm's generators kept aside), the
pruner sees the arms' mean at each step, so they are pruned together; each arm's reports
and value are the trial's user attr ``arms``, its value is the arms' mean.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution

from hpsearch import schema
from hpsearch.errors import ConfigError, HPSearchError
from hpsearch.objectives import (
    LoadedObjective,
    NotANumber,
    Probe,
    TrialView,
    accepts,
    call_objective,
    describe,
    rng_state,
)
from hpsearch.optimize.designs import Arms
from hpsearch.optimize.lockstep import Lockstep
from hpsearch.optimize.objective import training_seed
from hpsearch.optimize.signals import check
from hpsearch.settings import Settings

log = logging.getLogger("hpsearch")


class UserObjective:
    """``objective(trial) -> value`` around a user's objective (:mod:`hpsearch.objectives`).

    ``fatal`` is set when a failure is the objective's, not a config's (it returned
    something that is not a number, the design cannot assign its param): the worker stops
    at once with it instead of failing trial after trial.
    """

    def __init__(self, loaded: LoadedObjective, settings: Settings,
                 arms: Arms | None = None) -> None:
        self.loaded, self.settings = loaded, settings
        self.takes = accepts(loaded.fn)
        self.paired = arms if arms is not None and arms.design == "paired" else None
        self.fatal: HPSearchError | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        seed = training_seed(self.settings, trial.number)
        trial.set_user_attr(schema.TRAIN_SEED, seed)
        start = time.perf_counter()
        try:
            value = (self._arms(trial, seed, self.paired) if self.paired is not None
                     else call_objective(self.loaded.fn, trial, seed=seed, split="validation",
                                         takes=self.takes))
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            if isinstance(exc, NotANumber | ConfigError):
                self.fatal = exc
            reason = (str(exc) if isinstance(exc, HPSearchError)
                      else describe(exc, self.loaded.path))
            schema.set_failure_reason(trial, reason[:300])
            log.warning(f"trial {trial.number} failed: {reason}")
            raise
        schema.set_run_info(trial, {"seconds": round(time.perf_counter() - start, 4),
                                    "worker": f"{platform.node()}:{os.getpid()}"})
        return value

    # ------------------------------------------------------------------ the paired design

    def _arms(self, trial: optuna.Trial, seed: int, arms: Arms) -> float:
        param = arms.param
        probe = TrialView(trial, {}, probe=param)
        try:  # run up to the suggest of the question's param: its choices
            return call_objective(self.loaded.fn, probe, seed=seed, split="validation",
                                  takes=self.takes)
        except Probe as found:
            dist = found.distribution
        if not isinstance(dist, CategoricalDistribution) or len(dist.choices) < 2:
            how = "suggest_categorical with one choice" if isinstance(
                dist, CategoricalDistribution) else f"a {type(dist).__name__}"
            raise ConfigError(f"--question {param}: --design paired assigns a categorical "
                              f"param with two choices or more, and the objective suggests "
                              f"{param} with {how}; use --design balanced or none")
        values: tuple[Any, ...] = tuple(dist.choices)
        trial.suggest_categorical(param, values)  # the sampler's record: the first arm
        trial.set_user_attr(schema.DESIGN, Arms("paired", arms.question, param, values).record())
        views: dict[int, TrialView] = {}
        results: list[float] | None = None

        def arm(i: int) -> Any:
            def run(on_epoch: Any) -> float:
                views[i] = TrialView(trial, {param: values[i]}, on_report=on_epoch)
                return call_objective(self.loaded.fn, views[i], seed=seed, split="validation",
                                      takes=self.takes)
            return run

        def decide(step: int, reported: list[Any]) -> bool:
            check()  # a Ctrl-C that landed in a finalizer and was swallowed
            now = [float(v) for v in reported if v is not None]
            trial.report(sum(now) / len(now), step)
            return trial.should_prune()

        try:
            results = Lockstep([arm(i) for i in range(len(values))], decide,
                               rng=rng_state()).run()
        finally:
            self._record(trial, values, views, results)
        mean = sum(results) / len(results)
        best = (max if self.settings.direction == "maximize" else min)(
            range(len(values)), key=lambda i: results[i])  # type: ignore[index]
        # `best` and `verify` start from the best arm's params (only those it suggested)
        schema.set_config(trial, views[best].params)
        return mean

    @staticmethod
    def _record(trial: optuna.Trial, values: tuple[Any, ...], views: dict[int, TrialView],
                results: list[float] | None) -> None:
        out = {}
        for i, v in enumerate(values):
            view = views.get(i)
            curve = [y for _, y in view.reported] if view is not None else []
            final = results[i] if results is not None else (curve[-1] if curve else None)
            if final is None:
                continue
            out[str(v)] = {"val_acc": curve if curve else [final], "final": final,
                           "steps": [s for s, _ in view.reported] if view else [],
                           "stop_reason": "complete" if results is not None else "pruned",
                           "best_epoch": None}
        if out:
            schema.set_arms(trial, out)
