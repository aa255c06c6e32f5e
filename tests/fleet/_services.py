"""
A PostgreSQL 15 and a Redis of the fleet tests' own, started from the
installed binaries in a temporary folder on free ports, so the tests can
stop, kill and restart them without touching the machine's shared servers.

Without the binaries the tests skip with one line naming what is missing;
with ``CI`` set they fail instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests._redis_servers import start_redis, start_redis_anywhere
from tests._serving import free_port, stop

#: Where Debian and Ubuntu install the PostgreSQL 15 server binaries.
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
#: What to install when they are missing.
INSTALL_POSTGRES = (
    "PostgreSQL 15 server binaries are not in /usr/lib/postgresql/15/bin: "
    "install postgresql-15 to run the fleet tests"
)
#: Redis options that keep every counter across a stop and a start.
AOF = ("--appendonly", "yes", "--appendfsync", "always")
INSTALL_REDIS = "redis-server is not installed: install Redis 7 to run the fleet tests"


def missing(what: str) -> None:
    """Skip the test (fail it when ``CI`` is set): *what* is not available."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set: the fleet tests may not skip)")
    pytest.skip(what)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check: object, what: str, timeout: float = 30.0) -> None:
    """Poll ``check()`` every 20 ms until it is true; fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        time.sleep(0.02)


class PostgresServer:
    """
    A PostgreSQL cluster made by ``initdb`` in *folder*, served on a free
    port of 127.0.0.1 (trust authentication, user ``postgres``). As root it
    runs as the ``postgres`` OS user (PostgreSQL refuses root).
    """

    def __init__(self, folder: Path) -> None:
        for tool in ("initdb", "postgres"):
            if not (POSTGRES_BIN / tool).exists():
                missing(INSTALL_POSTGRES)
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                missing("running as root needs a 'postgres' OS user to run PostgreSQL")
            self._as = ["runuser", "-u", "postgres", "--"]
            self._owner = (user.pw_uid, user.pw_gid)
        folder.mkdir(parents=True, exist_ok=True)
        if self._owner is not None:
            os.chown(folder, *self._owner)
        self.log = folder / "postgres.log"
        subprocess.run(
            [
                *self._as,
                str(POSTGRES_BIN / "initdb"),
                *("-D", str(self.data), "-U", "postgres", "-A", "trust"),
                *("--no-sync", "-E", "UTF8", "--locale", "C"),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def url(self, database: str = "postgres") -> str:
        """The URL of *database* on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server; return once it accepts connections."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self._as,
                    str(POSTGRES_BIN / "postgres"),
                    *("-D", str(self.data), "-p", str(self.port)),
                    *("-k", str(self.folder), "-c", "listen_addresses=127.0.0.1"),
                    *("-c", "fsync=off", "-c", "max_connections=200"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._ready, "the fleet tests' PostgreSQL did not start")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"PostgreSQL exited:\n{self.log.read_text(errors='replace')}")
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are cut) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        # runuser passes SIGINT on to postgres: a fast shutdown.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        wait_until(lambda: not _listening(self.port), "PostgreSQL did not stop")

    def create_database(self, name: str) -> str:
        """Create database *name*; return its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


class RedisServer:
    """
    A ``redis-server`` on a free port of 127.0.0.1 (the same port again
    after a `stop`) that keeps its data in an append-only file in *folder*
    (every write fsynced), so a stop and a start keep every counter, as a
    production Redis with persistence does.
    """

    def __init__(self, folder: Path) -> None:
        if not shutil.which("redis-server"):
            missing(INSTALL_REDIS)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL (once started)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it; return once it answers."""
        if self.port:
            self.proc = start_redis(self.folder, self.port, *AOF)
        else:
            self.proc, self.port = start_redis_anywhere(self.folder, *AOF)

    def stop(self) -> None:
        """Stop it (SIGTERM: it writes what it holds) and wait."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop(proc)
