"""Run a study: samplers, pruners, the trial budget, resume, ``--jobs`` workers.

``--trials N`` is the study's *total* of finished (complete + pruned) trials: every worker
checks the study before starting a trial, so a re-run after a crash, or N workers started
with the same command, share one budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch import schema
from hpsearch.errors import ConfigError
from hpsearch.objectives import LoadedObjective, load_objective
from hpsearch.optimize.signals import (
    stop_signals,
)
from hpsearch.optimize.study import FINISHED, count, open_study
from hpsearch.optimize.workers import OVER_BUDGET, prepare_data, run_jobs
from hpsearch.settings import Settings, validate
from hpsearch.space import Preset, active_params
from hpsearch.storage import (
    check_spec,
    mask,
)


def check_device(name: str) -> None:
    """``--device mps`` where torch has no MPS backend: one message, not torch's error."""
    if name.split(":", 1)[0].strip().lower() != "mps":
        return
    import torch

    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise ConfigError(f"--device {name}: MPS (Apple's GPU) is not available here; use "
                          "--device cpu, cuda or auto")


# A trial failed by another worker because its heartbeat stopped has no reason of its own.
_NO_REASON = "its worker stopped without a word (killed, or its machine lost)"


@dataclass
class OptimizeSummary:
    study_name: str
    storage: str              # masked
    n_finished: int
    states: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any]
    best_number: int | None
    ran_here: int             # trials this call (all its workers) finished
    failed: int = 0           # trials that raised (not the budget's race losers)
    last_failure: str | None = None  # the last one's reason (Optuna's traceback is not shown)
    objective: str | None = None     # a user's objective (its spec), else hpsearch's own
    direction: str = "maximize"


def summarize(study: optuna.Study, before: int, storage: str,
              objective: LoadedObjective | None = None) -> OptimizeSummary:
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
    best = max(complete, key=lambda t: sign * (t.value or 0.0)) if complete else None
    params = (dict(best.user_attrs.get(schema.CONFIG, best.params)) if objective else
              active_params(best.user_attrs.get(schema.CONFIG, best.params))) if best else {}
    finished = sum(states.get(s.name, 0) for s in FINISHED)
    failed = [t for t in trials if t.state == TrialState.FAIL
              and schema.failure_reason(t) != OVER_BUDGET]
    return OptimizeSummary(
        study.study_name, mask(storage), finished, states,
        best.value if best else None, params,
        best.number if best else None, finished - before, len(failed),
        mask(str(schema.failure_reason(failed[-1], _NO_REASON))) if failed else None,
        objective.spec if objective else None, study.direction.name.lower())


# What only hpsearch's own models use: a user's objective brings its own data and training.
_OWN_MODELS = ("dataset", "epochs", "val_size", "train_size", "data_dir")


def check_own(preset: Preset, settings: Settings) -> None:
    """With ``--objective``, the flags that shape hpsearch's own models and space are
    refused: they would be recorded as the study's and do nothing."""
    default = Settings()
    given = [f"--{k.replace('_', '-')}" for k in _OWN_MODELS
             if getattr(settings, k) != getattr(default, k)]
    if preset.fixed or preset.narrowed or preset.name != Preset().name:
        given.insert(0, "--preset/--model/--set")
    if given:
        raise ConfigError(f"{', '.join(given)}: these choose hpsearch's own models, data and "
                          "search space; with --objective your objective loads its data and "
                          "suggests its params (remove them)")


def optimize(preset: Preset | None = None, settings: Settings | None = None, *,
             progress: bool = True,
             on_start: Callable[[optuna.Study], None] | None = None) -> OptimizeSummary:
    """Run (or resume) the study until it has ``settings.trials`` finished trials.

    ``settings.objective`` names a user's objective (``FILE.py:NAME``) that the study runs
    instead of training hpsearch's models (:mod:`hpsearch.optimize.user`).
    Nothing is written before the device and the data are ready: a start that fails on
    them leaves no study, no settings record and no new file behind. SIGTERM is handled
    like Ctrl-C (:class:`Terminated`, a subclass of KeyboardInterrupt). ``on_start`` is
    called once the study is open, before its first trial (the CLI's banner: it must not
    claim a run that an error stops).
    """
    preset = preset or Preset()
    settings = settings or Settings()
    validate(settings)
    check_device(settings.device)
    check_spec(settings.storage)
    if settings.objective:
        check_own(preset, settings)
    # A user's objective that does not import: one message before anything is written.
    loaded = load_objective(settings.objective) if settings.objective else None
    with stop_signals():
        data = prepare_data(settings) if loaded is None else None  # it brings its own
        study = open_study(preset, settings, loaded, data)
        if on_start is not None:
            on_start(study)
        before = count(study, FINISHED)
        if before >= settings.trials:
            return summarize(study, before, settings.storage, loaded)
        run_jobs(preset, settings, study, data, progress, loaded)
    return summarize(study, before, settings.storage, loaded)
