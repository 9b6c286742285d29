"""verify's stored trainings across processes: killed and resumed, and two workers sharing.

Subprocesses on a tiny digits study (1 epoch, ``--fuse 1`` so that every training's
accuracy is the same bits whoever trains it).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState
from support.studies import trained_study

from hpsearch.schema import TRAINING
from hpsearch.storage import open_storage, study_names
from hpsearch.verify import verify
from hpsearch.verify.store import COMPANION, stored_trainings

pytestmark = pytest.mark.e2e

# 4 twins x 8 seeds, one look; 4 epochs, so that the run lasts long enough to be killed in
# the middle (at 1 epoch its 32 trainings took ~3 s and a loaded machine's poll could miss it)
ARGS = dict(question="init", seeds=8, epochs=4, fuse=1)


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return trained_study(str(tmp_path_factory.mktemp("verify_e2e") / "s.db"))


def copy_db(src: str, dst: str) -> None:
    """A copy that includes what the WAL holds (a plain file copy would miss it)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


def companion(db: str) -> optuna.Study:
    storage = open_storage(db)
    [name] = [n for n in study_names(storage) if n.endswith(COMPANION)]
    return optuna.load_study(study_name=name, storage=storage)


def trained_keys(db: str) -> list[str]:
    return [t.user_attrs[TRAINING]["key"] for t in stored_trainings(companion(db))]


def accs(result) -> list[tuple[list[float], list[float], str]]:
    return [(r.baseline_accs, r.alternative_accs, r.settled) for r in result.rows]


def test_killed_verify_resumes_with_only_what_is_missing(study_db, tmp_path):
    fresh = str(tmp_path / "fresh.db")
    copy_db(study_db, fresh)
    whole = verify(fresh, **ARGS)                       # the uninterrupted run
    assert whole.trained_here == whole.trainings == 32

    killed = str(tmp_path / "killed.db")
    copy_db(study_db, killed)
    cmd = [sys.executable, "-m", "hpsearch", "verify", killed, "--question", "init",
           "--seeds", "8", "--epochs", str(ARGS["epochs"]), "--fuse", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    before = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            before = len(trained_keys(killed))
        except (ValueError, KeyError):  # the companion study is not there yet
            continue
        if before >= 5:
            break
    assert proc.poll() is None, "verify finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(trained_keys(killed))
    assert 5 <= before < 32

    resumed = verify(killed, **ARGS)   # the dead process's claim is freed at once
    keys = trained_keys(killed)
    assert len(keys) == len(set(keys)) == 32           # nothing trained twice
    assert resumed.trained_here == 32 - before
    assert accs(resumed) == accs(whole)
    assert [r.verdict() for r in resumed.rows] == [r.verdict() for r in whole.rows]


def hpsearch_verify(db: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hpsearch", "verify", db, *args],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_workers_train_every_training_once(study_db, tmp_path):
    """Two verify processes on one study, started together; then
    one ``--jobs 2`` command. This process reads the file only when they have exited (it
    is not a worker: its connections would be another reader they must not outlive)."""
    db = str(tmp_path / "jobs.db")
    copy_db(study_db, db)
    args = ["--question", "activation", "--seeds", "8", "--epochs", "15", "--fuse", "1"]
    first = hpsearch_verify(db, *args)           # started together: both share the work
    second = hpsearch_verify(db, *args, "-q")
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == second.returncode == 0, outs
    lines = outs[0][1].splitlines()                 # a progress line per training it ran
    assert lines and all(line.startswith("trainings ") for line in lines), lines
    here = [int(out.split(" trained now")[0].rsplit(" ", 1)[1]) for out, _ in outs]
    assert sum(here) == 40 and min(here) > 0             # both trained, 5 twins x 8 seeds

    jobs = hpsearch_verify(db, "--question", "input_norm", "--seeds", "8", "--epochs", "3",
                           "--fuse", "1", "--jobs", "2", "-q")
    out, err = jobs.communicate(timeout=300)
    assert jobs.returncode == 0, err
    trials = companion(db).get_trials(deepcopy=False)
    done = Counter(t.user_attrs[TRAINING]["key"] for t in trials
                   if t.state == TrialState.COMPLETE)
    assert set(done.values()) == {1} and len(done) == 40 + 24   # 3 twins at 3 epochs


def _spawned_by(pid: int) -> list[int]:
    """The multiprocessing workers (spawned) whose parent is ``pid``, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                spawned = b"spawn_main" in f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and spawned:
            out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG: Linux")
def test_a_worker_stops_when_the_verify_that_started_it_is_killed(study_db, tmp_path):
    """SIGKILL leaves a parent no chance to stop its ``--jobs`` workers (nor does SIGTERM to
    a program calling the library without a handler): each worker goes when its parent
    does, instead of training on alone, and what it stored stays."""
    db = str(tmp_path / "orphans.db")
    copy_db(study_db, db)
    # 4 twins x 60 seeds x up to 100 epochs: a worker left alone trained on for 20 s here
    # (before workers went with their parent); it is given 8 s to go
    proc = hpsearch_verify(db, "--question", "init", "--seeds", "60", "--epochs", "100",
                           "--fuse", "1", "--jobs", "2", "-q")
    deadline, workers = time.monotonic() + 120, []
    while time.monotonic() < deadline and proc.poll() is None and not workers:
        time.sleep(0.2)
        workers = _spawned_by(proc.pid)
    assert workers, "verify --jobs 2 started no worker"
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            if trained_keys(db):  # training under way (the worker has its data)
                break
        except (ValueError, KeyError):
            continue
    assert proc.poll() is None, "verify finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone = time.monotonic() + 8
    while time.monotonic() < gone and any(_alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "a worker trains on without its parent"
    keys = trained_keys(db)
    assert len(keys) == len(set(keys)) >= 1
