"""Stop signals to a real ``hpsearch optimize`` process: the exit code a scheduler reads.

A paired-design trial trains its arms in threads (:mod:`hpsearch.optimize.lockstep`). A
thread still inside torch when the interpreter exits is ended by the C runtime in the middle
of C++ code: ``terminate called without an active exception`` and exit 134 (SIGABRT), which
Slurm and systemd read as a crash. Each run here is signalled at a random moment after its third
epoch. An abort was rare (2 signals in 60 before the fix, on a loaded machine), so this test
alone seldom catches it; test_signals.py's in-process tests catch its cause every time.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# A CNN on digits: the arms spend their time inside torch's ops, where the abort happened.
# Adam at a small learning rate improves for many epochs, so the first trial is not ended
# by early stopping within seconds (a drawn config was, and the signal then fell between
# trials, where no trial runs to fail).
CMD = ["optimize", "--dataset", "digits", "--epochs", "30", "--trials", "50",
       "--question", "bn_placement", "--design", "paired", "--set", "model=cnn",
       "--set", "optimizer=adam", "--set", "lr=0.0003", "-q"]


def _epochs(db: Path) -> int:
    """Epochs the running trial reported so far (a paired trial reports the arms' mean once
    per epoch)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute(
                "SELECT COUNT(*) FROM trial_intermediate_values v JOIN trials t "
                "ON v.trial_id = t.trial_id WHERE t.state = 'RUNNING'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return 0


def _states(db: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    finally:
        con.close()


def _signal_a_paired_run(db: Path, signum: int, rng: random.Random) -> tuple[int, str, float]:
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch", *CMD, "--storage", str(db)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = time.monotonic()
    try:
        deadline = started + 120
        while _epochs(db) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "optimize ended before it could be signalled"
        time.sleep(rng.uniform(0.0, 1.5))
        sent = time.monotonic()
        print(f"{signum.name} after {sent - started:.1f} s", flush=True)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_signals_to_a_paired_run_exit_130_or_143_every_time(tmp_path):
    rng = random.Random(0)
    runs = [(signal.SIGTERM, 143)] * 4 + [(signal.SIGINT, 130)] * 2
    seen = []
    for i, (signum, code) in enumerate(runs):
        rc, err, took = _signal_a_paired_run(tmp_path / f"s{i}.db", signum, rng)
        seen.append((signum.name, rc, round(took, 1)))
        assert "terminate called" not in err and "Fatal Python error" not in err, (seen, err)
        assert rc == code, (seen, err)
        assert "Traceback" not in err, err
        assert took < 20, seen  # the arms stop mid-epoch, not at the epoch's end
        # the running trial failed, none is left RUNNING: a re-run resumes the study
        states = _states(tmp_path / f"s{i}.db")
        assert states.get("FAIL") == 1 and "RUNNING" not in states, (seen, states)
