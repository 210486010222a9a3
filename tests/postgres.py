"""A real PostgreSQL server for the tests, started in a temporary folder on a unix socket.

`initdb` refuses to run as root, so as root the server runs as the `postgres` user. The Makefile
installs Debian's `postgresql` package; nothing here is a mock.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
from pathlib import Path

_counter = itertools.count(1)


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def postgres_missing_reason() -> str | None:
    for name in ("initdb", "pg_ctl", "psql"):
        if _bin(name) is None:
            return (f"PostgreSQL's {name} is missing: `make test` installs Debian's postgresql package "
                    "(system-deps target); run it as root")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no 'postgres' user to run the server as (Debian's postgresql package creates it)"
    return None


class PostgresServer:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.socket_dir = self.folder / "sock"
        self.as_postgres = os.geteuid() == 0

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        if self.as_postgres:
            command = ("runuser", "-u", "postgres", "--", *command)
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        options = f"-c listen_addresses='' -k {self.socket_dir} -c fsync=off -c max_connections=200"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"),
                  "-w", "start")

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self) -> str:
        name = f"bm_test_{os.getpid()}_{next(_counter)}"
        self._run(_bin("psql"), "-h", str(self.socket_dir), "-U", "postgres", "-d", "postgres", "-c",
                  f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@/{name}?host={self.socket_dir}"
