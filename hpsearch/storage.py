"""Every way a study is opened: SQLite paths, SQLAlchemy URLs, journal files.

This is the only module that parses storage specs. Every string shown to a person goes
through :func:`mask` so that a password in a PostgreSQL URL is never printed or logged.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sqlite3
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback

from hpsearch.errors import StorageError, StudyError

JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
SQLITE_MAGIC = b"SQLite format 3\x00"
# A worker that stops sending heartbeats for GRACE seconds is presumed dead: its trial is
# failed and re-queued (once per trial) by the next worker that starts a trial.
HEARTBEAT_INTERVAL = int(os.environ.get("HPSEARCH_HEARTBEAT_INTERVAL", "20"))
HEARTBEAT_GRACE = int(os.environ.get("HPSEARCH_HEARTBEAT_GRACE", "60"))
MAX_RETRY = 1
# Seconds a process waits for another one's lock on a SQLite file before it gives up.
SQLITE_TIMEOUT = float(os.environ.get("HPSEARCH_SQLITE_TIMEOUT", "60"))

_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
# A password in a URL's query (`...db?password=PW`, which libpq and SQLAlchemy accept) or in
# a libpq key=value string (`host=h password=PW`) that a driver error may quote.
_KEY_PASSWORD = re.compile(
    r"(?i)(?P<pre>[?&;\s]|^)(?P<key>password|passwd)=(?P<pw>'[^']*'|[^&;\s'\"]*)")


def mask(text: str) -> str:
    """Replace every password in ``text`` (URL user info, URL query, libpq) by ``***``."""
    text = _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KEY_PASSWORD.sub(lambda m: f"{m['pre']}{m['key']}=***", text)


def kind(spec: str) -> str:
    """``url`` (any SQLAlchemy URL), ``journal`` (a .log file) or ``sqlite`` (a file path)."""
    if "://" in spec:
        return "url"
    if spec.endswith(JOURNAL_SUFFIXES):
        return "journal"
    return "sqlite"


def _study_file(spec: str) -> Path | None:
    """The file behind ``spec`` (a SQLite path or URL, or a journal file); None for servers."""
    if kind(spec) in ("sqlite", "journal"):
        return Path(spec)
    if spec.startswith("sqlite:///") and spec != "sqlite:///:memory:":
        return Path(spec[len("sqlite:///"):])
    return None


# Optuna's RDB tables: a SQLite file with tables but none of these is someone else's
# database, and Optuna would add its own 13 tables to it. (Any one of them will do: workers
# that create a new file together see its tables appear one by one.)
OPTUNA_TABLES = frozenset({
    "studies", "study_directions", "study_user_attributes", "study_system_attributes",
    "trials", "trial_params", "trial_values", "trial_intermediate_values",
    "trial_user_attributes", "trial_system_attributes", "trial_heartbeats", "version_info",
    "alembic_version"})


def _check_existing_file(spec: str, must_exist: bool = True) -> None:
    """Reject, before SQLAlchemy sees it, a path that is missing or is not a study file."""
    path = _study_file(spec)
    if path is None or (not must_exist and not path.exists()):
        return
    if not path.exists():
        raise StorageError(f"storage {spec!r} does not exist (give the file that "
                           "`hpsearch optimize --storage` wrote)")
    if path.is_dir():
        raise StorageError(f"storage {spec!r} is a directory, not a study file")
    if kind(spec) != "journal" and path.stat().st_size > 0:
        with path.open("rb") as f:
            if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                raise StorageError(f"storage {spec!r} is not a SQLite database "
                                   "(journal files must end in .log)")
        tables = sqlite_tables(path)
        if tables and not OPTUNA_TABLES & tables:
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise StorageError(f"storage {spec!r} is a SQLite database but not an Optuna "
                               f"study file (its tables: {shown}); hpsearch adds nothing to "
                               "it: give another --storage")
    if kind(spec) == "journal" and path.stat().st_size > 0:
        with path.open("rb") as f:
            first = f.readline()
        try:
            json.loads(first)
        except ValueError:
            # A first line cut short and glued to the next one still holds an operation:
            # open_storage repairs that. Anything else is not a journal.
            if b'{"op_code":' not in first:
                raise StorageError(f"storage {spec!r} is not an Optuna journal file (its "
                                   "first line is not JSON)") from None


def check_spec(spec: str) -> None:
    """What can be said about ``spec`` without writing anything (it may not exist yet)."""
    _check_existing_file(spec, must_exist=False)


def _writable(path: Path) -> bool:
    """Whether SQLite can write ``path`` and create its -wal/-shm/-journal beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection: ``mode=ro``, else (read-only media with no -shm file to
    share the WAL index) ``immutable=1``, which reads the file as it lies."""
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    try:
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT,
                              check_same_thread=False)
        con.execute("select count(*) from sqlite_master").fetchone()
        return con
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):  # a writer holds the file: not a read-only medium
            raise
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


def _warn_unreadable_wal(path: Path) -> None:
    wal, shm = (path.with_name(path.name + s) for s in ("-wal", "-shm"))
    if wal.exists() and wal.stat().st_size > 0 and not shm.exists():
        logging.getLogger("hpsearch").warning(
            f"{wal} cannot be read on read-only media without {shm.name}: the study's last "
            "commits are missing (copy the study after its run, or with both files)")


def sqlite_tables(path: Path) -> set[str]:
    """The table names of a SQLite file, read without writing anything to it."""
    try:
        con = _connect_readonly(path)
        try:
            rows = con.execute("select name from sqlite_master where type='table'").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):  # a writer holds it: the open waits for it and says so
            return set(OPTUNA_TABLES)
        raise StorageError(f"cannot open storage {path}: {_reason(exc)}") from None
    return {str(r[0]) for r in rows}


def open_storage(spec: str, *, create: bool = False, heartbeat: bool = False) -> BaseStorage:
    """Open ``spec``; with ``create=False`` a missing file is an error, never a new empty DB.

    ``heartbeat`` turns on heartbeats (workers that train) so a killed worker's trial
    does not stay RUNNING forever. A reader (``create=False``) never adds tables to a
    SQLite file, and opens one it may not write (read-only media) read-only.
    """
    from hpsearch.journal import open_journal

    _check_existing_file(spec, must_exist=not create)
    path = _study_file(spec)
    try:
        if kind(spec) == "journal":
            return open_journal(spec, heartbeat=heartbeat, interval=HEARTBEAT_INTERVAL,
                                grace=HEARTBEAT_GRACE, stale_callback=_retry(heartbeat))
        url = _with_driver(spec) if kind(spec) == "url" else f"sqlite:///{Path(spec).resolve()}"
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # Several worker processes write one SQLite file: wait for the lock, don't fail.
            # Only a study's writers switch the file to WAL (the mode is stored in the file,
            # and every later reader follows it): a reader may have no write access at all.
            engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}}
            if create:
                engine_kwargs["connect_args"]["factory"] = _TunedSQLiteConnection
            elif path is not None:
                if path.stat().st_size == 0 or not sqlite_tables(path):
                    # RDBStorage would create Optuna's tables: a reader writes nothing.
                    raise StudyError(f"{mask(spec)} holds no study yet")
                if not _writable(path):
                    _warn_unreadable_wal(path)
                    readonly = path
                    engine_kwargs = {"creator": lambda: _connect_readonly(readonly)}
        elif url.startswith("postgresql"):
            engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
        return _rdb(url, engine_kwargs, heartbeat)
    except (StorageError, StudyError):
        raise
    except Exception as exc:  # SQLAlchemy, driver and OS errors all mean "cannot open"
        if kind(spec) == "journal" and isinstance(exc, ValueError):  # a line is not JSON
            raise StorageError(f"storage {mask(spec)} is not an Optuna journal file: "
                               f"{_reason(exc)}") from None
        raise StorageError(f"cannot open storage {mask(spec)}: {_reason(exc)}") from None


def _retry(heartbeat: bool) -> RetryHeartbeatStaleTrialCallback | None:
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY) if heartbeat else None


class _TunedSQLiteConnection(sqlite3.Connection):
    """A SQLite connection in WAL mode with ``synchronous=NORMAL``.

    Optuna commits every suggest, report and user attr on its own, about 50 commits per
    trial. In the default rollback journal each commit writes and fsyncs a journal file;
    in WAL mode it appends to the log and fsyncs only at checkpoints, and readers (the
    sampler, the pruner, other workers, the dashboard) no longer block the writer.
    ``synchronous=NORMAL`` is durable against a crashed or killed process (a power cut can
    lose the last commits, never corrupt the file). WAL needs the readers on the same
    host: a file on a network filesystem shared by several machines needs PostgreSQL.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        deadline = time.monotonic() + SQLITE_TIMEOUT
        while True:
            try:
                self.execute("PRAGMA journal_mode=WAL")  # persistent: a no-op once it is WAL
                break
            except sqlite3.OperationalError as exc:
                # Workers that open a new file together all switch it at once, and SQLite
                # answers the switch "locked" at once, without its busy timeout: the
                # others are switching it too, so try again shortly.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + 0.04 * random.random())
        self.execute("PRAGMA synchronous=NORMAL")


