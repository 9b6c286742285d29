"""The trial budget and the workers that share it.

``--trials N`` is the study's *total* of finished (complete + pruned) trials: every worker
checks the study before starting a trial, so a re-run after a crash, or N workers started
with the same command, share one budget.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch import schema
from hpsearch.errors import ConfigError, HPSearchError, StudyError
from hpsearch.objectives import LoadedObjective, load_objective
from hpsearch.optimize.signals import (
    Terminated,
    check,
    deferred,
    exit_with_parent,
    interrupt_reason,
    interruptible,
    stop_signals,
)
from hpsearch.optimize.study import FINISHED, count, open_study
from hpsearch.progress import ProgressBar
from hpsearch.settings import Settings
from hpsearch.space import Preset
from hpsearch.storage import (
    HEARTBEAT_GRACE,
    HEARTBEAT_INTERVAL,
    mask,
    storage_errors,
)

if TYPE_CHECKING:
    from hpsearch.training import DeviceData



# Trials that hold a place in the budget: finished, running, or queued (a dead worker's
# trial re-queued by RetryHeartbeatStaleTrialCallback).
_CLAIMED = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)


# Stop a worker whose last trials all failed with no success in between: something is
# wrong with every config (data, device), not with one of them.
MAX_CONSECUTIVE_FAILURES = 5
# A user's objective that fails this many trials in a row with the same error has a bug
# (a typo, a missing file) that every config will hit: say so after three, not five.
SAME_FAILURES = 3


OVER_BUDGET = "not run: the study's budget was taken by other workers' trials"


def threads_per_worker(jobs: int) -> int:
    # An explicit OMP_NUM_THREADS wins: several workers started by hand on one machine each
    # see all its cores, and oversubscribed torch threads can make an epoch 100x slower.
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, (os.cpu_count() or 1) // jobs)


class BudgetReached(Exception):
    """Raised instead of running a trial that another worker's trials left no room for."""


class Budgeted:
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
        self.current: int | None = None  # the trial this worker runs now

    def __call__(self, trial: optuna.Trial) -> float:
        self.ran.add(trial.number)
        self.current = trial.number
        ahead = sum(1 for t in trial.study.get_trials(deepcopy=False, states=_CLAIMED)
                    if t.number < trial.number)
        if ahead >= self.n:
            self.skipped.add(trial.number)
            schema.set_failure_reason(trial, OVER_BUDGET)
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


def _failed_elsewhere(study: optuna.Study, number: int | None) -> bool:
    """Whether trial ``number`` was finished as FAIL by another worker (not by this one)."""
    if number is None:
        return False
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    return trial is not None and trial.state == TrialState.FAIL


def _keep_reason(trial: optuna.Trial, reason: str, *, overwrite: bool) -> None:
    try:
        if overwrite or schema.FAILURE_REASON not in trial.user_attrs:
            schema.set_failure_reason(trial, reason)
    except Exception:  # a failing storage: the trial's own error says more
        pass


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and re-queue, see storage.py) the trials of workers whose heartbeat stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int,
               *, deadline: float | None = None, linger: float = 0.0,
               on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
               same_failures: int | None = None) -> None:
    """Run trials one at a time until ``study`` has ``n_trials`` finished ones.

    Before each trial the worker fails heartbeat-stale trials (their re-queued copies are
    WAITING and run first), then counts the study. When the rest of the budget is running
    in other workers it waits up to ``linger`` seconds (enough for a dead worker's trial to
    become stale and be re-queued) and then stops; a live worker finishes its own trial.
    ``deadline`` is a ``time.monotonic()`` value.

    A worker stops after :data:`MAX_CONSECUTIVE_FAILURES` failed trials in a row, or
    ``same_failures`` in a row that failed with the same reason (a user's objective: a bug
    in it, not a bad config), or at once when the objective says the failure is its own
    (its ``fatal`` attribute: a value that is not a number, a design it cannot run).
    """
    budgeted = Budgeted(objective, n_trials)
    ran: list[FrozenTrial] = []

    def record(study: optuna.Study, trial: FrozenTrial) -> None:
        ran.append(trial)
        if on_trial is not None and trial.number not in budgeted.skipped:
            on_trial(study, trial)

    log = logging.getLogger("optuna.study._optimize")
    log.addFilter(budgeted)
    try:
        failures, linger_until = 0, None
        reasons: list[object] = []
        while deadline is None or time.monotonic() < deadline:
            check()  # a stop signal swallowed by a finalizer during the last trial
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
            try:
                with deferred():  # a stop signal in ask or tell would leave the trial RUNNING
                    study.optimize(budgeted, n_trials=1, catch=(Exception,),
                                   callbacks=[record], gc_after_trial=False)
            except optuna.exceptions.UpdateFinishedTrialError:
                # Another worker failed this worker's trial as dead before its first
                # heartbeat (a start slower than the grace period, e.g. on a loaded machine)
                # and re-queued it: it runs again; this worker goes on with the next one.
                continue
            except (ValueError, AssertionError):
                # The same while it ran (its heartbeat late): Optuna's tell refuses a trial
                # that is already FAIL ("Cannot tell a FAIL trial", then an assertion in its
                # cleanup). Anything else is not ours to swallow.
                if not _failed_elsewhere(study, budgeted.current):
                    raise
                continue
            trial = ran[-1]
            fatal = getattr(objective, "fatal", None)
            if fatal is not None:
                raise fatal
            if trial.state != TrialState.FAIL:
                failures, reasons = 0, []
            elif trial.number not in budgeted.skipped:
                failures += 1
                reasons.append(schema.failure_reason(trial))
            if same_failures and len(reasons) >= same_failures \
                    and len(set(reasons[-same_failures:])) == 1:
                raise StudyError(f"{same_failures} trials in a row failed with the same error, "
                                 f"so this worker stopped (the study is kept): "
                                 f"{mask(str(reasons[-1]))}")
            if failures >= MAX_CONSECUTIVE_FAILURES:
                reason = schema.failure_reason(trial, "see the log above")
                first = "the first" if count(study, FINISHED) == 0 else "this worker's last"
                raise StudyError(f"{first} {failures} trials all failed, so this worker "
                                 f"stopped; last reason: {mask(str(reason))}")
    finally:
        log.removeFilter(budgeted)


