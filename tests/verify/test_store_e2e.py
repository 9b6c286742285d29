"""verify stores each training the moment it finishes: a SIGKILL loses only the one it cut.

A child process runs ``hpsearch verify`` with the trainer patched to SIGKILL the process
when it starts its Nth training (or fused group): deterministic, on a tiny digits study.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from optuna.trial import TrialState
from support.studies import trained_study

from hpsearch.schema import TRAINING
from hpsearch.storage import open_storage, study_names
from hpsearch.verify import verify
from hpsearch.verify.store import COMPANION, stored_trainings

pytestmark = pytest.mark.e2e


# Runs the CLI with trainer.<name> replaced by one that SIGKILLs the process on call <at>.
CHILD = textwrap.dedent("""
    import os, signal, sys
    import hpsearch.training.fused.trainer as trainer
    name, at = sys.argv[1], int(sys.argv[2])
    real, calls = getattr(trainer, name), [0]
    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(trainer, name, dying)
    from hpsearch.cli import main
    main(sys.argv[3:])
""")


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return trained_study(str(tmp_path_factory.mktemp("store_e2e") / "s.db"))


@pytest.fixture(scope="module")
def journal_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    return trained_study(str(tmp_path_factory.mktemp("store_e2e") / "s.log"))


def _kill_at(spec: str, patched: str, at: int, fuse: str) -> subprocess.CompletedProcess:
    args = ["verify", spec, "--question", "init", "--seeds", "8", "--epochs", "1",
            "--fuse", fuse]
    return subprocess.run([sys.executable, "-c", CHILD, patched, str(at), *args],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                          capture_output=True, timeout=300)


def _companion_states(spec: str) -> dict[str, int]:
    storage = open_storage(spec)
    [name] = [n for n in study_names(storage) if n.endswith(COMPANION)]
    trials = storage.get_all_trials(storage.get_study_id_from_name(name))
    return {s.name: sum(t.state == s for t in trials) for s in TrialState
            if any(t.state == s for t in trials)}


def test_a_killed_verify_on_a_journal_leaves_no_queue(journal_log, tmp_path):
    """Optuna's stale-trial retry re-queued the dead claims as WAITING trials that verify
    never runs (after one SIGKILL: COMPLETE 16, FAIL 7, WAITING 7)."""
    import shutil

    log = str(tmp_path / "k.log")
    shutil.copy(journal_log, log)
    child = _kill_at(log, "train", 3, "1")
    assert child.returncode == -9, child.stderr
    again = verify(log, question="init", seeds=8, epochs=1, fuse=1)
    assert again.trainings == 32 and again.trained_here == 30
    states = _companion_states(log)
    assert states == {"COMPLETE": 32, "FAIL": 6}, states  # the dead claims, failed once


def _companion_keys(db: str) -> list[str]:
    storage = open_storage(db)
    [name] = [n for n in study_names(storage) if n.endswith(COMPANION)]
    import optuna

    study = optuna.load_study(study_name=name, storage=storage)
    return [t.user_attrs[TRAINING]["key"] for t in stored_trainings(study)]


@pytest.mark.parametrize("fuse, patched, at, kept", [
    ("1", "train", 8, 7),          # one by one: the 8th of 8 claimed trainings is cut
    ("2", "train_fused", 4, 6),    # fused in pairs: the 4th group is cut, 3 groups kept
])
def test_a_sigkill_mid_batch_keeps_every_finished_training(study_db, tmp_path, fuse,
                                                           patched, at, kept):
    import sqlite3

    db = str(tmp_path / "k.db")
    src, dst = sqlite3.connect(study_db), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    child = _kill_at(db, patched, at, fuse)
    assert child.returncode == -9, child.stderr
    # each stored training printed its line when it was stored, before the kill
    lines = [x for x in child.stderr.splitlines() if x.startswith("trainings ")]
    assert len(lines) == kept, child.stderr
    assert len(_companion_keys(db)) == kept

    again = verify(db, question="init", seeds=8, epochs=1, fuse=int(fuse))
    keys = _companion_keys(db)
    assert len(keys) == len(set(keys)) == again.trainings == 32   # nothing trained twice
    assert again.trained_here == 32 - kept
    states = _companion_states(db)
    assert "RUNNING" not in states and "WAITING" not in states, states


def test_on_read_only_media_a_stored_verify_gives_its_answer_and_a_side_file(
        study_db, tmp_path, monkeypatch):
    """Every training stored, the medium read-only: the result is printed and saved beside
    (before: only "attempt to write a readonly database ... run the same command again")."""
    import json
    import sqlite3
    from pathlib import Path

    from click.testing import CliRunner
    from support.mounts import readonly_view

    from hpsearch.cli import main

    media, elsewhere = tmp_path / "media", tmp_path / "cwd"
    media.mkdir()
    elsewhere.mkdir()
    for name in ("done.db", "fresh.db"):
        src, dst = sqlite3.connect(study_db), sqlite3.connect(media / name)
        src.backup(dst)
        src.close()
        dst.close()
    args = ["--question", "init", "--seeds", "8", "--epochs", "1", "--fuse", "1", "-q"]
    first = verify(str(media / "done.db"), question="init", seeds=8, epochs=1, fuse=1)
    monkeypatch.chdir(elsewhere)
    with readonly_view(media) as ro:
        out = CliRunner().invoke(main, ["verify", str(ro / "done.db"), *args])
        assert out.exit_code == 1, out.output
        assert "0 trained now, 32 found stored" in out.output
        assert [line for line in out.output.splitlines() if line.startswith("init: ")] == [
            f"init: {r.verdict()}" for r in first.rows]
        [side] = list(elsewhere.glob("hpsearch-*verify_init*.json"))
        assert f"saved in {side}" in out.output.replace("\n", "")
        assert json.loads(side.read_text())["value"]["rows"]

        missing = CliRunner().invoke(main, ["verify", str(ro / "fresh.db"), *args])
        lines = missing.output.strip().splitlines()
        assert missing.exit_code == 1 and len(lines) == 1, missing.output
        assert "read-only" in lines[0] and "copy it to a writable place" in lines[0]
    assert Path(study_db).exists()
