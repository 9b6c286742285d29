"""A real, throw-away PostgreSQL server for the e2e tests (and ``scripts/soak.py``).

``postgres_url`` (session-scoped) starts one server on 127.0.0.1 on a free port in a temp
dir, yields a URL *with a password* (so the tests can check it is never printed), and
stops it. Tests that use it are skipped with a reason when the server binaries are missing.
Registered as a pytest plugin by ``tests/conftest.py``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

USER, PASSWORD = "hp", "s3cret-pw"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` (Debian), else wherever ``initdb`` is."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """initdb + pg_ctl start in a temp dir; :meth:`stop` removes everything."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="hpsearch-pg-"))
        self.port = _free_port()
        # The server refuses to run as root: use the `postgres` account when we are root.
        self.run_as: str | None = None
        if os.geteuid() == 0:
            self.run_as = "postgres" if _has_user("postgres") else "nobody"
            account = pwd.getpwnam(self.run_as)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        self.data = self.dir / "data"

    def _run(self, *args: str, timeout: float = 60) -> None:
        env = {**os.environ, "PGPASSWORD": PASSWORD, "LC_ALL": "C"}
        out = subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True,
                             text=True, timeout=timeout, env=env, user=self.run_as,
                             cwd=self.dir)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({out.returncode}): {out.stderr[-2000:]}")

    def start(self) -> str:
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as:
            account = pwd.getpwnam(self.run_as)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
                  "-A", "scram-sha-256", "--no-sync", "-E", "UTF8")
        # Durability is irrelevant for a test server; speed is not.
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.dir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "hpsearch")
        return self.url("hpsearch")

    def url(self, database: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "db") -> str:
        """A fresh, empty database on this server (one per test keeps tests independent)."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                    "apt-get install postgresql")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed; pip install 'hpsearch[postgres]'")
    server = PostgresServer(bindir)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        pytest.skip(f"could not start a local PostgreSQL: {str(exc)[:300]}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL (with a password) of a database on the session's server."""
    return postgres_server.url("hpsearch")


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> str:
    """URL of a fresh database for one test."""
    return postgres_server.create_database("t")
