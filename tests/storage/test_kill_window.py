"""The kill window: a worker killed between Optuna creating a trial and its first
heartbeat leaves a trial the next run recovers (SQLite, journal file, PostgreSQL).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from support.cli import TINY

from hpsearch.storage.open import load_study, open_storage


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------- 1. the kill window

# A worker whose first heartbeat is late by a minute: the window between Optuna creating
# the trial and its first heartbeat, held open so that a test can aim a SIGKILL into it.
_SLOW_FIRST_BEAT = """
import sys, time
import hpsearch.storage.journal as journal
import hpsearch.storage.open as opened

def late(record):
    def beat(self, trial_id):
        time.sleep(60)
        return record(self, trial_id)
    return beat

opened._RDBStorage.record_heartbeat = late(opened._RDBStorage.record_heartbeat)
journal.HeartbeatJournalStorage.record_heartbeat = late(
    journal.HeartbeatJournalStorage.record_heartbeat)
from hpsearch.cli import main
main(sys.argv[1:], prog_name="hpsearch")
"""


def _running_without_heartbeat(spec: str) -> list[int]:
    """Trials that are RUNNING and never beat, read without writing to the storage."""
    if spec.endswith(".log"):
        if not Path(spec).exists():
            return []
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        try:
            storage = JournalStorage(JournalFileBackend(spec))
            studies = storage.get_all_studies()
        except Exception:  # a line being written
            return []
        return [t.number for s in studies for t in storage.get_all_trials(
                    s._study_id, states=(optuna.trial.TrialState.RUNNING,))
                if "hpsearch:heartbeat" not in t.system_attrs]
    try:
        con = sqlite3.connect(f"file:{spec}?mode=ro", uri=True, timeout=1)
        try:
            rows = con.execute("select t.number from trials t left join trial_heartbeats h "
                               "on h.trial_id = t.trial_id where t.state = 'RUNNING' "
                               "and h.trial_id is null").fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or locked for a moment
        return []
    return [r[0] for r in rows]


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["kill.db", "kill.log"])
def test_a_kill_before_the_first_heartbeat_is_recovered_by_the_next_run(tmp_path, name):
    spec = str(tmp_path / name)
    env = {**os.environ, "HPSEARCH_HEARTBEAT_INTERVAL": "1", "HPSEARCH_HEARTBEAT_GRACE": "2",
           "OMP_NUM_THREADS": "1"}
    args = ["optimize", "--storage", spec, "--study-name", "k", "--trials", "3", *TINY]
    script = tmp_path / "slow_beat.py"
    script.write_text(_SLOW_FIRST_BEAT)
    worker = subprocess.Popen([sys.executable, str(script), *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _running_without_heartbeat(spec):  # aim: a trial in the window
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, "no trial reached the window"
            time.sleep(0.05)
        worker.kill()
    finally:
        worker.kill()
        worker.wait()
    assert _running_without_heartbeat(spec)  # the trial the kill left behind

    started = time.monotonic()
    again = subprocess.run([sys.executable, "-m", "hpsearch", *args], env=env,
                           capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert again.returncode == 0, again.stderr
    study = load_study(spec, "k")
    states = [t.state for t in study.trials]
    finished = states.count(optuna.trial.TrialState.COMPLETE)
    assert finished == 3, states  # exactly --trials, nothing missing
    assert optuna.trial.TrialState.RUNNING not in states
    assert took < 60, took  # not the ~100 s wait for a trial that never beats


def test_a_trial_that_never_beat_is_stale_after_the_grace_period(tmp_path, monkeypatch):
    """The same rule in-process, for SQLite and journal files (fast, no subprocess)."""
    import hpsearch.storage.open as opened

    monkeypatch.setattr(opened, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(opened, "HEARTBEAT_GRACE", 1)
    for name in ("a.db", "a.log"):
        storage = open_storage(str(tmp_path / name), create=True, heartbeat=True)
        study = optuna.create_study(storage=storage, study_name="a", direction="maximize")
        with pytest.warns(UserWarning, match="Heartbeat"):
            trial = study.ask()  # created, never beat: what a kill right after ask leaves
        assert storage._get_stale_trial_ids(study._study_id) == []  # just started: alive
        time.sleep(1.3)
        assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id], name


@pytest.mark.e2e
def test_a_trial_that_never_beat_is_stale_on_postgresql(postgres_url, monkeypatch):
    import uuid

    import hpsearch.storage.open as opened

    monkeypatch.setattr(opened, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(opened, "HEARTBEAT_GRACE", 1)
    storage = open_storage(postgres_url, create=True, heartbeat=True)
    study = optuna.create_study(storage=storage, study_name=f"never-beat-{uuid.uuid4()}",
                                direction="maximize")
    with pytest.warns(UserWarning, match="Heartbeat"):
        trial = study.ask()
    assert storage._get_stale_trial_ids(study._study_id) == []
    time.sleep(1.3)
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]