_CREATE_RACE = ("already exists", "duplicate key", "UNIQUE constraint failed")


class _RDBStorage(RDBStorage):
    """RDBStorage whose heartbeat thread fails quietly: when the server is lost, the worker's
    next write fails and says so in one line; the thread's traceback every 20 s is noise."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception:
            pass


def _rdb(url: str, engine_kwargs: dict[str, Any], heartbeat: bool) -> RDBStorage:
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        kwargs: dict[str, Any] = {}
        if heartbeat:
            kwargs = {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": HEARTBEAT_GRACE,
                      "heartbeat_stale_trial_callback": _retry(heartbeat)}
        for _ in range(4):
            try:
                return _RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
            except Exception as exc:
                # Workers started together on an empty database all create Optuna's tables
                # and stamp its schema version; the losers of that race see "already exists"
                # or a duplicate version row (PostgreSQL: "duplicate key", SQLite: "UNIQUE
                # constraint failed") and find the tables on a retry.
                if not any(text in str(exc) for text in _CREATE_RACE):
                    raise
                time.sleep(0.2 + random.random())
        return _RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, 2.0 to psycopg2; the
    ``postgres`` extra installs psycopg2, so name it when psycopg 3 is missing.
    """
    import importlib.util

    if (url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None
            and importlib.util.find_spec("psycopg2") is not None):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _reason(exc: BaseException) -> str:
    # Optuna wraps a failed commit ("An exception is raised during the commit..."): the
    # driver's own words (read-only database, disk full) are in the cause.
    while isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ImportError) or "No module named" in text:
        text += " (for PostgreSQL: pip install 'hpsearch[postgres]')"
    if "database is locked" in text:
        text += (f" (another process held a lock on the file for {SQLITE_TIMEOUT:g} s; "
                 "set HPSEARCH_SQLITE_TIMEOUT to wait longer)")
    return mask(text)[:400]