def prepare_data(settings: Settings) -> DeviceData:
    """The device and the study's splits: everything a start can fail on before it writes
    anything (no GPU, a dataset that is missing or corrupt)."""
    import torch

    from hpsearch.training import DeviceData, load_dataset, resolve_device

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
               study: optuna.Study | None = None, data: DeviceData | None = None,
               loaded: LoadedObjective | None = None) -> None:
    """One worker: run trials until the study has ``settings.trials`` finished ones.

    ``study`` and ``data``: what :func:`open_study` and :func:`prepare_data` already made
    in this process, if anything. The data comes first: a start that fails on it leaves the
    storage as it was. ``loaded``: the user's objective, already imported (else imported
    here from ``settings.objective``).
    """
    import torch

    from hpsearch.optimize.designs import study_arms
    from hpsearch.optimize.objective import Objective
    from hpsearch.optimize.user import UserObjective

    torch.set_num_threads(threads_per_worker(settings.jobs))
    if settings.objective is not None:
        loaded = loaded or load_objective(settings.objective)
    else:
        data = data or prepare_data(settings)
    study = study or open_study(preset, settings, loaded, data)
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    # Every storage has heartbeats (journal files: hpsearch.storage.journal): wait long enough for
    # a dead worker's trial to become stale and be re-queued.
    linger = HEARTBEAT_GRACE + 2 * HEARTBEAT_INTERVAL
    with storage_errors(settings.storage):
        arms = study_arms(preset, settings.design, objective=loaded is not None)
        objective: Callable[[optuna.Trial], float]
        if loaded is not None:
            objective = UserObjective(loaded, settings, arms)
        else:
            assert data is not None
            objective = Objective(preset, settings, data, arms)
        run_trials(study, objective, settings.trials, deadline=deadline, linger=linger,
                   on_trial=on_trial,
                   same_failures=SAME_FAILURES if loaded is not None else None)


def _worker_entry(preset: Preset, settings: Settings, parent: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with stop_signals():
            exit_with_parent(parent)
            run_worker(preset, settings)
    except KeyboardInterrupt as exc:
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    except HPSearchError as exc:  # one line, as the CLI prints it, not a traceback
        print(f"Error: {mask(str(exc))}", file=sys.stderr)
        sys.exit(1)


def run_jobs(preset: Preset, settings: Settings, study: optuna.Study,
             data: DeviceData | None, progress: bool,
             loaded: LoadedObjective | None = None) -> None:
    bar = ProgressBar(study, settings.trials, count(study, FINISHED)) if progress else None
    procs = [mp.get_context("spawn").Process(target=_worker_entry,
                                             args=(preset, settings, os.getpid()),
                                             daemon=False)
             for _ in range(settings.jobs - 1)]
    for p in procs:
        p.start()
    try:
        run_worker(preset, settings, on_trial=bar, study=study, data=data, loaded=loaded)
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
