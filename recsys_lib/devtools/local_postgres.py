"""A PostgreSQL server on 127.0.0.1 for the tests and for trying the serving store locally.

The server is the one the ``pgserver`` wheel carries (PostgreSQL 16, installed by
``make setup``: nothing to install from the system's packages), started with ``pg_ctl``
in a folder of its own, listening on a free TCP port (Spark's JDBC driver needs TCP) and
on a socket in that folder. Host connections need the password of the role it creates;
the tests pass it the way a deployment does, in ``PGPASSWORD``. PostgreSQL refuses to run
as root: under root the server runs as the system user ``pgserver``, which the wheel's own
helper creates.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
SYSTEM_USER = "pgserver"


@dataclass(frozen=True)
class LocalPostgres:
    host: str
    port: int
    user: str
    password: str
    folder: Path

    def url(self, database: str = "postgres", *, driver: str = "postgresql") -> str:
        """An SQLAlchemy/libpq URL of ``database`` without the password (PGPASSWORD has it)."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        self.psql(f'CREATE DATABASE "{name}"')

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with the server's own ``psql``; its output (tuples only)."""
        done = subprocess.run(
            [
                str(_bin("psql")),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-tAc",
                sql,
            ],  # fmt: skip
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()


def _bin(name: str) -> Path:
    import pgserver  # the wheel with PostgreSQL's binaries

    return Path(pgserver.__file__).parent / "pginstall" / "bin" / name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _as_server_user(folder: Path) -> tuple[int, int] | None:
    """The (uid, gid) to run the server's commands as (root may not run PostgreSQL), having
    handed that user the folder and the binaries; None when not root."""
    if os.geteuid() != 0:
        return None
    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,  # type: ignore[attr-defined]
    )

    ensure_user_exists(SYSTEM_USER)
    account = pwd.getpwnam(SYSTEM_USER)
    binaries = _bin("postgres").parent
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, 0o555)
    ensure_folder_permissions(binaries.parent / "lib", 0o444)
    ensure_prefix_permissions(folder)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)
    return account.pw_uid, account.pw_gid


def _run(args: list[str], run_as: tuple[int, int] | None, *, check: bool = True) -> None:
    user, group = run_as if run_as else (None, None)
    subprocess.run(args, check=check, capture_output=True, user=user, group=group)


@contextmanager
def local_postgres(folder: Path, *, user: str = "recsys") -> Iterator[LocalPostgres]:
    """Start a server in ``folder`` (created), yield where it listens, stop it after."""
    folder.mkdir(parents=True, exist_ok=True)
    data, password = folder / "data", secrets.token_urlsafe(16)
    shutil.rmtree(data, ignore_errors=True)
    (folder / "pwfile").write_text(password + "\n")
    port = free_port()
    run_as = _as_server_user(folder)
    initdb = [str(_bin("initdb")), "-D", str(data), "-U", user, "--encoding=UTF8"]
    auth = ["--auth-local=trust", "--auth-host=scram-sha-256"]
    _run([*initdb, *auth, "--pwfile", str(folder / "pwfile")], run_as)
    (folder / "pwfile").unlink()
    options = f"-h {HOST} -p {port} -k {folder}"
    log = str(folder / "server.log")
    _run([str(_bin("pg_ctl")), "-D", str(data), "-o", options, "-l", log, "-w", "start"], run_as)
    try:
        yield LocalPostgres(HOST, port, user, password, folder)
    finally:
        stop = [str(_bin("pg_ctl")), "-D", str(data), "-m", "fast", "-w", "stop"]
        _run(stop, run_as, check=False)
