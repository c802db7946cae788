"""Deleting whole finished runs: which runs may go, and their rows a small batch
per transaction, children before their parents, so that creates never wait
long behind a prune (controlplane.retention decides when)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from controlplane.store.engine import translating
from controlplane.tables import call_attempts, event_waits, stage_runs
from sdk.wire import TERMINAL_STATUSES, Status

UNFINISHED = [Status.PENDING.value, Status.RUNNING.value]
FINISHED = [status.value for status in TERMINAL_STATUSES]
#: The tables whose rows belong to one call, deleted with it (before it).
CALL_TABLES = ((call_attempts, call_attempts.c.call_id), (event_waits, event_waits.c.call_id))


@translating
class RetentionRows:
    def __init__(self, engine: Engine):
        self.engine = engine

    def prunable(self, cutoff: datetime, limit: int) -> list[str]:
        """Up to `limit` runs, oldest first, that finished before `cutoff` and
        hold no call still pending or running (a child that outlived its parent)."""
        run = stage_runs.alias("run")
        query = _prunable(run, cutoff).order_by(run.c.created_at).limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def count_prunable(self, cutoff: datetime) -> tuple[int, int]:
        """How many runs `prunable` would give in all, and how many calls they hold."""
        runs = _prunable(stage_runs.alias("run"), cutoff).subquery()
        calls = (sa.select(sa.func.count()).select_from(stage_runs)
                 .where(stage_runs.c.root_stage_run_id.in_(sa.select(runs.c.id))))
        with self.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one()
            return count, conn.execute(calls).scalar_one()

    def delete_some(self, runs: list[str], limit: int) -> tuple[int, int]:
        """Delete up to `limit` calls of these runs, those no other call names as
        its parent first, in one transaction; a run that gained an unfinished
        call meanwhile (a call retried by hand) is left alone. How many calls
        went, and how many of them were runs (a run's own call goes last)."""
        with self.engine.begin() as conn:
            unfinished = self._unfinished(conn, runs)
            runs = [run for run in runs if run not in unfinished]
            if not runs:
                return 0, 0
            child = stage_runs.alias("child")
            has_child = sa.exists().where(child.c.parent_stage_run_id == stage_runs.c.id)
            leaves = conn.execute(
                sa.select(stage_runs.c.id, stage_runs.c.parent_stage_run_id)
                .where(stage_runs.c.root_stage_run_id.in_(runs), ~has_child).limit(limit)
            ).all()
            ids = [leaf.id for leaf in leaves]
            for table, call_id in CALL_TABLES:
                conn.execute(table.delete().where(call_id.in_(ids)))
            conn.execute(stage_runs.delete().where(stage_runs.c.id.in_(ids)))
            return len(ids), sum(leaf.parent_stage_run_id is None for leaf in leaves)

    @staticmethod
    def _unfinished(conn: Connection, runs: list[str]) -> set[str]:
        query = (sa.select(stage_runs.c.root_stage_run_id).distinct()
                 .where(stage_runs.c.root_stage_run_id.in_(runs),
                        stage_runs.c.status.in_(UNFINISHED)))
        return set(conn.execute(query).scalars())


def _prunable(run: sa.Alias, cutoff: datetime) -> sa.Select:
    call = stage_runs.alias("call")
    unfinished = sa.exists().where(call.c.root_stage_run_id == run.c.id,
                                   call.c.status.in_(UNFINISHED))
    return sa.select(run.c.id).where(
        run.c.parent_stage_run_id.is_(None), run.c.created_at < cutoff,
        run.c.status.in_(FINISHED), run.c.finished_at < cutoff, ~unfinished)
