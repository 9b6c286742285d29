"""Opening studies: paths, URLs, journal files, and the errors a person sees."""

from __future__ import annotations

import sqlite3

import optuna
import pytest

from hpsearch.errors import StorageError, StudyError
from hpsearch.storage import kind, load_study, mask, open_storage


@pytest.mark.parametrize("text, expected", [
    ("postgresql://alice:s3cret@db.example/hp", "postgresql://alice:***@db.example/hp"),
    ("postgresql+psycopg2://u:p%40ss@h:5432/x", "postgresql+psycopg2://u:***@h:5432/x"),
    ("at mysql://root:pw@127.0.0.1/db: refused", "at mysql://root:***@127.0.0.1/db: refused"),
    ("postgresql://alice@host/db", "postgresql://alice@host/db"),
    ("study.db", "study.db"),
])
def test_mask_hides_passwords(text, expected):
    assert mask(text) == expected


def test_kind():
    assert kind("s.db") == "sqlite"
    assert kind("runs/s.log") == "journal"
    assert kind("sqlite:///s.db") == "url"


def _make_study(spec: str, name: str) -> None:
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name=name,
                                direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)


def test_sqlite_files_are_written_in_wal_mode_with_normal_sync(tmp_path):
    spec = str(tmp_path / "s.db")
    storage = open_storage(spec, create=True)
    _make_study(spec, "a")
    with sqlite3.connect(spec) as plain:  # the mode is in the file: every reader sees it
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    engine = storage.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:  # synchronous is per connection: hpsearch's own
        assert conn.exec_driver_sql("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    assert [t.value is not None for t in load_study(spec, "a").trials] == [True, True]


def test_readers_leave_a_files_journal_mode_alone(tmp_path):
    """A study written by Optuna itself (or hpsearch 0.1) in the rollback journal: report,
    best and the dashboard open it without writing a WAL switch into a file they read."""
    spec = str(tmp_path / "old.db")
    optuna.create_study(storage=f"sqlite:///{spec}", study_name="a").optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(load_study(spec, "a").trials) == 1
    with sqlite3.connect(spec) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("delete",)


@pytest.mark.parametrize("suffix", ["s.db", "s.log"])
def test_roundtrip_and_study_selection(tmp_path, suffix):
    spec = str(tmp_path / suffix)
    _make_study(spec, "a")
    assert len(load_study(spec).trials) == 2
    _make_study(spec, "b")
    with pytest.raises(StudyError, match="holds 2 studies; choose one with --study-name: a, b"):
        load_study(spec)
    with pytest.raises(StudyError, match="no study named 'c'.*a, b"):
        load_study(spec, "c")
    assert load_study(spec, "b").study_name == "b"


def test_missing_file_is_not_created(tmp_path):
    spec = tmp_path / "nope.db"
    with pytest.raises(StorageError, match="does not exist"):
        load_study(str(spec))
    assert not spec.exists()


def test_not_a_database(tmp_path):
    spec = tmp_path / "notes.db"
    spec.write_text("hello, I am a text file\n" * 10)
    with pytest.raises(StorageError, match="not a SQLite database"):
        load_study(str(spec))
    assert spec.read_text().startswith("hello")  # untouched


def test_empty_and_foreign_sqlite(tmp_path):
    spec = tmp_path / "other.db"
    with sqlite3.connect(spec) as con:
        con.execute("create table t (x int)")
    with pytest.raises((StorageError, StudyError)):
        load_study(str(spec))


def test_unreachable_postgres_is_one_line_and_masked():
    url = "postgresql://bob:hunter2@127.0.0.1:9/hp"
    with pytest.raises(StorageError) as err:
        load_study(url)
    text = str(err.value)
    assert "hunter2" not in text and "bob:***@" in text and "\n" not in text
