"""`callplane db upgrade`: bring a database to the newest schema, in place."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from controlplane.store import Store, make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's ini interpolation treats % specially (URL-encoded passwords have it).
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


class Migration(NamedTuple):
    """What an upgrade did: the revision the schema was at (None: there was none)
    and the one it is at now."""

    before: str | None
    after: str | None

    def __str__(self) -> str:
        if self.before is None:
            return f"created the schema at revision {self.after}"
        if self.before == self.after:
            return f"the schema is already at revision {self.after}"
        return f"upgraded the schema from revision {self.before} to {self.after}"


def upgrade(database_url: str, revision: str = "head") -> Migration:
    before = _revision(database_url)
    command.upgrade(alembic_config(database_url), revision)
    return Migration(before, _revision(database_url))


def _revision(database_url: str) -> str | None:
    store = Store(make_engine(database_url))
    try:
        return store.schema_revision()
    finally:
        store.engine.dispose()


def shown(database_url: str) -> str:
    """The database's URL as callplane prints it: without its password."""
    return sa.make_url(database_url).render_as_string(hide_password=True)


def head_revision() -> str:
    """The schema revision this code expects (the newest migration)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head() or ""
