"""Run a study: samplers, pruners, the trial budget, resume, ``--jobs`` workers.

``--trials N`` is the study's *total* of finished (complete + pruned) trials: every worker
checks the study before starting a trial, so a re-run after a crash, or N workers started
with the same command, share one budget.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing as mp
import os
import platform
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch import __version__
from hpsearch.errors import ConfigError, HPSearchError, StudyError
from hpsearch.settings import Settings, validate
from hpsearch.signals import (
    Terminated,
    deferred,
    interrupt_reason,
    interruptible,
    stop_signals,
)
from hpsearch.space import Preset, active_params
from hpsearch.storage import (
    HEARTBEAT_GRACE,
    HEARTBEAT_INTERVAL,
    check_spec,
    mask,
    open_storage,
    storage_errors,
)

if TYPE_CHECKING:
    from hpsearch.data import DeviceData

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Trials that hold a place in the budget: finished, running, or queued (a dead worker's
# trial re-queued by RetryHeartbeatStaleTrialCallback).
_CLAIMED = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
# Stop a worker whose last trials all failed with no success in between: something is
# wrong with every config (data, device), not with one of them.
MAX_CONSECUTIVE_FAILURES = 5
OVER_BUDGET = "not run: the study's budget was taken by other workers' trials"
# A trial failed by another worker because its heartbeat stopped has no reason of its own.
_NO_REASON = "its worker stopped without a word (killed, or its machine lost)"


def make_sampler(name: str, seed: int, random_share: float = 0.0,
                 ) -> optuna.samplers.BaseSampler:
    """TPE by default. ``group=True`` lets multivariate TPE model the conditional space.

    ``random_share`` > 0 draws that share of the adaptive samplers' trials at random
    (:class:`hpsearch.sampling.RandomizedShare`), so the study is an experiment too.
    """
    import warnings

    from hpsearch.sampling import RandomizedShare

    def share(base: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
        return RandomizedShare(base, share=random_share, seed=seed) if random_share else base

    samplers: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
        "tpe": lambda: share(optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                        group=True)),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "gp": lambda: share(optuna.samplers.GPSampler(seed=seed)),
        "cmaes": lambda: share(optuna.samplers.CmaEsSampler(seed=seed,
                                                            warn_independent_sampling=False)),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return samplers[name]()


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """Median by default: after 5 finished trials, prune below the median at the same epoch.

    No trial is pruned on its first epoch (``n_warmup_steps``; epochs are 1-based steps):
    regularized configs (dropout, augmentation, weight decay) start slower and pay back
    later, so epoch-1 pruning would bias the study against the very techniques it measures.
    """
    warmup = 2 if epochs > 2 else 1
    pruners: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup),
        "percentile": lambda: optuna.pruners.PercentilePruner(
            25.0, n_startup_trials=5, n_warmup_steps=warmup),
        "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup),
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
# The seed picks the validation split: another seed scores trials on another split.
_MUST_MATCH = ("dataset", "epochs", "val_size", "train_size", "preset", "seed")


def open_study(preset: Preset, settings: Settings) -> optuna.Study:
    """Create the study, or load it and check that it is the same experiment."""
    storage = open_storage(settings.storage, create=True, heartbeat=True)
    name = default_study_name(preset, settings)
    with storage_errors(settings.storage):  # e.g. a SQLite file locked by another program
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", load_if_exists=True,
            sampler=make_sampler(settings.sampler, settings.seed, settings.random_share),
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
    failed: int = 0           # trials that raised (not the budget's race losers)
    last_failure: str | None = None  # the last one's reason (Optuna's traceback is not shown)


def summarize(study: optuna.Study, before: int, storage: str) -> OptimizeSummary:
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value or 0.0) if complete else None
    finished = sum(states.get(s.name, 0) for s in FINISHED)
    failed = [t for t in trials if t.state == TrialState.FAIL
              and t.user_attrs.get("failure_reason") != OVER_BUDGET]
    return OptimizeSummary(
        study.study_name, mask(storage), finished, states,
        best.value if best else None,
        active_params(best.user_attrs.get("config", best.params)) if best else {},
        best.number if best else None, finished - before, len(failed),
        mask(str(failed[-1].user_attrs.get("failure_reason", _NO_REASON))) if failed else None)


def _threads_per_worker(jobs: int) -> int:
    # An explicit OMP_NUM_THREADS wins: several workers started by hand on one machine each
    # see all its cores, and oversubscribed torch threads can make an epoch 100x slower.
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, (os.cpu_count() or 1) // jobs)


class BudgetReached(Exception):
    """Raised instead of running a trial that another worker's trials left no room for."""


