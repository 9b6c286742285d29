"""Every way a study is opened: SQLite paths, SQLAlchemy URLs, journal files.

This is the only module that parses storage specs. Every string shown to a person goes
through :func:`mask` so that a password in a PostgreSQL URL is never printed or logged.
"""

from __future__ import annotations

import copy
import os
import random
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hpsearch import optuna_private, schema
from hpsearch.errors import StorageError, StudyError
from hpsearch.storage import specs
from hpsearch.storage.checks import (
    check_existing_file,
    connect_readonly,
    sqlite_tables,
    warn_unreadable_wal,
    writable,
)
from hpsearch.storage.owner import never_beat_stale
from hpsearch.storage.specs import error_reason, kind, mask, study_file

# A worker that stops sending heartbeats for GRACE seconds is presumed dead: its trial is
# failed and re-queued (once per trial) by the next worker that starts a trial.
HEARTBEAT_INTERVAL = int(os.environ.get("HPSEARCH_HEARTBEAT_INTERVAL", "20"))


HEARTBEAT_GRACE = int(os.environ.get("HPSEARCH_HEARTBEAT_GRACE", "60"))


MAX_RETRY = 1




def open_storage(spec: str, *, create: bool = False, heartbeat: bool = False,
                 requeue: bool = True) -> BaseStorage:
    """Open ``spec``; with ``create=False`` a missing file is an error, never a new empty DB.

    ``heartbeat`` turns on heartbeats (workers that train) so a killed worker's trial
    does not stay RUNNING forever; it is failed and, with ``requeue``, queued again as a
    WAITING copy (optimize's workers run those first; verify claims trainings its own way
    and opens with ``requeue=False``, so it leaves no queue behind). A reader
    (``create=False``) never adds tables to a SQLite file, and opens one it may not write
    (read-only media) read-only.
    """
    from hpsearch.storage.journal import open_journal

    check_existing_file(spec, must_exist=not create)
    path = study_file(spec)
    try:
        if kind(spec) == "journal":
            return open_journal(spec, heartbeat=heartbeat, interval=HEARTBEAT_INTERVAL,
                                grace=HEARTBEAT_GRACE,
                                stale_callback=_retry(heartbeat and requeue))
        url = _with_driver(spec) if kind(spec) == "url" else f"sqlite:///{Path(spec).resolve()}"
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # Several worker processes write one SQLite file: wait for the lock, don't fail.
            # Only a study's writers switch the file to WAL (the mode is stored in the file,
            # and every later reader follows it): a reader may have no write access at all.
            engine_kwargs = {"connect_args": {"timeout": specs.SQLITE_TIMEOUT}}
            if create:
                engine_kwargs["connect_args"]["factory"] = _TunedSQLiteConnection
            elif path is not None:
                if path.stat().st_size == 0 or not sqlite_tables(path):
                    # RDBStorage would create Optuna's tables: a reader writes nothing.
                    raise StudyError(f"{mask(spec)} holds no study yet")
                if not writable(path):
                    warn_unreadable_wal(path)
                    readonly = path
                    engine_kwargs = {"creator": lambda: connect_readonly(readonly)}
        elif url.startswith("postgresql"):
            engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
        return _rdb(url, engine_kwargs, heartbeat, requeue)
    except (StorageError, StudyError):
        raise
    except Exception as exc:  # SQLAlchemy, driver and OS errors all mean "cannot open"
        if kind(spec) == "journal" and isinstance(exc, ValueError):  # a line is not JSON
            raise StorageError(f"storage {mask(spec)} is not an Optuna journal file: "
                               f"{error_reason(exc)}") from None
        raise StorageError(f"cannot open storage {mask(spec)}: "
                           f"{error_reason(exc, spec)}") from None


