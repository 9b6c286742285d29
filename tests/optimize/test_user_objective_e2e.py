"""A user's objective across processes: workers on PostgreSQL and journal files, a worker
killed mid-trial, the study resumed; ``--jobs`` workers that import the objective themselves.

``e2e``: real processes (and the session's throw-away PostgreSQL, skipped with a reason when
it is not installed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hpsearch import schema
from hpsearch.optimize.study import FINISHED
from hpsearch.storage.open import load_study

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

# Sleeps per step (STEP_SLEEP), so a worker can be killed mid-trial; the victim writes the
# number of the trial it is in (TRIAL_FILE).
SLOW = '''
import os
import time


def objective(trial, seed=0, split="validation"):
    x = trial.suggest_float("x", -1.0, 1.0)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    if os.environ.get("TRIAL_FILE"):
        with open(os.environ["TRIAL_FILE"], "a") as f:
            f.write(f"{trial.number}\\n")
    for step in range(2):
        time.sleep(float(os.environ.get("STEP_SLEEP", "0.1")))
        trial.report(1.0 - x * x, step)
    return 1.0 - x * x - (0.1 if kind == "b" else 0.0)
'''


def _start(tmp_path: Path, storage: str, trials: int, *, sleep: float = 0.1,
           trial_file: Path | None = None, jobs: int = 1) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STEP_SLEEP": str(sleep),
           "TRIAL_FILE": str(trial_file or ""), "HPSEARCH_HEARTBEAT_INTERVAL": "1",
           "HPSEARCH_HEARTBEAT_GRACE": "3", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "optimize", "--objective", "slow.py:objective",
         "--storage", storage, "--study-name", "own", "--trials", str(trials), "--question",
         "kind", "--jobs", str(jobs), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL),
                            signal.signal(signal.SIGTERM, signal.SIG_DFL)))


def _check(storage: str, n: int) -> list[optuna.trial.FrozenTrial]:
    trials = load_study(storage, "own").trials
    assert sum(t.state in FINISHED for t in trials) == n
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in trials:
        if t.state in FINISHED:  # every finished trial ran both arms of its config
            assert set(schema.arms(t) or {}) == {"a", "b"}
    return trials


@pytest.mark.parametrize("backend", ["postgresql", "journal"])
def test_a_killed_worker_is_retried_and_the_study_resumes(request, tmp_path, backend):
    (tmp_path / "slow.py").write_text(textwrap.dedent(SLOW))
    storage = (request.getfixturevalue("postgres_db") if backend == "postgresql"
               else str(tmp_path / "own.log"))
    n = 6
    marker = tmp_path / "victim-trial"
    victim = _start(tmp_path, storage, n, sleep=30, trial_file=marker)
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline and victim.poll() is None, victim.communicate()
        time.sleep(0.2)
    killed = int(marker.read_text().split()[0])
    # the survivors start once the victim is inside a trial: started together, on a loaded
    # machine they could finish the whole study before the victim had imported its objective
    survivors = [_start(tmp_path, storage, n) for _ in range(2)]
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    for p in survivors:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    trials = _check(storage, n)
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert len(retries) == 1 and retries[0].state in FINISHED
    # resume: the same command with a larger budget finishes exactly what is missing
    again = _start(tmp_path, storage, n + 3)
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err[-3000:]
    assert "9 finished trials" in out and "3 ran now" in out
    _check(storage, n + 3)


def test_jobs_workers_import_the_objective_themselves(tmp_path):
    (tmp_path / "slow.py").write_text(textwrap.dedent(SLOW))
    # 1 s per arm, 2 arms: 12 trials outlast a spawned worker's start on a loaded machine
    proc = _start(tmp_path, str(tmp_path / "own.db"), 12, jobs=2, sleep=0.5)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    trials = _check(str(tmp_path / "own.db"), 12)
    workers = {(schema.run_info(t) or {}).get("worker") for t in trials if t.state in FINISHED}
    assert len(workers) == 2  # both processes ran trials
