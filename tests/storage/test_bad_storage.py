"""Bad storage input, one clear line each: missing, corrupt, locked or wrong files, studies
that are not there or not named, the read commands on them, an unreachable server.

In-process (``CliRunner``) for the commands, and through the library (``load_study``) for
what the read-only commands are built on.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import optuna
import pytest
from support.cli import TINY, error_line, run
from support.studies import small_study

import hpsearch.storage.open
import hpsearch.storage.specs
import hpsearch.training.datasets
from hpsearch.cli import main
from hpsearch.errors import StorageError, StudyError
from hpsearch.storage.open import load_study, open_storage
from hpsearch.storage.specs import SQLITE_MAGIC


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """optimize() sets torch's threads from OMP_NUM_THREADS: one, on 2 shared cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------- storage files


@pytest.mark.parametrize("name", ["missing.db", "missing.log", "sqlite:///{dir}/missing.db"])
def test_a_missing_storage_is_an_error_and_is_not_created(tmp_path, name):
    spec = name.format(dir=tmp_path) if "{dir}" in name else str(tmp_path / name)
    with pytest.raises(StorageError, match="does not exist"):
        load_study(spec)
    assert list(tmp_path.iterdir()) == []


def test_optimize_on_a_text_file_leaves_it_alone(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n" * 50)
    line = error_line(*run("optimize", "--storage", str(notes), "--trials", "1", *TINY))
    assert "notes.db" in line and "is not a SQLite database" in line
    assert notes.read_text() == "my notes\n" * 50
    with pytest.raises(StorageError, match="is not a SQLite database"):
        load_study(str(notes))


def _corrupt(tmp_path: Path) -> Path:
    good = tmp_path / "good.db"
    small_study(str(good), "a", n_trials=3)
    data = good.read_bytes()
    assert data.startswith(SQLITE_MAGIC)
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(data[:100] + bytes((b * 7 + 13) % 256 for b in data[100:]))
    return bad


def test_a_corrupt_sqlite_file_is_one_line(tmp_path):
    bad = _corrupt(tmp_path)
    line = error_line(*run("optimize", "--storage", str(bad), "--trials", "1", *TINY))
    assert line.startswith(f"Error: cannot open storage {bad}: ")
    assert "malformed" in line or "not a database" in line, line
    with pytest.raises(StorageError, match="cannot open storage|cannot read studies"):
        load_study(str(bad))


def test_a_journal_that_is_not_a_journal_is_one_line(tmp_path):
    log = tmp_path / "study.log"
    log.write_text("2024-01-01 12:00:00 INFO started\n")
    line = error_line(*run("optimize", "--storage", str(log), "--trials", "1", *TINY))
    assert "is not an Optuna journal file" in line


def test_a_directory_is_not_a_storage(tmp_path):
    error_line(*run("optimize", "--storage", str(tmp_path), "--trials", "1", *TINY))
    with pytest.raises(StorageError, match="is a directory"):
        load_study(str(tmp_path))


def _hold_exclusive_lock(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    return con


def test_a_locked_sqlite_file_waits_then_fails_clearly(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    small_study(str(db), "other")
    monkeypatch.setattr(hpsearch.storage.specs, "SQLITE_TIMEOUT", 1.0)
    con = _hold_exclusive_lock(db)
    try:
        start = time.monotonic()
        line = error_line(*run("optimize", "--storage", str(db), "--trials", "1", *TINY))
        assert time.monotonic() - start >= 1.0  # it waited for the lock first
    finally:
        con.rollback()
        con.close()
    assert "database is locked" in line and "HPSEARCH_SQLITE_TIMEOUT" in line


def test_a_locked_sqlite_file_is_used_once_the_lock_is_released(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    small_study(str(db), "other")
    monkeypatch.setattr(hpsearch.storage.specs, "SQLITE_TIMEOUT", 30.0)
    con = _hold_exclusive_lock(db)
    release = threading.Timer(1.0, lambda: (con.rollback(), con.close()))
    release.start()
    try:
        code, out = run("optimize", "--storage", str(db), "--trials", "2", *TINY)
    finally:
        release.join()
    assert code == 0, out
    assert len(load_study(str(db), "full-synthetic").trials) == 2


# ---------------------------------------------------------------- studies


def test_unknown_study_name_lists_the_existing_ones(tmp_path):
    db = str(tmp_path / "s.db")
    small_study(db, "bn-mnist")
    small_study(db, "dropout-mnist")
    with pytest.raises(StudyError, match="no study named 'bn' in .*; it holds: bn-mnist, "
                       "dropout-mnist"):
        load_study(db, "bn")


def test_several_studies_and_no_name_asks_for_one(tmp_path):
    db = str(tmp_path / "s.log")
    small_study(db, "a")
    small_study(db, "b")
    with pytest.raises(StudyError, match="holds 2 studies; choose one with --study-name: a, b"):
        load_study(db)


def test_a_storage_with_no_study(tmp_path):
    db = tmp_path / "empty.db"
    open_storage(str(db), create=True)
    with pytest.raises(StudyError, match="holds no study yet"):
        load_study(str(db))


# The read-only commands are someone else's; each, once it exists, must give one line too.
READ_COMMANDS = ("report", "best")


def _command(name: str) -> None:
    if name not in main.commands:  # type: ignore[attr-defined]
        pytest.skip(f"`hpsearch {name}` does not exist yet")


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_on_a_missing_file(tmp_path, monkeypatch, command):
    _command(command)
    monkeypatch.chdir(tmp_path)
    line = error_line(*run(command, str(tmp_path / "nope.db")))
    assert "does not exist" in line
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_with_several_studies_or_an_unknown_one(tmp_path, monkeypatch, command):
    _command(command)
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "s.db")
    small_study(db, "a")
    small_study(db, "b")
    assert "choose one with --study-name: a, b" in error_line(*run(command, db))
    assert "it holds: a, b" in error_line(*run(command, db, "--study-name", "c"))


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_on_a_study_with_no_finished_trial(tmp_path, monkeypatch, command):
    _command(command)
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "s.db")
    study = optuna.create_study(storage=open_storage(db, create=True), study_name="a")
    study.ask()
    assert "no" in error_line(*run(command, db)).lower()


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_on_files_that_are_not_studies(tmp_path, monkeypatch, command):
    _command(command)
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n")
    assert "is not a SQLite database" in error_line(*run(command, str(notes)))
    assert "cannot" in error_line(*run(command, str(_corrupt(tmp_path))))
    url = "postgresql://bob:hunter2@127.0.0.1:9/hp"
    code, out = run(command, url)
    assert "bob:***@127.0.0.1:9/hp" in error_line(code, out) and "hunter2" not in out
    assert notes.read_text() == "my notes\n"


# ---------------------------------------------------------------- servers


def test_unreachable_postgres_is_one_masked_line():
    code, out = run("optimize", "--storage", "postgresql://bob:hunter2@127.0.0.1:9/hp",
                    "--trials", "1", *TINY)
    line = error_line(code, out)
    assert "cannot open storage postgresql://bob:***@127.0.0.1:9/hp" in line
    assert "hunter2" not in out
