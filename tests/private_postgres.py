"""A PostgreSQL server of a test's own (controlplane.local_postgres); the test is
skipped where PostgreSQL is not installed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from controlplane.local_postgres import PrivatePostgres, postgres_binaries
from controlplane.local_postgres import private_postgres as started


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed (Debian: postgresql)")
    with started(binaries) as server:
        yield server
