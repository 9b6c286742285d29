"""Storage specs: what a string names (SQLite file, URL, journal), the checks a file gets
before anything opens it, and :func:`mask` for every spec shown to a person.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

import optuna

from hpsearch.errors import StorageError

# Seconds a process waits for another one's lock on a SQLite file before it gives up.
SQLITE_TIMEOUT = float(os.environ.get("HPSEARCH_SQLITE_TIMEOUT", "60"))


JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


SQLITE_MAGIC = b"SQLite format 3\x00"


# ``scheme://user:PASSWORD@host``: the password runs to the first ``@`` that a host (and a
# ``/``, ``?``, ``:port``, a quote, a space or the end) follows, so it may hold spaces, ``@``,
# ``;`` or quotes. Over-masking a message is harmless; showing a password is not.
_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^\n]*?)"
    r"@(?=[^@\s/?#]*(?:[/?#\s:\"']|$))")


# ``key=value`` in a URL's query (``...db?password=PW``, which libpq and SQLAlchemy accept) or
# in a libpq key=value string (``host=h password=PW``) that a driver error may quote. The key
# is compared percent-decoded (``pass%77ord``); the value runs to the next ``&`` or space (a
# quoted one to its closing quote and on), so ``;`` or ``'`` inside it stay masked.
_KEY_VALUE = re.compile(
    r"(?P<pre>[?&;\s]|^)(?P<key>[\w%.+-]+)="
    r"(?P<pw>\"[^\"\n]*\"?[^&\s]*|'[^'\n]*'?[^&\s]*|[^&\s]*)")


_PASSWORD_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})


def _is_password_key(key: str) -> bool:
    return urllib.parse.unquote_plus(key).strip().lower() in _PASSWORD_KEYS


def mask(text: str) -> str:
    """Replace every password in ``text`` (URL user info, URL query, libpq) by ``***``.

    A ``text`` that is one URL is also parsed as SQLAlchemy parses it (``make_url``): if a
    password it finds is still in the masked text, the URL is rendered by SQLAlchemy with
    every password hidden instead.
    """
    masked = _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    masked = _KEY_VALUE.sub(
        lambda m: f"{m['pre']}{m['key']}=***" if _is_password_key(m["key"]) else m[0], masked)
    return _parsed_mask(text, masked)


def _parsed_mask(text: str, masked: str) -> str:
    if "\n" in text or not re.match(r"\s*[a-zA-Z][\w+.-]*://", text):
        return masked
    url = parse_url(text.strip())
    if url is None:
        return masked
    # Where a password would show: after ``user:`` and after ``key=``, raw or quoted; and
    # any piece of one (a value with a space in it ends the pattern's match early).
    secrets = [url.password or ""] + [
        value for k, vs in url.query.items() if _is_password_key(k)
        for value in ((vs,) if isinstance(vs, str) else vs)]
    secrets = [x for x in secrets if x and x != "***"]
    shown = [f":{v}@" for x in secrets for v in _spellings(x)] + [
        f"={v}" for x in secrets for v in _spellings(x)]
    pieces = [p for x in secrets for p in re.split(r"[\s;'\"&]+", x) if len(p) >= 3]
    if not any(s in masked for s in shown) and not any(p in masked for p in pieces):
        return masked
    query = {k: ("***" if _is_password_key(k) else v) for k, v in url.query.items()}
    try:
        rendered = url.set(query=query).render_as_string(hide_password=True)
    except Exception:
        return "(a storage URL, not shown: it holds a password)"
    return str(rendered).replace("%2A%2A%2A", "***")


def _spellings(secret: str) -> list[str]:
    if not secret:
        return []
    return list(dict.fromkeys([secret, urllib.parse.quote(secret, safe=""),
                               urllib.parse.quote_plus(secret, safe="")]))


def parse_url(spec: str) -> Any:
    """``spec`` as SQLAlchemy's URL object, or None where it cannot parse it."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(spec)
    except Exception:
        return None


def kind(spec: str) -> str:
    """``url`` (any SQLAlchemy URL), ``journal`` (a .log file) or ``sqlite`` (a file path)."""
    if "://" in spec:
        return "url"
    if spec.endswith(JOURNAL_SUFFIXES):
        return "journal"
    return "sqlite"