class _Retry(RetryHeartbeatStaleTrialCallback):
    """Optuna's re-queue of a stale trial, less the journal heartbeat it would copy with the
    other system attrs: a copy carrying its dead original's beat looks dead from the moment a
    worker claims it until that worker's first beat, and another worker would fail it in
    that window, spending its retry."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.copy(trial)
        trial.system_attrs = {key: value for key, value in trial.system_attrs.items()
                              if key != schema.HEARTBEAT}
        super().__call__(study, trial)


def _retry(heartbeat: bool) -> RetryHeartbeatStaleTrialCallback | None:
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _Retry(max_retry=MAX_RETRY) if heartbeat else None


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
        deadline = time.monotonic() + specs.SQLITE_TIMEOUT
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
    """RDBStorage whose heartbeat thread fails quietly (when the server is lost, the worker's
    next write fails and says so in one line; the thread's traceback every 20 s is noise),
    and which also judges a RUNNING trial that never beat (see :func:`.owner.never_beat_stale`)."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception:
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        from optuna.storages._rdb import models

        stale = super()._get_stale_trial_ids(study_id)
        session = self.scoped_session()
        try:
            beaten = {row[0] for row in session.query(models.TrialHeartbeatModel.trial_id)
                      .join(models.TrialModel)
                      .filter(models.TrialModel.study_id == study_id)
                      .filter(models.TrialModel.state == TrialState.RUNNING)}
        finally:
            session.close()
        grace = self.grace_period if self.grace_period is not None else (
            2 * (self.heartbeat_interval or 0))
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            if (optuna_private.trial_id(trial) not in beaten
                    and optuna_private.trial_id(trial) not in stale
                    and never_beat_stale(trial, grace)):
                stale.append(optuna_private.trial_id(trial))
        return stale


def _rdb(url: str, engine_kwargs: dict[str, Any], heartbeat: bool,
         requeue: bool = True) -> RDBStorage:
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        kwargs: dict[str, Any] = {}
        if heartbeat:
            kwargs = {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": HEARTBEAT_GRACE,
                      "heartbeat_stale_trial_callback": _retry(heartbeat and requeue)}
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
        raise StorageError(f"storage {mask(spec)} failed: {error_reason(cause, spec)}; finished "
                           "trials "
                           "are kept, run the same command again to go on") from None


def study_names(storage: BaseStorage) -> list[str]:
    try:
        return [s.study_name for s in storage.get_all_studies()]
    except Exception as exc:
        raise StorageError(f"cannot read studies: {error_reason(exc)}") from None


# verify's stored trainings of study S are the companion study "S:verify" (verify.store):
# a record that verify keeps, never a study to report on, retrain or resume.
COMPANION_SUFFIX = ":verify"


def resolve_study_name(storage: BaseStorage, spec: str, study_name: str | None) -> str:
    """The one study a read-only command should use, or a message listing the choices.

    A companion study is never the answer: its trials are single verify trainings (their
    values test accuracies), and a report or ``best`` on it would pass one of them off as
    the study's best trial.
    """
    names = study_names(storage)
    if not names:
        raise StudyError(f"{mask(spec)} holds no study yet")
    studies = [n for n in names if not n.endswith(COMPANION_SUFFIX)]
    if study_name is not None and study_name.endswith(COMPANION_SUFFIX) \
            and study_name in names:
        raise StudyError(_companion_message(spec, study_name, studies))
    if study_name is None:
        if not studies:
            raise StudyError(_companion_message(spec, names[0], studies))
        if len(studies) > 1:
            raise StudyError(f"{mask(spec)} holds {len(studies)} studies; choose one with "
                             f"--study-name: {', '.join(sorted(studies))}")
        return studies[0]
    if study_name not in names:
        raise StudyError(f"no study named {study_name!r} in {mask(spec)}; it holds: "
                         f"{', '.join(sorted(studies) or ['no study'])}")
    return study_name


def _companion_message(spec: str, companion: str, studies: list[str]) -> str:
    parent = companion[:-len(COMPANION_SUFFIX)]
    what = (f"{companion!r} in {mask(spec)} is not a study: it holds the trainings `hpsearch "
            f"verify` stored for study {parent!r}")
    if parent in studies:
        return f"{what}; use --study-name {parent}"
    if studies:
        return f"{what}, which is not there; the studies here: {', '.join(sorted(studies))}"
    return f"{what}, which is not there (deleted?): {mask(spec)} holds no study to read"


def load_study(spec: str, study_name: str | None = None) -> optuna.Study:
    """Open an existing study for reading (report, best, verify, dashboard)."""
    storage = open_storage(spec, create=False)
    name = resolve_study_name(storage, spec, study_name)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except Exception as exc:
        raise StorageError(f"cannot load study {name!r}: {error_reason(exc)}") from None