@contextmanager
def storage_errors(spec: str) -> Iterator[None]:
    """Turn a storage failure in the middle of a run (lost server, locked file, full disk)
    into one StorageError line; trials that finished are in the storage already."""
    import sqlalchemy.exc

    try:
        yield
    except Exception as exc:
        # Optuna 5.0 can raise an UnboundLocalError from its own clean-up when the storage
        # fails while a trial is told; the storage error is then in the exception's context.
        cause: BaseException | None = exc
        while cause is not None and not isinstance(
                cause, sqlalchemy.exc.SQLAlchemyError | OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise StorageError(f"storage {mask(spec)} failed: {_reason(cause)}; finished trials "
                           "are kept, run the same command again to go on") from None


def study_names(storage: BaseStorage) -> list[str]:
    try:
        return [s.study_name for s in storage.get_all_studies()]
    except Exception as exc:
        raise StorageError(f"cannot read studies: {_reason(exc)}") from None


def resolve_study_name(storage: BaseStorage, spec: str, study_name: str | None) -> str:
    """The one study a read-only command should use, or a message listing the choices."""
    names = study_names(storage)
    if not names:
        raise StudyError(f"{mask(spec)} holds no study yet")
    if study_name is None:
        if len(names) > 1:
            raise StudyError(f"{mask(spec)} holds {len(names)} studies; choose one with "
                             f"--study-name: {', '.join(sorted(names))}")
        return names[0]
    if study_name not in names:
        raise StudyError(f"no study named {study_name!r} in {mask(spec)}; it holds: "
                         f"{', '.join(sorted(names))}")
    return study_name


def load_study(spec: str, study_name: str | None = None) -> optuna.Study:
    """Open an existing study for reading (report, best, verify, dashboard)."""
    storage = open_storage(spec, create=False)
    name = resolve_study_name(storage, spec, study_name)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except Exception as exc:
        raise StorageError(f"cannot load study {name!r}: {_reason(exc)}") from None


def artifact_dir(spec: str) -> Path:
    """Where Optuna artifacts (model weights, reports) of studies in ``spec`` are kept.

    Beside a SQLite or journal file: ``study.db`` -> ``study.db.artifacts/``. For a server
    URL: ``./hpsearch-artifacts/<database name>`` (or ``$HPSEARCH_ARTIFACTS``), since the
    database has no directory of its own.
    """
    if os.environ.get("HPSEARCH_ARTIFACTS"):
        return Path(os.environ["HPSEARCH_ARTIFACTS"])
    path = _study_file(spec)
    if path is not None:
        return path.with_name(path.name + ".artifacts")
    database = re.sub(r"[^\w.-]", "_", spec.rsplit("/", 1)[-1].split("?")[0]) or "default"
    return Path("hpsearch-artifacts") / database


def _storage_paths(spec: str) -> list[Path]:
    """Every file and directory that is part of the studies in ``spec``."""
    paths = [artifact_dir(spec)]
    path = _study_file(spec)
    if path is not None:
        paths += [path] + [path.with_name(path.name + s)
                           for s in ("-wal", "-shm", "-journal", ".lock")]
    return [p.resolve() for p in paths]


def check_output(out: str | Path, spec: str) -> None:
    """Refuse ``out`` as a file to write when it is part of the storage, or any study file.

    Part of the storage: the file, its -wal/-shm/-journal/.lock companions, its artifact
    directory and whatever is inside it. Any study file: overwriting a SQLite database or
    an Optuna journal with a report would lose that study too.
    """
    target = Path(out).resolve()
    for part in _storage_paths(spec):
        if target == part or part in target.parents or (
                target.exists() and part.exists() and os.path.samefile(target, part)):
            raise StorageError(f"{out} is part of the storage {mask(spec)}; write the output "
                               "somewhere else")
    if target.is_file() and target.stat().st_size > 0:
        with target.open("rb") as f:
            head = f.read(64)
        if head.startswith(SQLITE_MAGIC) or head.startswith(b'{"op_code":'):
            raise StorageError(f"{out} is a study file (a SQLite database or an Optuna "
                               "journal); write the output somewhere else")
