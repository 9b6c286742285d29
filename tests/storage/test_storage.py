"""Opening studies: paths, URLs, journal files, and the errors a person sees."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from support.mounts import readonly_view

from hpsearch.cli import main
from hpsearch.dashboard import app
from hpsearch.errors import StorageError, StudyError
from hpsearch.storage.checks import check_output
from hpsearch.storage.open import load_study, open_storage
from hpsearch.storage.specs import kind, mask


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


# ---------------------------------------------------------------- passwords


@pytest.mark.parametrize("text, expected", [
    ("postgresql://hp@host/db?password=PW", "postgresql://hp@host/db?password=***"),
    ("postgresql://hp@h/db?sslmode=require&password=PW&x=1",
     "postgresql://hp@h/db?sslmode=require&password=***&x=1"),
    ("postgresql://hp:a@h/db?PASSWORD=b", "postgresql://hp:***@h/db?PASSWORD=***"),
    ("invalid dsn: host=h password=PW dbname=x", "invalid dsn: host=h password=*** dbname=x"),
    ("password authentication failed for user hp", "password authentication failed for user hp"),
])
def test_mask_hides_query_string_and_libpq_passwords(text, expected):
    assert mask(text) == expected


# ---------------------------------------------------------------- a storage is no output


def _storage_parts(spec: str) -> list[str]:
    return [spec, spec + "-wal", spec + "-shm", spec + ".artifacts",
            spec + ".artifacts/report.html"]


@pytest.mark.parametrize("name", ["s.db", "s.log"])
def test_a_storage_and_its_companions_are_refused_as_outputs(tmp_path, name):
    spec = str(tmp_path / name)
    _make_study(spec, "a")
    for out in _storage_parts(spec):
        with pytest.raises(StorageError, match="is part of the storage"):
            check_output(out, spec)
    link = tmp_path / "link.db"
    link.symlink_to(spec)
    with pytest.raises(StorageError, match="is part of the storage"):
        check_output(link, spec)
    other = str(tmp_path / "other.db")  # another study's file is no output either
    _make_study(other, "b")
    with pytest.raises(StorageError, match="is a study file"):
        check_output(other, spec)
    check_output(tmp_path / "report.html", spec)  # a plain new file is fine


# ---------------------------------------------------------------- other people's databases


def _foreign(tmp_path) -> tuple[str, bytes]:
    spec = tmp_path / "shop.db"
    with sqlite3.connect(spec) as con:
        con.execute("create table customers (name text)")
        con.execute("insert into customers values ('ada')")
    con.close()
    return str(spec), spec.read_bytes()


def _tables(spec: str) -> set[str]:
    with sqlite3.connect(spec) as con:
        rows = con.execute("select name from sqlite_master where type='table'").fetchall()
    con.close()
    return {r[0] for r in rows}


@pytest.mark.parametrize("create", [False, True])
def test_a_sqlite_file_that_is_not_optuna_gets_no_tables(tmp_path, create):
    spec, before = _foreign(tmp_path)
    with pytest.raises(StorageError, match="is a SQLite database but not an Optuna study "
                       "file \\(its tables: customers\\)"):
        open_storage(spec, create=create)
    assert Path(spec).read_bytes() == before and _tables(spec) == {"customers"}


@pytest.mark.parametrize("content", [b"", None])
def test_a_reader_adds_no_tables_to_an_empty_sqlite_file(tmp_path, content):
    spec = tmp_path / "empty.db"
    if content is None:  # a valid SQLite file without tables
        sqlite3.connect(spec).close()
        sqlite3.connect(spec).execute("vacuum").connection.close()
    else:
        spec.write_bytes(content)
    before = spec.read_bytes()
    with pytest.raises(StudyError, match="holds no study yet"):
        load_study(str(spec))
    assert spec.read_bytes() == before


# ---------------------------------------------------------------- read-only media


def _wal_study(directory: Path, *, checkpoint: bool) -> str:
    """A study written by hpsearch (WAL mode); its -wal/-shm copied along unless checkpoint."""
    live = str(directory / "live.db")
    storage = open_storage(live, create=True)
    study = optuna.create_study(storage=storage, study_name="a", direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    media = directory / "media"
    media.mkdir()
    engine = storage.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").fetchone() == ("wal",)
        if checkpoint:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("", "-wal", "-shm") if not checkpoint else ("",):
        shutil.copy(live + suffix, media / ("s.db" + suffix))
    engine.dispose()
    for suffix in ("-wal", "-shm"):
        assert checkpoint != (media / ("s.db" + suffix)).exists()
    return str(media)


@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_wal_study_on_read_only_media_can_be_read(tmp_path, checkpoint):
    media = _wal_study(tmp_path, checkpoint=checkpoint)
    with readonly_view(Path(media)) as view:
        study = load_study(str(view / "s.db"))
        assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
        with pytest.raises(Exception):  # noqa: B017 (read-only: any write fails)
            study.set_user_attr("x", 1)
        result = CliRunner().invoke(main, ["report", str(view / "s.db"), "--format", "json"])
        assert result.exit_code == 0, result.output
        assert '"study_name": "a"' in result.output
        assert callable(app(str(view / "s.db")))  # the dashboard serves it too
