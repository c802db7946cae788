"""Connecting to the audit database: SQLite by default, PostgreSQL when DATABASE_URL says."""

from __future__ import annotations

import functools
import inspect
from datetime import datetime, timezone

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import Engine

from controlplane.errors import StoreUnavailable

#: How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
#: PostgreSQL connections a control-plane process keeps, and how many more it may open.
POOL_SIZE, POOL_OVERFLOW = 10, 20


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def normalise_url(url: str) -> str:
    """Accept the URLs users have (Heroku's postgres://, plain postgresql://) and pick psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    )

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        # WAL lets readers run beside the writer; NORMAL sync is durable across
        # process crashes (not power loss) and keeps a commit well under a millisecond.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def translating(cls):
    """Class decorator: the database being away or busy (SQLAlchemy's
    OperationalError and InterfaceError, or a connection lost mid-statement: no
    connection, a lock not granted in time) leaves every public method as
    StoreUnavailable, so the API answers 503
    and the recorder waits; a refusal of the data itself (an IntegrityError, a
    DataError) passes as it is."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, _translate(member))
    return cls


def _translate(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except sqlalchemy.exc.DBAPIError as exc:
            if not _unavailable(exc):
                raise
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""]
            raise StoreUnavailable(f"the audit database is unavailable: {reason[0]}") from None

    return wrapper


def _unavailable(exc: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether the database is away or busy, rather than refusing the data."""
    return exc.connection_invalidated or isinstance(
        exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
