"""Storage specs: what a string names (SQLite file, URL, journal), the checks a file gets
before anything opens it, and :func:`mask` for every spec shown to a person.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import urllib.parse
from pathlib import Path

import optuna

from hpsearch.errors import StorageError

# Seconds a process waits for another one's lock on a SQLite file before it gives up.
SQLITE_TIMEOUT = float(os.environ.get("HPSEARCH_SQLITE_TIMEOUT", "60"))

JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


SQLITE_MAGIC = b"SQLite format 3\x00"


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


def study_file(spec: str) -> Path | None:
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


def check_existing_file(spec: str, must_exist: bool = True) -> None:
    """Reject, before SQLAlchemy sees it, a path that is missing or is not a study file."""
    path = study_file(spec)
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
    check_existing_file(spec, must_exist=False)


def writable(path: Path) -> bool:
    """Whether SQLite can write ``path`` and create its -wal/-shm/-journal beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def connect_readonly(path: Path) -> sqlite3.Connection:
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


def warn_unreadable_wal(path: Path) -> None:
    wal, shm = (path.with_name(path.name + s) for s in ("-wal", "-shm"))
    if wal.exists() and wal.stat().st_size > 0 and not shm.exists():
        logging.getLogger("hpsearch").warning(
            f"{wal} cannot be read on read-only media without {shm.name}: the study's last "
            "commits are missing (copy the study after its run, or with both files)")


def sqlite_tables(path: Path) -> set[str]:
    """The table names of a SQLite file, read without writing anything to it."""
    try:
        con = connect_readonly(path)
        try:
            rows = con.execute("select name from sqlite_master where type='table'").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):  # a writer holds it: the open waits for it and says so
            return set(OPTUNA_TABLES)
        raise StorageError(f"cannot open storage {path}: {error_reason(exc)}") from None
    return {str(r[0]) for r in rows}


def artifact_dir(spec: str) -> Path:
    """Where Optuna artifacts (model weights, reports) of studies in ``spec`` are kept.

    Beside a SQLite or journal file: ``study.db`` -> ``study.db.artifacts/``. For a server
    URL: ``./hpsearch-artifacts/<database name>`` (or ``$HPSEARCH_ARTIFACTS``), since the
    database has no directory of its own.
    """
    if os.environ.get("HPSEARCH_ARTIFACTS"):
        return Path(os.environ["HPSEARCH_ARTIFACTS"])
    path = study_file(spec)
    if path is not None:
        return path.with_name(path.name + ".artifacts")
    database = re.sub(r"[^\w.-]", "_", spec.rsplit("/", 1)[-1].split("?")[0]) or "default"
    return Path("hpsearch-artifacts") / database


def _storage_paths(spec: str) -> list[Path]:
    """Every file and directory that is part of the studies in ``spec``."""
    paths = [artifact_dir(spec)]
    path = study_file(spec)
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


def error_reason(exc: BaseException) -> str:
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