class _Budgeted:
    """Run ``objective`` only for a trial that is among the study's first ``n`` claimed ones.

    Workers check the budget before asking for a trial, but two of them can check at the
    same moment; the trial with the higher number then fails here without training, so a
    study ends with exactly ``n`` finished trials however many workers share it. Every
    trial that fails keeps a one-line ``failure_reason`` (an interrupt's too), so Optuna's
    traceback for it is not printed (:meth:`filter`).
    """

    def __init__(self, objective: Callable[[optuna.Trial], float], n: int) -> None:
        self.objective, self.n = objective, n
        self.skipped: set[int] = set()
        self.ran: set[int] = set()

    def __call__(self, trial: optuna.Trial) -> float:
        self.ran.add(trial.number)
        ahead = sum(1 for t in trial.study.get_trials(deepcopy=False, states=_CLAIMED)
                    if t.number < trial.number)
        if ahead >= self.n:
            self.skipped.add(trial.number)
            trial.set_user_attr("failure_reason", OVER_BUDGET)
            raise BudgetReached(OVER_BUDGET)
        try:
            with interruptible():
                return self.objective(trial)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt as exc:
            _keep_reason(trial, interrupt_reason(exc), overwrite=True)
            raise
        except Exception as exc:
            _keep_reason(trial, f"{type(exc).__name__}: {exc}"[:300], overwrite=False)
            raise

    def filter(self, record: logging.LogRecord) -> bool:
        """Optuna logs every failed trial with a traceback; its reason is stored instead."""
        return not any(record.getMessage().startswith(f"Trial {n} failed") for n in self.ran)


def _keep_reason(trial: optuna.Trial, reason: str, *, overwrite: bool) -> None:
    try:
        if overwrite or "failure_reason" not in trial.user_attrs:
            trial.set_user_attr("failure_reason", reason)
    except Exception:  # a failing storage: the trial's own error says more
        pass


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and re-queue, see storage.py) the trials of workers whose heartbeat stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int,
               *, deadline: float | None = None, linger: float = 0.0,
               on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> None:
    """Run trials one at a time until ``study`` has ``n_trials`` finished ones.

    Before each trial the worker fails heartbeat-stale trials (their re-queued copies are
    WAITING and run first), then counts the study. When the rest of the budget is running
    in other workers it waits up to ``linger`` seconds (enough for a dead worker's trial to
    become stale and be re-queued) and then stops; a live worker finishes its own trial.
    ``deadline`` is a ``time.monotonic()`` value.
    """
    budgeted = _Budgeted(objective, n_trials)
    ran: list[FrozenTrial] = []

    def record(study: optuna.Study, trial: FrozenTrial) -> None:
        ran.append(trial)
        if on_trial is not None and trial.number not in budgeted.skipped:
            on_trial(study, trial)

    log = logging.getLogger("optuna.study._optimize")
    log.addFilter(budgeted)
    try:
        failures, linger_until = 0, None
        while deadline is None or time.monotonic() < deadline:
            fail_stale_trials(study)
            states = Counter(t.state for t in study.get_trials(deepcopy=False))
            done = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
            if done >= n_trials:
                break
            if done + states[TrialState.RUNNING] >= n_trials:
                now = time.monotonic()
                linger_until = linger_until or now + linger
                if now >= linger_until:
                    break
                time.sleep(max(0.0, min(1.0, linger_until - now, (deadline or now + 1) - now)))
                continue
            linger_until = None
            with deferred():  # a stop signal in ask or tell would leave the trial RUNNING
                study.optimize(budgeted, n_trials=1, catch=(Exception,), callbacks=[record],
                               gc_after_trial=False)
            trial = ran[-1]
            if trial.state != TrialState.FAIL:
                failures = 0
            elif trial.number not in budgeted.skipped:
                failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES:
                reason = trial.user_attrs.get("failure_reason", "see the log above")
                first = "the first" if count(study, FINISHED) == 0 else "this worker's last"
                raise StudyError(f"{first} {failures} trials all failed, so this worker "
                                 f"stopped; last reason: {mask(str(reason))}")
    finally:
        log.removeFilter(budgeted)


def prepare_data(settings: Settings) -> DeviceData:
    """The device and the study's splits: everything a start can fail on before it writes
    anything (no GPU, a dataset that is missing or corrupt)."""
    import torch

    from hpsearch.data import DeviceData, load_dataset
    from hpsearch.train import resolve_device

    try:
        device = resolve_device(settings.device)
    except RuntimeError as exc:  # torch: "Invalid device string: 'cuda:x'"
        raise ConfigError(f"--device {settings.device}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {settings.device}: CUDA is not available here")
    raw = load_dataset(settings.dataset, settings.data_dir)
    return DeviceData.create(raw, val_size=settings.val_size, seed=settings.seed, device=device,
                             train_size=settings.train_size)


