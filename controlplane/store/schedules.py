"""The `schedules` table: registrations, the due ones, and each fire's mark.

A fire is marked with a conditional UPDATE on the fire time it read, so two
control planes that both hold the clock for a moment (a paused holder whose
lease ran out) move a schedule on once; the fire's call is made once anyway, by
its idempotency key (see controlplane.schedules).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import Engine

from controlplane.store.engine import translating
from controlplane.store.rows import as_utc
from controlplane.tables import schedules
from sdk.records import plain
from sdk.schedules import ScheduleDefinition, ScheduleRecord

_TIMES = ("next_fire_at", "last_fire_at", "registered_until")


def _record(row: sa.Row) -> ScheduleRecord:
    mapping = {str(name): value for name, value in zip(row._fields, row)}
    for name in _TIMES:
        mapping[name] = as_utc(mapping[name])
    return msgspec.convert(mapping, ScheduleRecord)


@translating
class ScheduleRows:
    def __init__(self, engine: Engine):
        self.engine = engine

    def all(self) -> list[ScheduleRecord]:
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(schedules.select().order_by(schedules.c.name))]

    def get(self, name: str) -> ScheduleRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(schedules.select().where(schedules.c.name == name)).first()
        return _record(row) if row is not None else None

    def register(self, definition: ScheduleDefinition, version: tuple[str | None, str | None],
                 until: datetime, first_fire: datetime) -> None:
        """Add a schedule, or keep one registered: a changed definition (or code
        version) starts again from `first_fire`; an unchanged one keeps its fires."""
        try:
            self._register(definition, version, until, first_fire)
        except sa.exc.IntegrityError:  # another worker added it first: keep it registered
            self._register(definition, version, until, first_fire)

    def _register(self, definition: ScheduleDefinition, version: tuple[str | None, str | None],
                  until: datetime, first_fire: datetime) -> None:
        fields = {**msgspec.structs.asdict(definition), "arguments": plain(definition.arguments),
                  "repo_name": version[0], "commit_hash": version[1]}
        with self.engine.begin() as conn:
            row = conn.execute(schedules.select().where(schedules.c.name == definition.name)
                               .with_for_update()).first()
            if row is None:
                conn.execute(schedules.insert().values(
                    **fields, paused=False, next_fire_at=first_fire, registered_until=until))
                return
            same = _record(row)
            changed = (same.definition != definition
                       or (same.repo_name, same.commit_hash) != version)
            values = {**fields, "registered_until": until}
            if changed:
                values["next_fire_at"] = first_fire
            conn.execute(schedules.update().where(schedules.c.name == definition.name).values(**values))

    def due(self, now: datetime) -> list[ScheduleRecord]:
        """Schedules to fire: registered still, not paused, their next fire past."""
        query = schedules.select().where(
            schedules.c.next_fire_at <= now, schedules.c.registered_until > now,
            schedules.c.paused.is_(False)).order_by(schedules.c.next_fire_at)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def next_fire(self, now: datetime) -> datetime | None:
        """The earliest next fire of a schedule that may fire."""
        query = sa.select(sa.func.min(schedules.c.next_fire_at)).where(
            schedules.c.registered_until > now, schedules.c.paused.is_(False))
        with self.engine.connect() as conn:
            return as_utc(conn.execute(query).scalar_one())

    def fired(self, name: str, fire: datetime, following: datetime, call_id: str | None,
              late_seconds: float | None) -> bool:
        """Move a schedule from the fire `fire` to `following`; False if another
        control plane did first."""
        values = {"next_fire_at": following, "last_late_seconds": late_seconds}
        if call_id is not None:
            values.update(last_fire_at=fire, last_call_id=call_id)
        query = schedules.update().where(schedules.c.name == name,
                                         schedules.c.next_fire_at == fire).values(**values)
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def set_paused(self, name: str, paused: bool) -> bool:
        query = schedules.update().where(schedules.c.name == name).values(paused=paused)
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1
