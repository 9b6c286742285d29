"""Run a study: samplers, pruners, the trial budget, resume, ``--jobs`` workers.

``--trials N`` is the study's *total* of finished (complete + pruned) trials: every worker
checks the study before starting a trial, so a re-run after a crash, or N workers started
with the same command, share one budget.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch import __version__
from hpsearch.errors import ConfigError, StudyError
from hpsearch.settings import Settings, validate
from hpsearch.space import Preset
from hpsearch.storage import mask, open_storage

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Stop a worker whose last trials all failed with no success in between: something is
# wrong with every config (data, device), not with one of them.
MAX_CONSECUTIVE_FAILURES = 5


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE by default. ``group=True`` lets multivariate TPE model the conditional space."""
    import warnings

    samplers: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return samplers[name]()


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """Median by default: after 5 finished trials, prune below the median at the same epoch."""
    pruners: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        "percentile": lambda: optuna.pruners.PercentilePruner(
            25.0, n_startup_trials=5, n_warmup_steps=1),
        "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    return pruners[name]()


def git_hash() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def default_study_name(preset: Preset, settings: Settings) -> str:
    return settings.study_name or f"{preset.name}-{settings.dataset}"


def provenance(preset: Preset, settings: Settings) -> dict[str, Any]:
    """What a reader needs to reproduce the study (stored as study user attrs)."""
    import torch

    return {
        "hpsearch_version": __version__, "git_hash": git_hash(),
        "preset": preset.name, "question": preset.question,
        "fixed": dict(preset.fixed),
        "narrowed": {k: (list(p.choices) if p.kind == "categorical" else [p.low, p.high])
                     for k, p in preset.narrowed.items()},
        "settings": {**dataclasses.asdict(settings), "storage": mask(settings.storage)},
        "dataset": settings.dataset, "seed": settings.seed,
        "torch": torch.__version__, "optuna": optuna.__version__,
        "python": platform.python_version(), "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# Settings that change what a trial means: resuming a study with other values would mix
# two experiments in one study.
_MUST_MATCH = ("dataset", "epochs", "val_size", "preset")


def open_study(preset: Preset, settings: Settings) -> optuna.Study:
    """Create the study, or load it and check that it is the same experiment."""
    storage = open_storage(settings.storage, create=True, heartbeat=True)
    name = default_study_name(preset, settings)
    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize", load_if_exists=True,
        sampler=make_sampler(settings.sampler, settings.seed),
        pruner=make_pruner(settings.pruner, settings.epochs))
    if len(study.directions) != 1:
        raise StudyError(f"study {name!r} is multi-objective; hpsearch studies maximize one "
                         "value (choose another --study-name)")
    prov = provenance(preset, settings)
    old = study.user_attrs.get("provenance")
    if old is None:
        study.set_user_attr("provenance", prov)
        study.set_user_attr("dataset", settings.dataset)
        if preset.question:
            study.set_user_attr("question", preset.question)
    else:
        for key in _MUST_MATCH:
            was = old.get(key, old.get("settings", {}).get(key))
            now = prov.get(key, prov["settings"].get(key))
            if was != now:
                raise StudyError(f"study {name!r} in {mask(settings.storage)} was run with "
                                 f"{key}={was!r}, not {now!r}; use another --study-name")
    return study


def count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


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


def summarize(study: optuna.Study, before: int) -> OptimizeSummary:
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value or 0.0) if complete else None
    finished = sum(states.get(s.name, 0) for s in FINISHED)
    return OptimizeSummary(
        study.study_name, "", finished, states,
        best.value if best else None, dict(best.user_attrs.get("config", best.params))
        if best else {}, best.number if best else None, finished - before)


def _threads_per_worker(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def run_worker(preset: Preset, settings: Settings,
               on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> None:
    """One worker: run trials until the study has ``settings.trials`` finished ones."""
    import torch

    from hpsearch.data import DeviceData, load_dataset
    from hpsearch.objective import Objective
    from hpsearch.train import resolve_device

    torch.set_num_threads(_threads_per_worker(settings.jobs))
    device = resolve_device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {settings.device}: CUDA is not available here")
    study = open_study(preset, settings)
    raw = load_dataset(settings.dataset, settings.data_dir)
    data = DeviceData.create(raw, val_size=settings.val_size, seed=settings.seed, device=device)
    objective = Objective(preset, settings, data)
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    failures = 0
    while deadline is None or time.monotonic() < deadline:
        done = count(study, FINISHED)
        in_flight = count(study, (TrialState.RUNNING,))
        waiting = count(study, (TrialState.WAITING,))  # re-queued trials of dead workers
        if done + in_flight >= settings.trials and waiting == 0:
            break
        study.optimize(objective, n_trials=1, catch=(Exception,),
                       callbacks=[on_trial] if on_trial else None, gc_after_trial=False)
        last = study.trials[-1] if study.trials else None
        mine = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.FAIL]
        if last is not None and last.state == TrialState.FAIL:
            failures += 1
        else:
            failures = 0
        if failures >= MAX_CONSECUTIVE_FAILURES and count(study, FINISHED) == 0:
            reason = mine[-1].user_attrs.get("failure_reason", "see the log above")
            raise StudyError(f"the first {failures} trials all failed; last reason: {reason}")


def _worker_entry(preset: Preset, settings: Settings) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        run_worker(preset, settings)
    except KeyboardInterrupt:
        sys.exit(130)


def optimize(preset: Preset | None = None, settings: Settings | None = None, *,
             progress: bool = True) -> OptimizeSummary:
    """Run (or resume) the study until it has ``settings.trials`` finished trials."""
    preset = preset or Preset()
    settings = settings or Settings()
    validate(settings)
    study = open_study(preset, settings)
    before = count(study, FINISHED)
    if before >= settings.trials:
        summary = summarize(study, before)
        summary.storage = mask(settings.storage)
        return summary

    bar = _progress_bar(study, settings.trials, before) if progress else None
    procs = [mp.get_context("spawn").Process(target=_worker_entry, args=(preset, settings),
                                             daemon=False)
             for _ in range(settings.jobs - 1)]
    for p in procs:
        p.start()
    try:
        run_worker(preset, settings, on_trial=bar)
    finally:
        for p in procs:
            p.join()
        if bar is not None:
            bar.close()
    summary = summarize(study, before)
    summary.storage = mask(settings.storage)
    return summary


class _progress_bar:
    """A tqdm bar of the study's finished trials (all workers), updated after each trial."""

    def __init__(self, study: optuna.Study, total: int, initial: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="trial", file=sys.stderr,
                        dynamic_ncols=True, disable=None)
        self.best: float | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        done = count(study, FINISHED)
        self.bar.update(max(0, done - self.bar.n))
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            self.best = max(self.best or 0.0, trial.value)
        if self.best is not None:
            self.bar.set_postfix(best=f"{self.best:.4f}", refresh=False)

    def close(self) -> None:
        self.bar.close()
