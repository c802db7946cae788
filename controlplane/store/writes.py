"""Changing the audit tables: new calls, and every move of a call's life.

Every move is one conditional UPDATE whose WHERE clause names the statuses it is
legal from (sdk.wire.TRANSITIONS) and, for a worker's report, the attempt and
worker it is fenced by: zero rows means the move was illegal or someone else
won, never a read-then-write race.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from controlplane.store.batches import ReportBatch
from controlplane.store.engine import translating, utcnow
from controlplane.store.rows import call_of, error_value, row_of
from controlplane.store.statements import (
    CANCEL_UNDER_CANCELLED,
    FINISH,
    FINISH_REPORTED,
    INSERT,
    INSERT_IF_NEW,
    RENEW,
    ROWS,
    START,
    SUSPEND,
    WAKE,
    outcome_params,
    reported_params,
    start_params,
)
from controlplane.tables import call_attempts, stage_runs
from sdk.errors import CallCancelled
from sdk.records import CallRecord, ErrorRecord, Outcome
from sdk.reports import Report, RetryReport
from sdk.wire import RERUNNABLE_STATUSES, RunMode, Status, sources_of

#: The status an attempt given up for its lost worker is kept under in call_attempts.
LOST = "lost"


class _NotAll(Exception):
    """A call of a suspension was not running where it said: roll them all back."""


@translating
class Writes:
    engine: Engine

    def insert(self, records: list[CallRecord]) -> None:
        """Write new calls' rows in one transaction; raises sqlalchemy.exc.IntegrityError
        (and writes none) if one of their ids exists."""
        with self.engine.begin() as conn:
            conn.execute(INSERT, [row_of(record) for record in records])

    def suspend(self, chain: list[tuple[str, int]], worker: str, wake: datetime
                ) -> list[CallRecord] | None:
        """The calls of `chain` ([id, attempt]) running on `worker` at those attempts,
        pending until `wake` (see statements.SUSPEND), all or none: their records,
        or None if one of them is not running there any more."""
        params = [{"p_id": call_id, "p_attempt": attempt, "p_worker": worker, "p_wake": wake}
                  for call_id, attempt in chain]
        try:
            with self.engine.begin() as conn:
                for param in params:
                    if conn.execute(SUSPEND, param).rowcount != 1:
                        raise _NotAll
                rows = conn.execute(ROWS, {"p_ids": [call_id for call_id, _ in chain]})
                return [call_of(row) for row in rows]
        except _NotAll:
            return None

    def wake(self, call_ids: list[str], now: datetime) -> list[str]:
        """Those of `call_ids` pending until later (a suspended chain) are due `now`;
        the ids of every pending one of them, whose jobs may still wait among the
        delayed calls (a chain suspended while it was woken)."""
        with self.engine.begin() as conn:
            later = [row.id for row in conn.execute(ROWS, {"p_ids": call_ids})
                     if row.status == Status.PENDING.value and row.not_before is not None]
            if later:
                conn.execute(WAKE, {"p_ids": later, "p_now": now})
        return later

    def start(
        self,
        call_id: str,
        worker: str,
        started_at: datetime,
        run_mode: RunMode = RunMode.DISPATCHED,
        *,
        attempt: int = 1,
        lease_until: datetime | None = None,
    ) -> bool:
        """pending -> running for this attempt; False if the call was not pending
        at that attempt."""
        params = start_params(call_id, worker, started_at, run_mode, attempt, lease_until)
        with self.engine.begin() as conn:
            return conn.execute(START, params).rowcount == 1

    def finish(
        self, call_id: str, outcome: Outcome, *, worker: str | None = None, attempt: int | None = None
    ) -> bool:
        """running -> terminal (a finish over HTTP); False if the call was not running,
        or not at `attempt` on `worker` when those are named."""
        params = {**outcome_params(call_id, outcome), "p_worker": worker, "p_attempt": attempt}
        with self.engine.begin() as conn:
            return conn.execute(FINISH, params).rowcount == 1

    def finish_reported(self, call_id: str, outcome: Outcome) -> bool:
        """A worker's own report of its attempt's outcome, fenced: it counts only for
        the call's current attempt, and only while that attempt is the reporting
        worker's. It may also find the call still pending, when its start event is
        in flight; it carries the start, so the row gets both."""
        with self.engine.begin() as conn:
            return conn.execute(FINISH_REPORTED, reported_params(call_id, outcome)).rowcount == 1

    def apply_reports(
        self, reports: Iterable[tuple[str, Report]], lease_until: datetime | None = None
    ) -> list[CallRecord]:
        """Apply workers' reports (sdk.reports) in one transaction, each kind in one
        executemany, in the order of a call's life (see ReportBatch).

        Returns the reported calls that are finished now, as the table has them,
        so their waiters can be answered without reading them again (a duplicate
        report names a call finished before: waking its waiters again is
        harmless). Reports that are no longer legal (a duplicate, a stale worker
        or attempt) change nothing.
        """
        batch = ReportBatch.of(reports, lease_until)
        with self.engine.begin() as conn:
            if batch.creates:
                conn.execute(INSERT_IF_NEW[conn.dialect.name], batch.creates)
                self._cancel_under_cancelled(conn, [row["id"] for row in batch.creates])
            if batch.starts:
                conn.execute(START, batch.starts)
            for call_id, retry in batch.retries:
                self._retry(conn, call_id, retry, lease_until)
            if batch.renewals:
                conn.execute(RENEW, batch.renewals)
            if not batch.finishes:
                return []
            conn.execute(FINISH_REPORTED, batch.finishes)
            calls = [call_of(row) for row in conn.execute(ROWS, {"p_ids": batch.finished_ids})]
        return [call for call in calls if call.status.is_terminal]

    @staticmethod
    def _cancel_under_cancelled(conn: Connection, created: list[str]) -> None:
        error = error_value(ErrorRecord.system(CallCancelled, "cancelled with its parent call"))
        params = {"p_ids": created, "p_error": error, "p_finished_at": utcnow()}
        while conn.execute(CANCEL_UNDER_CANCELLED, params).rowcount:
            pass

    def rerun(self, ended: CallRecord, fresh: CallRecord) -> CallRecord | None:
        """Start the next attempt of a failed (or cancelled) call, as `fresh` (a new
        record of it: pending, or running in place; due at its `not_before`) says;
        the ended attempt goes to call_attempts. None if the call was no longer so at that attempt."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                stage_runs.update()
                .where(stage_runs.c.id == ended.id, stage_runs.c.status == ended.status.value,
                       stage_runs.c.status.in_([s.value for s in RERUNNABLE_STATUSES]),
                       stage_runs.c.attempt == ended.attempt)
                .values(
                    attempt=ended.attempt + 1, result=None, error=None, output=None,
                    finished_at=None, status=fresh.status.value, parent_attempt=fresh.parent_attempt,
                    worker=fresh.worker, run_mode=fresh.run_mode.value if fresh.run_mode else None,
                    started_at=fresh.started_at, lease_expires_at=fresh.lease_expires_at,
                    not_before=fresh.not_before,
                )
            )
            if changed.rowcount != 1:
                return None
            self._keep_attempt(conn, ended, ended.status.value, ended.error, ended.finished_at)
            return call_of(conn.execute(ROWS, {"p_ids": [ended.id]}).one())

    def cancel(self, call_ids: list[str], error: ErrorRecord) -> list[CallRecord]:
        """Cancel those of `call_ids` that are pending or running; their rows before
        the change (their queue, and whether they were running)."""
        unfinished = sources_of(Status.CANCELLED)
        with self.engine.begin() as conn:
            calls = [call_of(row) for row in conn.execute(ROWS, {"p_ids": call_ids})
                     if row.status in unfinished]
            cancelled = []
            for call in calls:
                changed = conn.execute(
                    stage_runs.update()
                    .where(stage_runs.c.id == call.id, stage_runs.c.status == call.status.value)
                    .values(status=Status.CANCELLED.value, error=error_value(error),
                            finished_at=utcnow(), lease_expires_at=None)
                )
                if changed.rowcount == 1:
                    cancelled.append(call)
        return cancelled

    def end_attempt(
        self,
        call_id: str,
        attempt: int,
        worker: str | None,
        error: ErrorRecord,
        lost_attempts: int,
        *,
        expired_before: datetime | None = None,
    ) -> CallRecord | None:
        """Give up a running attempt that will never report (its worker or process
        is gone): the call is pending again as the next attempt, or failed with
        `error` once it has had max(max_attempts, lost_attempts) attempts.

        Fenced like a report: only the call's current attempt, run by `worker`
        (any worker if None), and with `expired_before`, only if its lease ended
        before then (a heartbeat recorded since saves it). Returns the call as it
        is now, or None if the attempt was not given up. An attempt followed by
        another goes to call_attempts; a last one stays the row's own.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(ROWS, {"p_ids": [call_id]}).first()
            if row is None or row.status != Status.RUNNING.value or row.attempt != attempt:
                return None
            call = call_of(row)
            conditions = [stage_runs.c.id == call_id, stage_runs.c.status == Status.RUNNING.value,
                          stage_runs.c.attempt == attempt]
            if worker is not None:
                conditions.append(stage_runs.c.worker == worker)
            if expired_before is not None:
                conditions.append(stage_runs.c.lease_expires_at < expired_before)
            again = attempt < max(call.max_attempts, lost_attempts)
            if again:
                change = {"status": Status.PENDING.value, "attempt": attempt + 1, "worker": None,
                          "run_mode": None, "started_at": None, "lease_expires_at": None}
            else:
                change = {"status": Status.FAILED.value, "error": error_value(error),
                          "finished_at": now, "lease_expires_at": None}
            if conn.execute(stage_runs.update().where(*conditions).values(**change)).rowcount != 1:
                return None
            if again:
                self._keep_attempt(conn, call, LOST, error, now)
            return call_of(conn.execute(ROWS, {"p_ids": [call_id]}).one())

    @staticmethod
    def _keep_attempt(
        conn: Connection, call: CallRecord, status: str, error: ErrorRecord | None,
        finished_at: datetime | None,
    ) -> None:
        """Keep an attempt that another follows in call_attempts."""
        conn.execute(call_attempts.insert().values(
            call_id=call.id, attempt=call.attempt, status=status, worker=call.worker,
            run_mode=call.run_mode.value if call.run_mode else None, error=error_value(error),
            started_at=call.started_at, finished_at=finished_at,
        ))

    @staticmethod
    def _retry(
        conn: Connection, call_id: str, retry: RetryReport, lease_until: datetime | None
    ) -> None:
        """Its worker runs the next attempt of a call whose attempt raised: the
        failed attempt goes to call_attempts."""
        changed = conn.execute(
            stage_runs.update()
            .where(stage_runs.c.id == call_id, stage_runs.c.status == Status.RUNNING.value,
                   stage_runs.c.attempt == retry.attempt, stage_runs.c.worker == retry.worker)
            .values(attempt=retry.attempt + 1, started_at=retry.next_started_at,
                    lease_expires_at=lease_until)
        )
        if changed.rowcount == 1:
            conn.execute(call_attempts.insert().values(
                call_id=call_id, attempt=retry.attempt, status=Status.FAILED.value,
                worker=retry.worker,
                run_mode=sa.select(stage_runs.c.run_mode).where(stage_runs.c.id == call_id)
                .scalar_subquery(),
                error=error_value(retry.error), started_at=retry.started_at,
                finished_at=retry.finished_at,
            ))
