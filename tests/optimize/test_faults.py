"""Trial faults: a bad trial ends as pruned or failed with its reason, and the study goes on.

In-process and fast: the trainer is monkeypatched to misbehave on chosen trials, and the
budget loop (`run_trials`) is driven with pure-Optuna objectives where training is irrelevant.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sqlite3
import time

import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

import hpsearch.optimize.objective
import hpsearch.storage.open
import hpsearch.storage.specs
from hpsearch.cli import main
from hpsearch.errors import StorageError, StudyError
from hpsearch.optimize import optimize
from hpsearch.optimize.signals import Terminated, stop_signals
from hpsearch.optimize.study import FINISHED
from hpsearch.optimize.workers import MAX_CONSECUTIVE_FAILURES, OVER_BUDGET, Budgeted, run_trials
from hpsearch.settings import Settings
from hpsearch.space.presets import Preset
from hpsearch.storage.open import load_study, open_storage
from hpsearch.training.loop import train as real_train

FAST = Preset(name="fast", fixed={"model": "mlp", "hidden_layers": 1, "hidden_units": 64,
                                  "batch_size": 128})



@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """optimize() sets torch's threads from OMP_NUM_THREADS: one, on 2 shared cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _settings(tmp_path, trials: int = 3) -> Settings:
    return Settings(dataset="synthetic", epochs=1, trials=trials, val_size=400,
                    storage=str(tmp_path / "s.db"))


def _faulty_train(monkeypatch, fault):
    """Replace the objective's ``train``: ``fault(trial_number, cfg)`` may raise or change cfg.

    With study seed 0 a trial's training seed is its number (objective.training_seed).
    """
    def train(cfg, data, **kw):
        cfg = fault(kw["seed"], cfg) or cfg
        return real_train(cfg, data, **kw)

    monkeypatch.setattr(hpsearch.optimize.objective, "train", train)


def _finished_numbers(storage: str) -> list[int]:
    return sorted(t.number for t in load_study(storage).get_trials(states=FINISHED))


def test_nan_loss_prunes_the_trial_and_stores_why(tmp_path, monkeypatch):
    # lr=1e30 really diverges: the trainer sees a non-finite loss in epoch 1.
    _faulty_train(monkeypatch, lambda n, cfg: dataclasses.replace(cfg, lr=1e30) if n == 1
                  else None)
    settings = _settings(tmp_path)
    summary = optimize(FAST, settings, progress=False)
    trial = load_study(settings.storage).trials[1]
    assert trial.state == TrialState.PRUNED
    assert "non-finite loss at epoch 1" in trial.user_attrs["failure_reason"]
    assert trial.user_attrs["run"]["stop_reason"] == "diverged"
    assert summary.n_finished == 3 and summary.states == {"COMPLETE": 2, "PRUNED": 1}


def test_out_of_memory_fails_that_trial_and_the_study_goes_on(tmp_path, monkeypatch):
    def oom(n, cfg):
        if n == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    _faulty_train(monkeypatch, oom)
    settings = _settings(tmp_path)
    summary = optimize(FAST, settings, progress=False)
    trial = load_study(settings.storage).trials[1]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["failure_reason"] == (
        "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert summary.n_finished == 3 and _finished_numbers(settings.storage) == [0, 2, 3]


def test_an_exception_in_one_trial_never_kills_the_study(tmp_path, monkeypatch):
    def boom(n, cfg):
        if n in (0, 2):
            raise RuntimeError(f"boom in trial {n}")

    _faulty_train(monkeypatch, boom)
    settings = _settings(tmp_path)
    summary = optimize(FAST, settings, progress=False)
    study = load_study(settings.storage)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.user_attrs["failure_reason"] for t in failed] == [
        "RuntimeError: boom in trial 0", "RuntimeError: boom in trial 2"]
    assert summary.n_finished == 3 and _finished_numbers(settings.storage) == [1, 3, 4]


def _always(exc: Exception):
    def fault(n, cfg):
        raise exc
    return fault


