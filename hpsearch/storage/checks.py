"""Checks a storage file gets before anything opens it, and outputs that must never
replace a study's files: missing or foreign files, someone else's SQLite database, a
device, FIFO or symlink given as ``--out``, another study's ``-wal``/``-shm``/journal.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from hpsearch.errors import StorageError
from hpsearch.storage import specs
from hpsearch.storage.specs import (
    SQLITE_MAGIC,
    error_reason,
    kind,
    mask,
    storage_paths,
    study_file,
)

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
        # SQLite reads the header itself: a plain open() and close() of the file would drop
        # every POSIX lock this process holds on it (SQLite's too), and another process
        # could then check the WAL into the database under this one's open connections.
        tables = sqlite_tables(path, not_sqlite=f"storage {spec!r} is not a SQLite "
                               "database (journal files must end in .log)")
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
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=specs.SQLITE_TIMEOUT,
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


def sqlite_tables(path: Path, not_sqlite: str | None = None) -> set[str]:
    """The table names of a SQLite file, read without writing anything to it.

    ``not_sqlite``: the message for a file that is not a SQLite database at all."""
    try:
        con = connect_readonly(path)
        try:
            rows = con.execute("select name from sqlite_master where type='table'").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):  # a writer holds it: the open waits for it and says so
            return set(OPTUNA_TABLES)
        if not_sqlite is not None and "not a database" in str(exc):
            raise StorageError(not_sqlite) from None
        raise StorageError(f"cannot open storage {path}: {error_reason(exc)}") from None
    return {str(r[0]) for r in rows}


# What a SQLite companion file starts with: a WAL (either byte order) or a hot rollback
# journal. Replacing one loses the commits of the study beside it.
_COMPANION_MAGIC = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83",
                    b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7")


_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal", ".lock")


def check_output(out: str | Path, spec: str) -> None:
    """Refuse ``out`` as a file to write when it is part of the storage, any study file or
    a companion of one, or anything but a regular file (or a new name).

    Part of the storage: the file, its -wal/-shm/-journal/.lock companions, its artifact
    directory and whatever is inside it. Any study file: overwriting a SQLite database or
    an Optuna journal with a report would lose that study too, and so would replacing
    another study's ``-wal``, ``-shm``, ``-journal`` or journal ``.lock``. A device, FIFO,
    socket or symbolic link is refused too: a report is written to a temp file and renamed
    over its target, which would replace ``/dev/null`` (or the link) with a regular file.
    """
    if not str(out).strip():
        raise StorageError("--out is empty; give a file name (report.html)")
    target = Path(out).resolve()
    for part in storage_paths(spec):
        if target == part or part in target.parents or (
                target.exists() and part.exists() and os.path.samefile(target, part)):
            raise StorageError(f"{out} is part of the storage {mask(spec)}; write the output "
                               "somewhere else")
    _check_special(Path(out))
    for suffix in _COMPANION_SUFFIXES:
        if not target.name.endswith(suffix) or target.name == suffix:
            continue
        base = target.with_name(target.name[:-len(suffix)])
        if _is_study_file(base):
            raise StorageError(f"{out} belongs to the study file {base} (its {suffix[1:]} "
                               "file); write the output somewhere else")
    if target.is_file() and target.stat().st_size > 0:
        with target.open("rb") as f:
            head = f.read(64)
        if head.startswith(SQLITE_MAGIC) or head.startswith(b'{"op_code":'):
            raise StorageError(f"{out} is a study file (a SQLite database or an Optuna "
                               "journal); write the output somewhere else")
        if head.startswith(_COMPANION_MAGIC):
            raise StorageError(f"{out} is a SQLite write-ahead log or journal (part of a "
                               "study file); write the output somewhere else")


def _is_study_file(path: Path) -> bool:
    """A SQLite database or an Optuna journal (an empty file too: a SQLite file in WAL mode
    can be empty while every commit is still in its -wal)."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError:
        return False
    return head in (b"", SQLITE_MAGIC) or head.startswith(b'{"op_code":')


def _check_special(path: Path) -> None:
    """A path the report may replace: a regular file, or a name that does not exist yet."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot write the report to {path}: "
                           f"{exc.strerror or exc}") from None
    what = ("a symbolic link" if stat.S_ISLNK(st.st_mode)
            else "a directory" if stat.S_ISDIR(st.st_mode)
            else "a character device" if stat.S_ISCHR(st.st_mode)
            else "a block device" if stat.S_ISBLK(st.st_mode)
            else "a FIFO" if stat.S_ISFIFO(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else None)
    if what is not None:
        raise StorageError(f"--out {path} is {what}, not a regular file: a report replaces "
                           "the file it writes (a temp file renamed over it), so it writes "
                           "only regular files; give a file name")