def run_worker(preset: Preset, settings: Settings,
               on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
               study: optuna.Study | None = None, data: DeviceData | None = None) -> None:
    """One worker: run trials until the study has ``settings.trials`` finished ones.

    ``study`` and ``data``: what :func:`open_study` and :func:`prepare_data` already made
    in this process, if anything. The data comes first: a start that fails on it leaves the
    storage as it was.
    """
    import torch

    from hpsearch.objective import Objective

    torch.set_num_threads(_threads_per_worker(settings.jobs))
    data = data or prepare_data(settings)
    study = study or open_study(preset, settings)
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    # Every storage has heartbeats (journal files: hpsearch.journal): wait long enough for
    # a dead worker's trial to become stale and be re-queued.
    linger = HEARTBEAT_GRACE + 2 * HEARTBEAT_INTERVAL
    with storage_errors(settings.storage):
        run_trials(study, Objective(preset, settings, data), settings.trials,
                   deadline=deadline, linger=linger, on_trial=on_trial)


def _worker_entry(preset: Preset, settings: Settings) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with stop_signals():
            run_worker(preset, settings)
    except KeyboardInterrupt as exc:
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    except HPSearchError as exc:  # one line, as the CLI prints it, not a traceback
        print(f"Error: {mask(str(exc))}", file=sys.stderr)
        sys.exit(1)


def optimize(preset: Preset | None = None, settings: Settings | None = None, *,
             progress: bool = True) -> OptimizeSummary:
    """Run (or resume) the study until it has ``settings.trials`` finished trials.

    Nothing is written before the device and the data are ready: a start that fails on
    them leaves no study, no settings record and no new file behind. SIGTERM is handled
    like Ctrl-C (:class:`Terminated`, a subclass of KeyboardInterrupt).
    """
    preset = preset or Preset()
    settings = settings or Settings()
    validate(settings)
    check_spec(settings.storage)
    with stop_signals():
        data = prepare_data(settings)
        study = open_study(preset, settings)
        before = count(study, FINISHED)
        if before >= settings.trials:
            return summarize(study, before, settings.storage)
        _run_jobs(preset, settings, study, data, progress)
    return summarize(study, before, settings.storage)


def _run_jobs(preset: Preset, settings: Settings, study: optuna.Study, data: DeviceData,
              progress: bool) -> None:
    bar = _progress_bar(study, settings.trials, count(study, FINISHED)) if progress else None
    procs = [mp.get_context("spawn").Process(target=_worker_entry, args=(preset, settings),
                                             daemon=False)
             for _ in range(settings.jobs - 1)]
    for p in procs:
        p.start()
    try:
        run_worker(preset, settings, on_trial=bar, study=study, data=data)
    except KeyboardInterrupt as exc:
        # Ctrl-C in a terminal reaches every worker; `kill -INT` (or -TERM) of this process
        # alone must stop them too (each fails its running trial and exits 130 or 143).
        signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        for p in procs:
            p.join(timeout=5)
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signum)
        raise
    finally:
        for p in procs:
            p.join()
        if bar is not None:
            bar.close()


class _progress_bar:
    """Progress of the study's finished trials (all workers), updated after each trial.

    On a terminal: a tqdm bar. Otherwise (a file, a scheduler's log, a pipe) a bar would
    print nothing until the end, so each finished trial writes one line to stderr instead,
    at most one per ``every`` seconds (the last trial always): trials done of the target,
    pruned and failed, the best value so far, elapsed time and an ETA.
    """

    def __init__(self, study: optuna.Study, total: int, initial: int, *,
                 stream: Any = None, every: float = 2.0) -> None:
        self.stream = stream or sys.stderr
        self.total, self.initial, self.every = total, initial, every
        self.best: float | None = None
        self.best_number: int | None = None
        self.start = time.monotonic()
        self.last_line = -math.inf
        self.bar: Any = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="trial", file=self.stream,
                            dynamic_ncols=True)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        states = Counter(t.state for t in study.get_trials(deepcopy=False))
        done = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
        if trial.state == TrialState.COMPLETE and trial.values:
            value = trial.values[0]
            if self.best is None or value > self.best:
                self.best, self.best_number = value, trial.number
        best = f"{self.best:.4f}" if self.best is not None else "–"
        if self.bar is not None:
            self.bar.update(max(0, done - self.bar.n))
            self.bar.set_postfix(best=best, refresh=False)
            return
        now = time.monotonic()
        if now - self.last_line < self.every and done < self.total:
            return
        self.last_line = now
        self.stream.write(self.line(done, states, now - self.start) + "\n")
        self.stream.flush()

    def line(self, done: int, states: Counter[TrialState], elapsed: float) -> str:
        ran = done - self.initial
        left = max(0, self.total - done)
        eta = _clock(elapsed / ran * left) if ran > 0 else "?"
        best = (f"best {self.best:.4f} (trial #{self.best_number})" if self.best is not None
                else "no complete trial yet")
        failed = states[TrialState.FAIL]
        return (f"trials {done}/{self.total} finished ({states[TrialState.PRUNED]} pruned"
                + (f", {failed} failed" if failed else "") + f"); {best}; "
                f"elapsed {_clock(elapsed)}, ETA {eta}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:09``."""
    s = max(0, round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"
