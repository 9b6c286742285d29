"""Journal files: torn lines repaired (nothing complete lost), dead workers' trials failed."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from support.mounts import tiny_disk

import hpsearch.storage.open
from hpsearch.cli import main
from hpsearch.optimize.study import FINISHED
from hpsearch.optimize.workers import fail_stale_trials
from hpsearch.schema import HEARTBEAT
from hpsearch.space import PARAM_BY_NAME
from hpsearch.storage import owner
from hpsearch.storage.journal import RepairingBackend
from hpsearch.storage.open import load_study, open_storage

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--dataset", "synthetic", "--epochs", "1", "--model", "mlp", "--set", "hidden_layers=1",
        "--set", "hidden_units=64", "-q"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _optimize_in_a_process(log: Path, trials: int) -> None:
    """A run whose process is gone afterwards, as a crashed one is."""
    done = subprocess.run([sys.executable, "-m", "hpsearch", "optimize", "--storage", str(log),
                           "--trials", str(trials), *TINY], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _finished(log: Path) -> set[int]:
    return {t.number for t in load_study(str(log)).get_trials(states=FINISHED)}


def test_a_torn_last_line_is_set_aside_and_re_runs_finish_the_study(tmp_path):
    log = tmp_path / "study.log"
    _optimize_in_a_process(log, 4)
    data = log.read_bytes()
    log.write_bytes(data[:-37])  # disk full or killed mid-write: the last line is torn
    kept = _finished(log)        # Optuna skips a torn last line: the rest reads
    assert len(kept) >= 3

    result = CliRunner().invoke(main, ["optimize", "--storage", str(log), "--trials", "6",
                                       *TINY])
    assert result.exit_code == 0, result.output
    side = list(tmp_path.glob("study.log.torn-*"))
    torn = data[data[:-37].rfind(b"\n") + 1:-37]  # what was left of the last line
    assert len(side) == 1 and side[0].read_bytes() == torn + b"\n"
    warning = [line for line in result.output.splitlines()
               if line.startswith("warning: journal")]
    assert len(warning) == 1, result.output
    assert "ended in an incomplete line" in warning[0] and str(side[0]) in warning[0]
    assert "kept" in warning[0] and "complete operations" in warning[0]
    # ... and a second re-run (which made the file unreadable for good) reads it too.
    again = CliRunner().invoke(main, ["optimize", "--storage", str(log), "--trials", "7",
                                      *TINY])
    assert again.exit_code == 0, again.output
    finished = _finished(log)
    assert len(finished) == 7 and kept <= finished
    assert all(line.endswith(b"}") for line in log.read_bytes().splitlines())


def _journal_study(log: Path, n: int = 3) -> optuna.Study:
    study = optuna.create_study(storage=open_storage(str(log), create=True),
                                study_name="j", direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    return study


def test_a_journal_an_older_writer_glued_together_is_rescued(tmp_path, caplog):
    log = tmp_path / "study.log"
    _journal_study(log)
    log.write_bytes(log.read_bytes()[:-37])
    # What hpsearch 0.1 did next: Optuna's own backend appends after the torn line.
    old = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(log))))
    old.set_user_attr("glued", "to the torn line")
    with pytest.raises(ValueError):  # written, then read back: the glued line is not JSON
        old.set_user_attr("after", "the crash")
    with pytest.raises(ValueError):  # unreadable for Optuna from now on
        JournalStorage(JournalFileBackend(str(log)))

    study = load_study(str(log))
    assert study.user_attrs == {"glued": "to the torn line", "after": "the crash"}
    assert len(study.get_trials(states=FINISHED)) == 2  # the torn one's end is lost
    assert "had 1 unreadable line(s)" in caplog.text
    assert len(list(tmp_path.glob("study.log.torn-*"))) == 1


def test_a_write_on_a_full_disk_tears_no_line(tmp_path):
    with tiny_disk(64) as disk:
        log = disk / "study.log"
        study = _journal_study(log, 1)
        filler = disk / "filler"
        with filler.open("wb") as f:  # leave about 150 bytes: less than the next write
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            f.write(b"x" * max(0, free - 150))
        with pytest.raises(OSError):
            for i in range(100):
                study.set_user_attr(f"k{i}", "y" * 200)
        assert log.read_bytes().endswith(b"\n")
        filler.unlink()
        assert load_study(str(log)).trials[0].state == TrialState.COMPLETE


# ---------------------------------------------------------------- stale trials


def _beat(storage, trial_id: int, **who) -> None:  # type: ignore[no-untyped-def]
    storage.set_trial_system_attr(trial_id, HEARTBEAT, {**owner.identity(), **who})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_journal_trials_are_those_of_dead_owners_or_old_heartbeats(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(hpsearch.storage.open, "HEARTBEAT_GRACE", 30)
    storage = open_storage(str(tmp_path / "s.log"), create=True, heartbeat=True)
    study = optuna.create_study(storage=storage, direction="maximize")
    trials = [study.ask() for _ in range(5)]
    ids = [t._trial_id for t in trials]
    _beat(storage, ids[0], time=time.time())                           # alive, here
    _beat(storage, ids[1], time=time.time(), pid=_dead_pid())          # dead, here
    _beat(storage, ids[2], time=time.time(), host="elsewhere", pid=1)  # elsewhere, recent
    _beat(storage, ids[3], time=time.time() - 100, host="elsewhere")   # elsewhere, lease over
    # ids[4]: no heartbeat yet, started just now: stale only once its start is older than
    # the grace period (storage/test_kill_window.py: a kill before the first heartbeat)
    assert sorted(storage._get_stale_trial_ids(study._study_id)) == [ids[1], ids[3]]


def test_a_requeued_copy_is_not_failed_for_its_originals_heartbeat(tmp_path):
    """Optuna's retry copies the dead trial's system attrs, our heartbeat among them: the
    worker that claims the copy owns a RUNNING trial whose beat names a dead pid until its
    own first beat. Another worker must not fail it in that window (the copy's one retry
    was once spent so, and the study kept a FAIL)."""
    storage = open_storage(str(tmp_path / "s.log"), create=True, heartbeat=True)
    study = optuna.create_study(storage=storage, direction="maximize")
    dead = study.ask()
    gone = _dead_pid()
    _beat(storage, dead._trial_id, time=time.time(), pid=gone)
    fail_stale_trials(study)
    assert study.trials[dead.number].state == TrialState.FAIL
    claimed = study.ask()  # the WAITING copy, as a live worker claims it
    assert study.trials[claimed.number].system_attrs["failed_trial"] == dead.number
    assert storage._get_stale_trial_ids(study._study_id) == []  # before its first beat
    _beat(storage, claimed._trial_id, time=time.time(), pid=_dead_pid())  # its worker dies
    assert storage._get_stale_trial_ids(study._study_id) == [claimed._trial_id]


@pytest.mark.filterwarnings("error:Inconsistent parameter values:RuntimeWarning")
def test_a_killed_workers_journal_trial_is_failed_and_rerun(tmp_path):
    """A worker SIGKILLed mid-trial (same host): the next worker sees its pid is gone, and
    the retried trial (which carries its original's params and distributions) samples from
    the same space as the run: no 'Inconsistent parameter values' warning, made an error."""
    log = tmp_path / "s.log"
    storage = open_storage(str(log), create=True, heartbeat=True)
    study = optuna.create_study(storage=storage, study_name="full-synthetic",
                                direction="maximize")
    dead = study.ask()
    p = PARAM_BY_NAME["dropout"]
    x = dead.suggest_float(p.name, p.low, p.high, step=p.step)  # as the space has it
    _beat(storage, dead._trial_id, time=time.time(), pid=_dead_pid())
    study.set_user_attr("provenance", None)  # the CLI fills it in: no other settings

    result = CliRunner().invoke(main, ["optimize", "--storage", str(log), "--trials", "3",
                                       *TINY])
    assert result.exit_code == 0, result.output
    trials = load_study(str(log)).trials
    assert trials[dead.number].state == TrialState.FAIL
    assert len([t for t in trials if t.state in FINISHED]) == 3
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == dead._trial_id]
    assert len(retried) == 1 and retried[0].params["dropout"] == x
    assert retried[0].state in FINISHED, retried[0].user_attrs


def test_a_study_whose_trials_sampled_another_space_is_refused(tmp_path):
    """A trial that sampled dropout continuously (an older space, another --set range):
    resuming would make Optuna ignore this run's distribution for it (a RuntimeWarning) and
    the sampler leave dropout out of its search space. One line, nothing written."""
    log = tmp_path / "s.log"
    storage = open_storage(str(log), create=True, heartbeat=True)
    study = optuna.create_study(storage=storage, study_name="full-synthetic",
                                direction="maximize")
    dead = study.ask()
    dead.suggest_float("dropout", 0.0, 0.7)  # no step: the space has step 0.1
    _beat(storage, dead._trial_id, time=time.time(), pid=_dead_pid())
    before = log.read_bytes()
    result = CliRunner().invoke(main, ["optimize", "--storage", str(log), "--trials", "2",
                                       *TINY])
    assert result.exit_code == 1, result.output
    assert "trial #0 sampled dropout from 0..0.7 continuous, and this run's space samples " \
           "it from 0..0.7 step 0.1" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert log.read_bytes() == before
    # The same study resumed with the range it was made with (a preset narrowing
    # dropout to it) would be one space again; another --set range is refused the same way.
    other = CliRunner().invoke(main, ["optimize", "--storage", str(log), "--trials", "2",
                                      "--set", "dropout=0.0..0.5", *TINY])
    assert other.exit_code == 1 and "0..0.5 step 0.1" in other.output, other.output


def test_heartbeats_are_recorded_with_the_owner(tmp_path, monkeypatch):
    monkeypatch.setattr(hpsearch.storage.open, "HEARTBEAT_INTERVAL", 1)
    storage = open_storage(str(tmp_path / "s.log"), create=True, heartbeat=True)
    study = optuna.create_study(storage=storage, direction="maximize")
    seen = []

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.2)
        seen.append(storage.get_trial(trial._trial_id).system_attrs.get(HEARTBEAT))
        return 1.0

    study.optimize(objective, n_trials=1)
    beat = seen[0]
    assert beat["host"] == platform.node() and beat["pid"] == os.getpid()
    assert abs(beat["time"] - time.time()) < 60


def test_the_repairing_backend_reads_what_optuna_wrote(tmp_path):
    log = tmp_path / "s.log"
    _journal_study(log)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    backend = RepairingBackend(str(log))
    assert list(backend.read_logs(0)) == lines