def test_a_study_whose_every_trial_fails_stops_with_a_clear_message(tmp_path, monkeypatch):
    _faulty_train(monkeypatch, _always(RuntimeError("CUDNN_STATUS_NOT_INITIALIZED")))
    settings = _settings(tmp_path, trials=50)
    with pytest.raises(StudyError, match=f"the first {MAX_CONSECUTIVE_FAILURES} trials all "
                       "failed.*RuntimeError: CUDNN_STATUS_NOT_INITIALIZED"):
        optimize(FAST, settings, progress=False)
    trials = load_study(settings.storage).trials
    assert len(trials) == MAX_CONSECUTIVE_FAILURES
    assert all(t.state == TrialState.FAIL for t in trials)


def test_every_trial_failing_is_one_error_line_on_the_command_line(tmp_path, monkeypatch):
    _faulty_train(monkeypatch, _always(RuntimeError("no kernel image is available")))
    result = CliRunner().invoke(main, [
        "optimize", "--storage", str(tmp_path / "s.db"), "--trials", "20", "--dataset",
        "synthetic", "--epochs", "1", "--model", "mlp", "--set", "hidden_units=64", "-q"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: the first {MAX_CONSECUTIVE_FAILURES} trials all failed, so "
                      "this worker stopped; last reason: RuntimeError: no kernel image is "
                      "available"]


# ---------------------------------------------------------------- the budget loop alone


def _x(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0, 1)


def test_failures_after_successes_stop_the_worker_too(tmp_path):
    """A worker whose trials all fail (GPU gone, disk full) must not loop forever."""
    study = optuna.create_study(direction="maximize")
    study.optimize(_x, n_trials=2)

    def broken(trial: optuna.Trial) -> float:
        trial.set_user_attr("failure_reason", "OSError: no space left on device")
        raise OSError("no space left on device")

    with pytest.raises(StudyError, match="this worker's last 5 trials all failed.*no space"):
        run_trials(study, broken, 100)
    assert len(study.trials) == 2 + MAX_CONSECUTIVE_FAILURES


def test_two_workers_racing_for_the_last_place_do_not_overshoot():
    """Both checked the budget before either asked for a trial: the later one must not run."""
    study = optuna.create_study(direction="maximize")
    in_flight = [study.ask() for _ in range(2)]    # two other workers' trials
    ran = []
    objective = Budgeted(lambda t: ran.append(t.number) or 1.0, 2)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("optuna.study._optimize")
    log.addHandler(handler)
    log.addFilter(objective)
    try:
        study.optimize(objective, n_trials=1, catch=(Exception,))
    finally:
        log.removeHandler(handler)
        log.removeFilter(objective)
    skipped = study.trials[2]
    assert ran == [] and skipped.state == TrialState.FAIL
    assert skipped.user_attrs["failure_reason"] == OVER_BUDGET
    assert not records  # no traceback warning for a trial that never ran
    for t in in_flight:
        study.tell(t, 0.5)
    assert len(study.get_trials(states=FINISHED)) == 2


def test_a_worker_stops_when_the_rest_of_the_budget_is_running_elsewhere():
    study = optuna.create_study(direction="maximize")
    study.optimize(_x, n_trials=2)
    study.ask()  # another (live) worker's trial
    start = time.monotonic()
    run_trials(study, _x, 3, linger=0)
    assert time.monotonic() - start < 1 and len(study.trials) == 3


def _heartbeat_storage(tmp_path, monkeypatch) -> optuna.storages.BaseStorage:
    monkeypatch.setattr(hpsearch.storage.open, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(hpsearch.storage.open, "HEARTBEAT_GRACE", 1)
    return open_storage(str(tmp_path / "hb.db"), create=True, heartbeat=True)


def test_a_dead_workers_trial_is_failed_and_rerun_by_a_waiting_worker(tmp_path, monkeypatch):
    storage = _heartbeat_storage(tmp_path, monkeypatch)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.optimize(_x, n_trials=2)
    dead = study.ask()  # a worker that started a trial, sent one heartbeat and was killed
    x = dead.suggest_float("x", 0, 1)
    storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]

    start = time.monotonic()
    run_trials(study, _x, 3, linger=10)   # waits for the grace period, then re-runs it
    assert time.monotonic() - start < 10
    trials = study.trials
    assert trials[dead.number].state == TrialState.FAIL
    retry = [t for t in trials
             if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == dead.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == {"x": x}
    assert len(study.get_trials(states=FINISHED)) == 3
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def test_a_rerun_runs_waiting_trials_first(tmp_path):
    study = optuna.create_study(direction="maximize",
                                storage=open_storage(str(tmp_path / "q.log"), create=True))
    study.optimize(_x, n_trials=1)
    study.enqueue_trial({"x": 0.25})      # e.g. a re-queued copy of a dead worker's trial
    run_trials(study, _x, 2)
    assert [t.params["x"] for t in study.trials][1] == 0.25
    assert len(study.trials) == 2


def test_a_trial_that_never_beat_is_failed_and_rerun_after_the_grace_period(tmp_path,
                                                                            monkeypatch):
    """A RUNNING trial that never sent a heartbeat (its worker was killed between Optuna
    creating it and the first heartbeat) is judged by its start time: failed once it is
    older than the grace period and re-run, so the budget is reached (issue 20)."""
    storage = _heartbeat_storage(tmp_path, monkeypatch)
    study = optuna.create_study(storage=storage, direction="maximize")
    zombie = study.ask()  # what a kill right after Optuna's ask leaves
    start = time.monotonic()
    run_trials(study, _x, 1, linger=30)
    assert 1 <= time.monotonic() - start < 10  # the grace period, not the linger
    assert study.trials[zombie.number].state == TrialState.FAIL
    assert len(study.get_trials(states=FINISHED)) == 1


def test_deadline_stops_a_waiting_worker(tmp_path, monkeypatch):
    storage = _heartbeat_storage(tmp_path, monkeypatch)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.ask()
    start = time.monotonic()
    run_trials(study, _x, 1, linger=60, deadline=start + 1)
    assert time.monotonic() - start < 3


def test_storage_locked_in_the_middle_of_a_run_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(hpsearch.storage.specs, "SQLITE_TIMEOUT", 0.5)
    settings = _settings(tmp_path, trials=3)
    holder: list[sqlite3.Connection] = []

    def lock_the_file(n, cfg):
        if n == 1:  # another program takes an exclusive lock and keeps it
            con = sqlite3.connect(settings.storage, isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            holder.append(con)

    _faulty_train(monkeypatch, lock_the_file)
    try:
        with pytest.raises(StorageError, match="failed: .*database is locked.*run the same "
                           "command again"):
            optimize(FAST, settings, progress=False)
    finally:
        for con in holder:
            con.rollback()
            con.close()
    assert _finished_numbers(settings.storage) == [0]


# ---------------------------------------------------------------- one line, not tracebacks


class _Records(logging.Handler):
    """Every record Optuna's loggers emit while a test runs (they do not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def optuna_records():
    handler = _Records()
    log = logging.getLogger("optuna")
    log.addHandler(handler)
    try:
        yield handler.records
    finally:
        log.removeHandler(handler)


def test_trials_that_all_fail_print_one_line_and_no_traceback(tmp_path, monkeypatch,
                                                              optuna_records):
    too_small = ValueError("input (1, 4, 4) is too small for 3 pooling blocks; use --model "
                           "mlp")
    _faulty_train(monkeypatch, _always(too_small))
    result = CliRunner().invoke(main, [
        "optimize", "--storage", str(tmp_path / "s.db"), "--trials", "20", "--dataset",
        "synthetic", "--epochs", "1", "--model", "cnn", "-q"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error")] == [
        f"Error: the first {MAX_CONSECUTIVE_FAILURES} trials all failed, so this worker "
        f"stopped; last reason: ValueError: {too_small}"]
    warnings = [r for r in optuna_records if r.levelno >= logging.WARNING]
    assert not warnings, [r.getMessage()[:200] for r in warnings]


@pytest.mark.parametrize("interrupt, reason", [
    (KeyboardInterrupt(), "interrupted by SIGINT (Ctrl-C)"),
    (Terminated(), "terminated by SIGTERM"),
])
def test_an_interrupt_fails_the_trial_with_its_reason_and_no_traceback(interrupt, reason,
                                                                       optuna_records):
    study = optuna.create_study(direction="maximize")
    study.optimize(_x, n_trials=1)

    def stopped(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        raise interrupt

    with pytest.raises(KeyboardInterrupt) as raised:
        run_trials(study, stopped, 5)
    assert raised.value is interrupt
    trial = study.trials[1]
    assert trial.state == TrialState.FAIL and trial.user_attrs["failure_reason"] == reason
    assert not [r for r in optuna_records if r.levelno >= logging.WARNING]


def test_sigterm_raises_terminated_once_and_is_restored_after():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), stop_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at once
    assert signal.getsignal(signal.SIGTERM) == before


def test_failed_trials_are_one_warning_line_at_the_end(tmp_path, monkeypatch, optuna_records):
    def boom(n, cfg):
        if n == 1:
            raise RuntimeError("boom in trial 1")

    _faulty_train(monkeypatch, boom)
    result = CliRunner().invoke(main, [
        "optimize", "--storage", str(tmp_path / "s.db"), "--trials", "3", "--dataset",
        "synthetic", "--epochs", "1", "--model", "mlp", "--set", "hidden_units=64", "-q"])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("warning")] == [
        "warning: 1 failed trial in the study; the last one: RuntimeError: boom in trial 1"]
    assert not [r for r in optuna_records if r.levelno >= logging.WARNING]


def test_a_stop_signal_in_ask_or_tell_waits_for_a_safe_place():
    """Optuna fails a trial only when its objective raises: a Ctrl-C that lands while it
    creates or tells a trial would leave that trial RUNNING, so it is held until then."""
    from hpsearch.optimize.signals import deferred, interruptible

    with stop_signals():
        with pytest.raises(KeyboardInterrupt), deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)           # held: no KeyboardInterrupt here ...
            held = True
        assert held                   # ... but on leaving the block
        with pytest.raises(Terminated), deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            with interruptible():     # the objective starts: raised at once
                pytest.fail("not reached")


def test_a_stop_signal_swallowed_by_a_finalizer_is_raised_at_the_next_epoch() -> None:
    """SIGINT landing in a weakref callback is printed as "Exception ignored" and lost;
    the next epoch raises it again, so the run stops instead of finishing with exit 0."""
    import os
    import signal

    from hpsearch.optimize.signals import check, stop_signals

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # delivered while Python runs __del__

    with stop_signals():
        Finalized()  # the KeyboardInterrupt is raised inside __del__ and ignored
        with pytest.raises(KeyboardInterrupt):
            check()
        check()  # raised once, not again


def test_a_trial_failed_by_another_worker_mid_start_is_not_a_crash() -> None:
    """Another worker judged this worker's new trial dead before its first heartbeat and
    failed it: Optuna refuses this worker's next write to it; the worker goes on."""
    study = optuna.create_study(direction="maximize")
    calls = {"n": 0}
    real = study.optimize

    def optimize(func, **kwargs):  # the refusal comes from ask/tell, not the objective
        if calls["n"] == 0:
            calls["n"] += 1
            raise optuna.exceptions.UpdateFinishedTrialError("Trial#0 has already finished")
        return real(func, **kwargs)

    study.optimize = optimize  # type: ignore[method-assign]
    run_trials(study, lambda t: 1.0, 2)
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 2


def test_a_trial_failed_by_another_worker_while_it_ran_is_not_a_crash() -> None:
    """Another worker failed this worker's running trial as dead (its heartbeat late on a
    loaded machine): Optuna's tell then refuses it with "Cannot tell a FAIL trial"
    (a ValueError); the worker goes on with the next trial (seen in a CI-like run)."""
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 0:  # what fail_stale_trials in another worker does to it
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return 1.0

    run_trials(study, objective, 2)
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL and states.count(TrialState.COMPLETE) == 2
