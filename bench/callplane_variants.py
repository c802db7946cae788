"""callplane with one lever changed, as rows of their own beside the default.

`callplane-gunicorn` serves the control plane with gunicorn's threaded worker
instead of granian: what the server switch bought. `callplane-pg` keeps the
audit trail in PostgreSQL instead of SQLite: how the production database
does. Each runs only the workloads where its lever shows, and only W1's
default mode (the isolated mode measures the worker's fork, not the lever).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from bench.callplane_system import CallplaneSystem

#: The PostgreSQL server `callplane-pg` makes its database on (trust auth, or a password here).
POSTGRES_ENV = "CALLPLANE_BENCH_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
CONNECT_TIMEOUT_SECONDS = 5


class CallplaneGunicorn(CallplaneSystem):
    name = "callplane-gunicorn"
    workloads = frozenset({"w1", "w3one", "conc"})
    w1_modes = w3one_modes = ("default",)
    server_options = ("--server", "gunicorn")


class CallplanePostgres(CallplaneSystem):
    """A fresh database of its own on the server POSTGRES_ENV names, dropped in `close`."""

    name = "callplane-pg"
    workloads = frozenset({"w1", "w3", "w3one", "conc"})
    w1_modes = w3one_modes = ("default",)

    def __init__(self, redis_url: str, workdir: Path) -> None:
        self._admin_url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
        self._database = f"bench_{uuid.uuid4().hex[:12]}"
        self._admin("CREATE DATABASE {}")
        try:
            super().__init__(redis_url, workdir)
        except BaseException:
            self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            raise

    def database_url(self) -> str:
        """This system's database on the same server (the control plane migrates it)."""
        return urlsplit(self._admin_url)._replace(path=f"/{self._database}").geturl()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")

    def _admin(self, statement: str) -> None:
        """Run `statement`, with this system's database name quoted in, outside a transaction
        (CREATE and DROP DATABASE refuse to run in one)."""
        with psycopg.connect(self._admin_url, autocommit=True,
                             connect_timeout=CONNECT_TIMEOUT_SECONDS) as connection:
            connection.execute(sql.SQL(statement).format(sql.Identifier(self._database)))
