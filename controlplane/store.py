"""The audit table: the only module that speaks SQL.

Every state change is one conditional UPDATE whose WHERE clause names the
statuses the move is legal from (sdk.wire.TRANSITIONS); zero rows means the move
was illegal or someone else won, never a read-then-write race.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from controlplane.tables import stage_runs
from sdk.wire import TRANSITIONS, RunMode, Status, sources_of

#: How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
#: Ids per `IN (...)` list: well under SQLite's limit on bound parameters.
IN_LIST_LIMIT = 500


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def normalise_url(url: str) -> str:
    """Accept the URLs users have (Heroku's postgres://, plain postgresql://) and pick psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
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


def _as_utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp callplane writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _row_dict(row: sa.Row) -> dict[str, Any]:
    record = dict(row._mapping)
    for key in ("created_at", "started_at", "finished_at"):
        record[key] = _as_utc(record[key])
    return record


class Store:
    """Reads and writes `stage_runs`."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def insert(self, records: list[dict[str, Any]]) -> None:
        """Write new calls' rows in one transaction; raises sqlalchemy.exc.IntegrityError
        (and writes none) if one of their ids exists."""
        with self.engine.begin() as conn:
            conn.execute(stage_runs.insert(), records)

    def get(self, call_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(stage_runs.select().where(stage_runs.c.id == call_id)).first()
        return _row_dict(row) if row else None

    def get_many(self, call_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The rows of those of `call_ids` that exist, by id."""
        ids = list(call_ids)
        found: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), IN_LIST_LIMIT):
                chunk = ids[start:start + IN_LIST_LIMIT]
                query = stage_runs.select().where(stage_runs.c.id.in_(chunk))
                found.update((row.id, _row_dict(row)) for row in conn.execute(query))
        return found

    def list(
        self,
        *,
        status: str | None = None,
        stage: str | None = None,
        parent_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of calls, oldest first, and the total count that matches."""
        where = []
        if status:
            where.append(stage_runs.c.status == status)
        if stage:
            where.append(stage_runs.c.stage == stage)
        if parent_id:
            where.append(stage_runs.c.parent_stage_run_id == parent_id)
        query = (
            stage_runs.select()
            .where(*where)
            .order_by(stage_runs.c.created_at, stage_runs.c.id)
            .offset(offset)
            .limit(limit)
        )
        count = sa.select(sa.func.count()).select_from(stage_runs).where(*where)
        with self.engine.connect() as conn:
            rows = [_row_dict(r) for r in conn.execute(query)]
            total = conn.execute(count).scalar_one()
        return rows, total

    def tree(self, root_id: str) -> list[dict[str, Any]]:
        """Every call of one run, in creation order: one indexed query."""
        query = (
            stage_runs.select()
            .where(stage_runs.c.root_stage_run_id == root_id)
            .order_by(stage_runs.c.created_at, stage_runs.c.id)
        )
        with self.engine.connect() as conn:
            return [_row_dict(r) for r in conn.execute(query)]

    # -- state changes -----------------------------------------------------------

    def start(
        self,
        call_id: str,
        worker: str,
        started_at: datetime,
        conn=None,
        run_mode: str = RunMode.DISPATCHED.value,
    ) -> bool:
        """pending -> running; False if the call was not pending."""
        statement = (
            stage_runs.update()
            .where(stage_runs.c.id == call_id, stage_runs.c.status.in_(sources_of(Status.RUNNING)))
            .values(
                status=Status.RUNNING.value, worker=worker, started_at=started_at, run_mode=run_mode
            )
        )
        return self._change(statement, conn)

    def finish(
        self, call_id: str, outcome: dict[str, Any], conn=None, *, reported_by_worker=False
    ) -> bool:
        """running -> terminal; False if the call was not running.

        A worker's own report (`reported_by_worker`) may also find the call still
        pending, when its start event is in flight; it carries the start, so the
        row gets both.
        """
        target = Status(outcome["status"])
        if target not in TRANSITIONS[Status.RUNNING]:
            raise ValueError(f"{target.value} is not an outcome of a running call")
        values: dict[str, Any] = {
            "status": target.value,
            "result": outcome.get("result"),
            "error": outcome.get("error"),
            "output": outcome.get("output") or None,
            "finished_at": parse_time(outcome.get("finished_at")) or utcnow(),
        }
        legal_from = {Status.RUNNING.value}
        if reported_by_worker:
            legal_from.update(sources_of(Status.RUNNING))
            values["worker"] = outcome.get("worker")
            values["started_at"] = sa.func.coalesce(
                stage_runs.c.started_at, parse_time(outcome.get("started_at"))
            )
            if outcome.get("run_mode"):  # it may have changed at the start (isolated)
                values["run_mode"] = outcome["run_mode"]
        statement = (
            stage_runs.update()
            .where(stage_runs.c.id == call_id, stage_runs.c.status.in_(sorted(legal_from)))
            .values(**values)
        )
        return self._change(statement, conn)

    def apply_events(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> list[str]:
        """Apply workers' (kind, call id, body) reports in one transaction.

        Returns the ids of calls whose completion was recorded, so their waiters
        can be woken. Reports that are no longer legal (a duplicate, a stale
        worker) change nothing.
        """
        finished = []
        with self.engine.begin() as conn:
            for kind, call_id, body in events:
                if kind == "start":
                    started_at = parse_time(body["started_at"])
                    run_mode = body.get("run_mode", RunMode.DISPATCHED.value)
                    self.start(call_id, body["worker"], started_at, conn, run_mode)
                elif kind == "finish" and self.finish(call_id, body, conn, reported_by_worker=True):
                    finished.append(call_id)
        return finished

    def _change(self, statement, conn) -> bool:
        if conn is not None:
            return conn.execute(statement).rowcount == 1
        with self.engine.begin() as own:
            return own.execute(statement).rowcount == 1