def study_file(spec: str) -> Path | None:
    """The file behind ``spec`` (a SQLite path, a SQLite URL in any spelling, or a journal
    file); None for servers and in-memory databases.

    Every SQLite URL (``sqlite:///x.db``, ``sqlite+pysqlite:///x.db``, ``sqlite:////abs/x.db``,
    with a ``?query``) names its file as SQLAlchemy reads it, so it gets every check a bare
    path gets.
    """
    if kind(spec) in ("sqlite", "journal"):
        return Path(spec)
    if not re.match(r"(?i)sqlite(\+\w+)?://", spec):
        return None
    url = parse_url(spec)
    if url is None:
        raise StorageError(f"storage {mask(spec)!r} is not a SQLite URL SQLAlchemy can read "
                           "(sqlite:///relative.db or sqlite:////absolute.db)")
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("uri"):
        if database.startswith("file:") or url.query.get("uri"):
            raise StorageError(f"storage {mask(spec)!r}: SQLite file: URIs are not supported; "
                               "give the file's path (sqlite:///path.db)")
        return None
    return Path(database)


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
    return Path("hpsearch-artifacts") / _server_folder(spec)


def _server_folder(spec: str) -> str:
    """A folder name for a server's studies: its database name, else its host and port.

    Never anything from the URL's user info (a password would become a file name, printed
    by ``best`` and stored in its record).
    """
    url = parse_url(spec)
    if url is None:
        return "default"
    name = url.database or "_".join(str(x) for x in (url.host, url.port) if x) or "default"
    name = re.sub(r"[^\w.-]", "_", name).lstrip(".")
    return name or "default"


def storage_paths(spec: str) -> list[Path]:
    """Every file and directory that is part of the studies in ``spec``."""
    paths = [artifact_dir(spec)]
    path = study_file(spec)
    if path is not None:
        paths += [path] + [path.with_name(path.name + s)
                           for s in ("-wal", "-shm", "-journal", ".lock")]
    return [p.resolve() for p in paths]


# The driver each URL scheme needs, for "No module named ..." (SQLAlchemy's defaults).
_DRIVER_HINTS = {
    "psycopg": "for PostgreSQL: pip install 'hpsearch[postgres]'",
    "MySQLdb": "for MySQL: pip install mysqlclient, or pymysql with a mysql+pymysql:// URL",
    "pymysql": "for MySQL: pip install pymysql",
    "mysql": "for MySQL: pip install mysqlclient, or pymysql with a mysql+pymysql:// URL",
    "oracledb": "for Oracle: pip install oracledb",
    "pyodbc": "for SQL Server: pip install pyodbc",
}


def error_reason(exc: BaseException, spec: str | None = None) -> str:
    """The one line a person needs from a storage failure (passwords masked).

    ``spec``: the storage, so a failure on a full disk can say that the disk is full
    (SQLite in WAL mode reports a full disk as "disk I/O error").
    """
    # Optuna wraps a failed commit ("An exception is raised during the commit. This
    # typically happens due to invalid data ..."): the driver's own words (read-only
    # database, disk full) are in the cause.
    while isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ImportError) or "No module named" in text:
        module = getattr(exc, "name", None) or (re.findall(r"named '([^'.]+)", text) or [""])[0]
        hint = next((h for m, h in _DRIVER_HINTS.items() if module.startswith(m)),
                    "install the database driver that the URL names")
        text += f" ({hint})"
    if "database is locked" in text:
        text += (f" (another process held a lock on the file for {SQLITE_TIMEOUT:g} s; "
                 "set HPSEARCH_SQLITE_TIMEOUT to wait longer)")
    if spec is not None and ("disk I/O error" in text or "database or disk is full" in text
                             or getattr(exc, "errno", None) == 28):
        full = _full_disk(spec)
        if full:
            text = f"the disk is full ({full}): {text}"
    return mask(text)[:400]


def _full_disk(spec: str) -> str | None:
    """``"N KiB free on DIR"`` when the filesystem of ``spec``'s file is (nearly) full."""
    try:
        path = study_file(spec)
    except StorageError:
        return None
    if path is None:
        return None
    directory = path.resolve().parent
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    return f"{free // 1024} KiB free on {directory}" if free < 1 << 20 else None
