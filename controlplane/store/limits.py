"""The `stage_limits` table (stages' limits as workers registered them) and the
counts of the calls each limit governs."""

from __future__ import annotations

from datetime import datetime

import msgspec
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import Engine

from controlplane.store.engine import translating
from controlplane.tables import stage_limits, stage_runs
from sdk.limits import StageLimit
from sdk.records import plain
from sdk.wire import Status


@translating
class LimitRows:
    def __init__(self, engine: Engine):
        self.engine = engine

    def register(self, limits: list[StageLimit], until: datetime) -> None:
        """Add or keep registered each stage's limits (the latest registration wins)."""
        with self.engine.begin() as conn:
            for limit in limits:
                values = {"spec": plain(limit), "registered_until": until}
                updated = conn.execute(stage_limits.update().where(
                    stage_limits.c.stage == limit.stage).values(**values)).rowcount
                if not updated:
                    try:
                        with conn.begin_nested():
                            conn.execute(stage_limits.insert().values(stage=limit.stage, **values))
                    except sa.exc.IntegrityError:  # another worker added it first
                        conn.execute(stage_limits.update().where(
                            stage_limits.c.stage == limit.stage).values(**values))

    def current(self, now: datetime) -> list[StageLimit]:
        """The limits some worker registered lately (the others lapsed)."""
        query = sa.select(stage_limits.c.spec).where(stage_limits.c.registered_until > now)
        with self.engine.connect() as conn:
            return [msgspec.convert(spec, StageLimit) for spec in conn.execute(query).scalars()]

    def unfinished(self, stages: list[str]) -> list[tuple[str, str | None, Status, int]]:
        """How many calls of these stages are pending or running, by (stage, gate, status)."""
        if not stages:
            return []
        query = (sa.select(stage_runs.c.stage, stage_runs.c.gate, stage_runs.c.status, sa.func.count())
                 .where(stage_runs.c.stage.in_(stages),
                        stage_runs.c.status.in_([Status.PENDING.value, Status.RUNNING.value]))
                 .group_by(stage_runs.c.stage, stage_runs.c.gate, stage_runs.c.status))
        with self.engine.connect() as conn:
            return [(stage, gate, Status(status), count) for stage, gate, status, count in conn.execute(query)]

    def running_gated(self, limit: int) -> list[tuple[str, str, str, str | None, int]]:
        """Running calls of limited stages: (gate, id, queue, worker, attempt)."""
        query = (sa.select(stage_runs.c.gate, stage_runs.c.id, stage_runs.c.queue,
                           stage_runs.c.worker, stage_runs.c.attempt)
                 .where(stage_runs.c.status == Status.RUNNING.value, stage_runs.c.gate.is_not(None))
                 .limit(limit))
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]
