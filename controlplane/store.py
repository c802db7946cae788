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

from controlplane.tables import call_attempts, stage_runs
from sdk.wire import TRANSITIONS, RunMode, Status, sources_of

#: How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
#: Ids per `IN (...)` list: well under SQLite's limit on bound parameters.
IN_LIST_LIMIT = 500
#: The largest OFFSET both databases take (a signed 64-bit integer); a page past
#: the last row is empty whatever its number.
OFFSET_LIMIT = 2**63 - 1


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


def _in_utc(value: datetime) -> datetime:
    """A time to compare with the table's, which are UTC: SQLite drops a bound
    time's offset, so one given in another zone must be converted first."""
    return _as_utc(value).astimezone(timezone.utc)


def _row_dict(row: sa.Row) -> dict[str, Any]:
    record = dict(row._mapping)
    for key in ("created_at", "started_at", "finished_at", "lease_expires_at"):
        if key in record:
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
            conn.execute(_INSERT, records)

    def get(self, call_id: str) -> dict[str, Any] | None:
        return self.get_many([call_id]).get(call_id)

    def get_many(self, call_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The rows of those of `call_ids` that exist, by id."""
        return self._by_ids(_ROWS, call_ids, lambda row: (row.id, _row_dict(row)))

    def statuses(self, call_ids: Iterable[str]) -> dict[str, str]:
        """The status of those of `call_ids` that exist, by id (a light read for waiters)."""
        return self._by_ids(_STATUSES, call_ids, tuple)

    def _by_ids(self, query, call_ids: Iterable[str], entry) -> dict:
        ids = list(call_ids)
        found = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), IN_LIST_LIMIT):
                rows = conn.execute(query, {"p_ids": ids[start:start + IN_LIST_LIMIT]})
                found.update(entry(row) for row in rows)
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
        return self._page(where, stage_runs.c.created_at, offset, limit)

    def runs(
        self,
        *,
        status: str | None = None,
        stage: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        repo_name: str | None = None,
        commit_hash: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of runs (root calls), newest first, and how many match."""
        where = [stage_runs.c.parent_stage_run_id.is_(None)]
        for column, value in (("status", status), ("stage", stage), ("repo_name", repo_name),
                              ("commit_hash", commit_hash)):
            if value:
                where.append(stage_runs.c[column] == value)
        if since:
            where.append(stage_runs.c.created_at >= _in_utc(since))
        if until:
            where.append(stage_runs.c.created_at < _in_utc(until))
        return self._page(where, stage_runs.c.created_at.desc(), offset, limit)

    def _page(self, where: list, order, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The rows matching `where` in `order` (then by id), one page, and their count."""
        query = stage_runs.select().where(*where).order_by(order, stage_runs.c.id)
        count = sa.select(sa.func.count()).select_from(stage_runs).where(*where)
        with self.engine.connect() as conn:
            page = query.offset(min(offset, OFFSET_LIMIT)).limit(limit)
            rows = [_row_dict(r) for r in conn.execute(page)]
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
        run_mode: str = RunMode.DISPATCHED.value,
        *,
        attempt: int = 1,
        lease_until: datetime | None = None,
    ) -> bool:
        """pending -> running for this attempt; False if the call was not pending
        at that attempt."""
        params = _start_params(call_id, worker, started_at, run_mode, attempt, lease_until)
        with self.engine.begin() as conn:
            return conn.execute(_START, params).rowcount == 1

    def finish(self, call_id: str, outcome: dict[str, Any], *, reported_by_worker=False) -> bool:
        """running -> terminal; False if the call was not running.

        A worker's own report (`reported_by_worker`) is fenced: it counts only for
        the call's current attempt, and only while that attempt is the
        reporting worker's. It may also find the call still pending, when its
        start event is in flight; it carries the start, so the row gets both.
        """
        with self.engine.begin() as conn:
            return self._finish(conn, call_id, outcome, reported_by_worker)

    def apply_events(
        self, events: Iterable[tuple[str, str, dict[str, Any]]], lease_until: datetime | None = None
    ) -> list[str]:
        """Apply workers' (kind, call id, body) reports in one transaction.

        Kinds: start, finish, retry (an attempt raised and its worker runs the
        next one), and heartbeat (a worker renewing the leases of the attempts it
        runs; its body lists [call id, attempt] pairs). Starts, retries and
        heartbeats give leases until `lease_until`. They apply in the order of a
        call's life: starts, retries (by attempt), renewals, finishes.

        Returns the ids of the reported calls that are finished now, so their
        waiters can be woken (a duplicate report names a call finished before:
        waking its waiters again is harmless). Reports that are no longer legal
        (a duplicate, a stale worker or attempt) change nothing; every finish is
        tried, in the order reported, so a stale one cannot hide the current one.
        A start whose attempt's finish is in the same batch is folded into it
        (the finish carries the start); each kind goes in one executemany, so a
        batch costs a few statements, however many reports it holds.
        """
        events = list(events)
        finishes = [(call_id, body) for kind, call_id, body in events if kind == "finish"]
        finished = {(call_id, body.get("attempt", 1)) for call_id, body in finishes}
        retries = sorted(
            ((call_id, body) for kind, call_id, body in events if kind == "retry"),
            key=lambda retry: retry[1]["attempt"],
        )
        starts = [
            _start_params(
                call_id,
                body["worker"],
                parse_time(body["started_at"]),
                body.get("run_mode", RunMode.DISPATCHED.value),
                body.get("attempt", 1),
                lease_until,
            )
            for kind, call_id, body in events
            if kind == "start" and (call_id, body.get("attempt", 1)) not in finished
        ]
        renewals = [
            {"p_id": call_id, "p_attempt": attempt, "p_worker": body["worker"], "p_lease": lease_until}
            for kind, _worker, body in events
            if kind == "heartbeat"
            for call_id, attempt in body["calls"]
            if (call_id, attempt) not in finished
        ]
        reports = [_finish_params(call_id, body, True) for call_id, body in finishes]
        reported = list(dict.fromkeys(call_id for call_id, _ in finishes))
        with self.engine.begin() as conn:
            if starts:
                conn.execute(_START, starts)
            for call_id, body in retries:
                self._retry(conn, call_id, body, lease_until)
            if renewals:
                conn.execute(_RENEW, renewals)
            if not reports:
                return []
            conn.execute(_FINISH_REPORTED, reports)
            rows = conn.execute(_STATUSES, {"p_ids": reported})
            statuses = {call_id: status for call_id, status in rows}
        return [i for i in reported if i in statuses and Status(statuses[i]).is_terminal]

    def child_at(self, parent_id: str, position: int | None) -> dict[str, Any] | None:
        """The child a call made at `position`, if any."""
        query = stage_runs.select().where(
            stage_runs.c.parent_stage_run_id == parent_id, stage_runs.c.position == position
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _row_dict(row) if row is not None else None

    def rerun(self, failed: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any] | None:
        """Start the next attempt of a failed (or cancelled) call, as `fresh` (a new
        record of it: pending, or running in place) says; the ended attempt goes
        to call_attempts. None if the call was no longer so at that attempt."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                stage_runs.update()
                .where(stage_runs.c.id == failed["id"], stage_runs.c.status == failed["status"],
                       stage_runs.c.status.in_(_RERUNNABLE), stage_runs.c.attempt == failed["attempt"])
                .values(
                    attempt=failed["attempt"] + 1,
                    result=None, error=None, output=None, finished_at=None,
                    **{key: fresh[key] for key in _RERUN_FROM_FRESH},
                )
            )
            if changed.rowcount != 1:
                return None
            conn.execute(call_attempts.insert().values(
                call_id=failed["id"], attempt=failed["attempt"], status=failed["status"],
                worker=failed["worker"], run_mode=failed["run_mode"], error=failed["error"],
                started_at=failed["started_at"], finished_at=failed["finished_at"],
            ))
            return _row_dict(conn.execute(_ROWS, {"p_ids": [failed["id"]]}).one())

    def cancel(self, call_ids: list[str], error: dict[str, Any]) -> list[dict[str, Any]]:
        """Cancel those of `call_ids` that are pending or running; their rows before
        the change (their queue, and whether they were running)."""
        unfinished = sources_of(Status.CANCELLED)
        with self.engine.begin() as conn:
            rows = [
                _row_dict(row) for row in conn.execute(_ROWS, {"p_ids": call_ids})
                if row.status in unfinished
            ]
            cancelled = []
            for row in rows:
                changed = conn.execute(
                    stage_runs.update()
                    .where(stage_runs.c.id == row["id"], stage_runs.c.status == row["status"])
                    .values(status=Status.CANCELLED.value, error=error, finished_at=utcnow(),
                            lease_expires_at=None)
                )
                if changed.rowcount == 1:
                    cancelled.append(row)
        return cancelled

    def pending(
        self, created_before: datetime, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[dict[str, Any]]:
        """Pending calls created before `created_before`, oldest first, `limit` at
        most; `after` is the (created_at, id) of the last one of the previous page."""
        query = stage_runs.select().where(
            stage_runs.c.status == Status.PENDING.value, stage_runs.c.created_at < created_before
        )
        if after is not None:
            query = query.where(sa.tuple_(stage_runs.c.created_at, stage_runs.c.id) > after)
        query = query.order_by(stage_runs.c.created_at, stage_runs.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [_row_dict(row) for row in conn.execute(query)]

    # -- lost attempts -------------------------------------------------------------

    def expired_leases(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Running attempts whose lease ended before `now`, the longest-expired first."""
        query = (
            sa.select(*(stage_runs.c[name] for name in _LEASE_COLUMNS))
            .where(stage_runs.c.status == Status.RUNNING.value, stage_runs.c.lease_expires_at < now)
            .order_by(stage_runs.c.lease_expires_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_row_dict(row) for row in conn.execute(query)]

    def end_attempt(
        self,
        call_id: str,
        attempt: int,
        worker: str | None,
        error: dict[str, Any],
        lost_attempts: int,
        *,
        expired_before: datetime | None = None,
    ) -> dict[str, Any] | None:
        """Give up a running attempt that will never report (its worker or process
        is gone): the call is pending again as the next attempt, or failed with
        `error` once it has had max(max_attempts, lost_attempts) attempts.

        Fenced like a report: only the call's current attempt, run by `worker`
        (any worker if None), and with `expired_before`, only if its lease ended
        before then (a heartbeat recorded since saves it). Returns the call's row
        as it is now, or None if the attempt was not given up. An attempt followed
        by another goes to call_attempts; a last one stays the row's own.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(_ROWS, {"p_ids": [call_id]}).first()
            if row is None or row.status != Status.RUNNING.value or row.attempt != attempt:
                return None
            conditions = [
                stage_runs.c.id == call_id,
                stage_runs.c.status == Status.RUNNING.value,
                stage_runs.c.attempt == attempt,
            ]
            if worker is not None:
                conditions.append(stage_runs.c.worker == worker)
            if expired_before is not None:
                conditions.append(stage_runs.c.lease_expires_at < expired_before)
            if attempt < max(row.max_attempts, lost_attempts):
                change = {"status": Status.PENDING.value, "attempt": attempt + 1, "worker": None,
                          "run_mode": None, "started_at": None, "lease_expires_at": None}
            else:
                change = {"status": Status.FAILED.value, "error": error, "finished_at": now,
                          "lease_expires_at": None}
            if conn.execute(stage_runs.update().where(*conditions).values(**change)).rowcount != 1:
                return None
            if change["status"] == Status.PENDING.value:
                conn.execute(call_attempts.insert().values(
                    call_id=call_id, attempt=attempt, status="lost", worker=row.worker,
                    run_mode=row.run_mode, error=error, started_at=row.started_at, finished_at=now,
                ))
            return _row_dict(conn.execute(_ROWS, {"p_ids": [call_id]}).one())

    def attempts(self, call_id: str) -> list[dict[str, Any]]:
        """The earlier attempts of a call (see call_attempts), first first."""
        query = (
            call_attempts.select()
            .where(call_attempts.c.call_id == call_id)
            .order_by(call_attempts.c.attempt)
        )
        with self.engine.connect() as conn:
            return [_row_dict(row) for row in conn.execute(query)]

    @staticmethod
    def _retry(conn, call_id: str, body: dict[str, Any], lease_until: datetime | None) -> None:
        """Its worker runs the next attempt of a call whose attempt raised: the
        failed attempt goes to call_attempts."""
        attempt, worker = body["attempt"], body["worker"]
        changed = conn.execute(
            stage_runs.update()
            .where(stage_runs.c.id == call_id, stage_runs.c.status == Status.RUNNING.value,
                   stage_runs.c.attempt == attempt, stage_runs.c.worker == worker)
            .values(attempt=attempt + 1, started_at=parse_time(body["next_started_at"]),
                    lease_expires_at=lease_until)
        )
        if changed.rowcount == 1:
            conn.execute(call_attempts.insert().values(
                call_id=call_id, attempt=attempt, status=Status.FAILED.value, worker=worker,
                run_mode=sa.select(stage_runs.c.run_mode).where(stage_runs.c.id == call_id)
                .scalar_subquery(),
                error=body["error"], started_at=parse_time(body["started_at"]),
                finished_at=parse_time(body["finished_at"]),
            ))

    @staticmethod
    def _finish(conn, call_id: str, outcome: dict[str, Any], reported_by_worker: bool) -> bool:
        statement = _FINISH_REPORTED if reported_by_worker else _FINISH
        params = _finish_params(call_id, outcome, reported_by_worker)
        return conn.execute(statement, params).rowcount == 1


def _finish_params(call_id: str, outcome: dict[str, Any], reported_by_worker: bool) -> dict:
    target = Status(outcome["status"])
    if target not in TRANSITIONS[Status.RUNNING]:
        raise ValueError(f"{target.value} is not an outcome of a running call")
    params = {
        "p_id": call_id,
        "p_status": target.value,
        "p_result": outcome.get("result"),
        "p_error": outcome.get("error"),
        "p_output": outcome.get("output") or None,
        "p_finished_at": parse_time(outcome.get("finished_at")) or utcnow(),
    }
    if not reported_by_worker:  # a finish over HTTP is fenced only if it names its attempt
        params.update(p_worker=outcome.get("worker"), p_attempt=outcome.get("attempt"))
    else:
        params.update(
            p_worker=outcome.get("worker"),
            p_attempt=outcome.get("attempt", 1),
            p_started_at=parse_time(outcome.get("started_at")),
            # An isolated call's mode is only known once its stage is.
            p_run_mode=outcome.get("run_mode"),
        )
    return params


#: The statuses a call may run again from (by hand, or its parent's new attempt).
_RERUNNABLE = (Status.FAILED.value, Status.CANCELLED.value)
#: What a re-run of a failed call takes from the new request.
_RERUN_FROM_FRESH = ("status", "parent_attempt", "worker", "run_mode", "started_at",
                     "lease_expires_at")
#: What the reaper needs of a running call to give up its attempt.
_LEASE_COLUMNS = ("id", "attempt", "worker", "queue", "lease_expires_at")

_INSERT = stage_runs.insert()
# Reads by id, built once: `p_ids` expands to the list given at execution.
_ROWS = stage_runs.select().where(stage_runs.c.id.in_(sa.bindparam("p_ids", expanding=True)))
_STATUSES = sa.select(stage_runs.c.id, stage_runs.c.status).where(
    stage_runs.c.id.in_(sa.bindparam("p_ids", expanding=True))
)

# The state changes, built once with bound parameters (so SQLAlchemy compiles
# each once): a conditional UPDATE whose WHERE names the legal source statuses.
def _param(name: str, column: str) -> sa.BindParameter:
    return sa.bindparam(name, type_=stage_runs.c[column].type)


def _where(*legal_from: str):
    # Each legal status is its own bound value: an expanding IN list cannot be
    # used in an executemany.
    legal = [sa.literal(status) for status in legal_from]
    return stage_runs.c.id == sa.bindparam("p_id"), stage_runs.c.status.in_(legal)


def _start_params(
    call_id: str,
    worker: str,
    started_at: datetime | None,
    run_mode: str,
    attempt: int = 1,
    lease_until: datetime | None = None,
) -> dict:
    return {"p_id": call_id, "p_worker": worker, "p_started_at": started_at, "p_run_mode": run_mode,
            "p_attempt": attempt, "p_lease": lease_until}


_ATTEMPT = stage_runs.c.attempt == sa.bindparam("p_attempt")
_START = (
    stage_runs.update()
    .where(*_where(*sources_of(Status.RUNNING)), _ATTEMPT)
    .values(
        status=Status.RUNNING.value,
        worker=_param("p_worker", "worker"),
        started_at=_param("p_started_at", "started_at"),
        run_mode=_param("p_run_mode", "run_mode"),
        lease_expires_at=_param("p_lease", "lease_expires_at"),
    )
)
# A heartbeat renews the lease of an attempt its worker still holds.
_RENEW = (
    stage_runs.update()
    .where(*_where(Status.RUNNING.value), _ATTEMPT,
           stage_runs.c.worker == sa.bindparam("p_worker"))
    .values(lease_expires_at=_param("p_lease", "lease_expires_at"))
)
_OUTCOME = {
    "status": _param("p_status", "status"),
    "result": _param("p_result", "result"),
    "error": _param("p_error", "error"),
    "output": _param("p_output", "output"),
    "finished_at": _param("p_finished_at", "finished_at"),
    "lease_expires_at": None,
}
# A finish over HTTP: of a running call; of its attempt and worker when it names them.
_FINISH = (
    stage_runs.update()
    .where(
        *_where(Status.RUNNING.value),
        stage_runs.c.attempt == sa.func.coalesce(sa.bindparam("p_attempt"), stage_runs.c.attempt),
        stage_runs.c.worker == sa.func.coalesce(sa.bindparam("p_worker"), stage_runs.c.worker),
    )
    .values(**_OUTCOME)
)
# A worker's report of its attempt's outcome: the call's current attempt, still
# pending (its start is in flight) or running on that worker.
_FINISH_REPORTED = (
    stage_runs.update()
    .where(
        stage_runs.c.id == sa.bindparam("p_id"),
        _ATTEMPT,
        sa.or_(
            stage_runs.c.status.in_([sa.literal(s) for s in sources_of(Status.RUNNING)]),
            sa.and_(
                stage_runs.c.status == sa.literal(Status.RUNNING.value),
                stage_runs.c.worker == sa.bindparam("p_worker"),
            ),
        ),
    )
    .values(
        **_OUTCOME,
        worker=_param("p_worker", "worker"),
        started_at=sa.func.coalesce(stage_runs.c.started_at, _param("p_started_at", "started_at")),
        run_mode=sa.func.coalesce(_param("p_run_mode", "run_mode"), stage_runs.c.run_mode),
    )
)
