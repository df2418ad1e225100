"""A real PostgreSQL server for tests: a throwaway cluster the test session starts itself.

Uses Debian's ``postgresql`` package (``/usr/lib/postgresql/<major>/bin/initdb``, ``pg_ctl``;
``tools/setup`` installs it) and installs nothing. The cluster lives in a temporary folder,
listens on 127.0.0.1 on a free port and on a unix socket in that folder, authenticates TCP
clients by password (SCRAM) and is stopped and removed at the end. initdb and the server refuse
to run as root, so as root they run as the ``postgres`` user (``runuser``), which owns the
folder. If anything is missing the fixture fails with the reason: never skipped.

    from tests.postgres import postgres_cluster   # a session fixture
    def test_x(postgres_cluster): url = postgres_cluster.create_database("x")
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_fixtures import free_port

SERVER_USER = "postgres"
START_TIMEOUT_S = 60


def find_postgres_bin() -> Path:
    """The bin folder of the newest installed PostgreSQL major version."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); run tools/setup "
            "(apt-get install postgresql)"
        )
    return Path(found[-1]).parent


class PostgresCluster:
    """A running throwaway PostgreSQL cluster; ``create_database`` gives DSNs."""

    def __init__(self) -> None:
        self.bin = find_postgres_bin()
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="twin-postgres-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as_server_user: list[str] = []
        self._databases = 0
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError as exc:
                raise RuntimeError(
                    f"running as root, PostgreSQL needs the {SERVER_USER!r} user (created by "
                    "Debian's postgresql package; run tools/setup)"
                ) from exc
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as_server_user = ["runuser", "-u", SERVER_USER, "--"]

    def _run(self, *args: str, input_text: str | None = None) -> None:
        command = [*self._as_server_user, *args]
        done = subprocess.run(
            command, input=input_text, capture_output=True, text=True, timeout=START_TIMEOUT_S,
            cwd=self.folder,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )

    def start(self) -> PostgresCluster:
        """initdb and start the server; returns self."""
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        if self._as_server_user:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        password_file.chmod(0o600)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            f"--pwfile={password_file}", "--auth-host=scram-sha-256", "--auth-local=peer",
            "--encoding=UTF8", "--locale=C", "--no-instructions",
        )
        password_file.unlink()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.folder} -c fsync=on -c synchronous_commit=on "
            "-c max_connections=60 -c shared_buffers=16MB"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(START_TIMEOUT_S), "start",
        )
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the cluster folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                          "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// DSN for a database of the cluster."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its DSN."""
        import psycopg

        self._databases += 1
        name = "".join(c if c.isalnum() else "_" for c in prefix.lower()) + f"_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server for the whole session (stopped and removed at its end)."""
    cluster = PostgresCluster()
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()
