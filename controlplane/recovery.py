"""Recovering what Redis or a worker lost, from the table (the system of record).

- Attempts that will never report: their worker died or hangs (its lease
  ended), or the process running them died (the worker says so). No lease is
  given up within a lease of the database or Redis being away (part_away). The table
  decides first (a conditional UPDATE fenced by attempt, so of several control
  planes only one gives an attempt up), then Redis follows: the call goes back
  on its queue as its next attempt, or, once its attempts are used up, its job
  is settled as failed and its waiters are told.
- Pending calls that Redis lost track of (it restarted empty, a worker died
  right after popping one, a queue was emptied by hand, Redis was away when the
  call was created): they are queued again; so are calls due that still wait
  among the delayed calls (an early wake-up that Redis missed). After Redis
  lost its data (its epoch mark is gone) every pending call is checked at once;
  otherwise, every lease, the oldest 2,000 of those pending for longer than a
  lease are (a lost call stays pending, so it becomes one of the oldest).

Every control plane's recorder sweeps, but one at a time does the work: the
holder of the recovery duty (controlplane.duty), which another takes over a
lease and a half after the holder stopped sweeping.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from controlplane.dispatch import Dispatch
from controlplane.duty import holder_name
from controlplane.metrics import Metrics
from controlplane.store import Store, utcnow
from controlplane.store.limits import LimitRows
from controlplane.store.rows import ExpiredLease
from sdk.errors import RedisUnavailable, WorkerLost
from sdk.records import CallRecord, ErrorRecord, Outcome
from sdk.transport import Transport
from sdk.wire import Status

log = logging.getLogger(__name__)

#: Expired leases given up per sweep, at most.
SWEEP_LIMIT = 500
#: Pending calls checked against Redis per round trip.
CHECK_PAGE = 500
#: Pages of the oldest pending calls checked each lease (a lost call stays
#: pending and so becomes one of the oldest); after Redis lost its data, all are.
ROUTINE_CHECK_PAGES = 4
#: Running calls of limited stages whose slots are restored after Redis lost its data.
RESTORE_LIMIT = 100_000
DUTY = "recovery"


class Recovery:
    def __init__(self, store: Store, transport: Transport, lost_attempts: int, lease_seconds: float,
                 dispatch: Dispatch | None = None, limits: LimitRows | None = None,
                 metrics: Metrics | None = None):
        """`limits`: what restores the slots of running calls of limited stages
        after Redis lost its data; `metrics` counts the attempts given up."""
        self._store = store
        self._metrics = metrics
        self._transport = transport
        self._dispatch = dispatch or Dispatch(transport)
        self._limits = limits
        self._lost_attempts = lost_attempts
        self._lease = timedelta(seconds=lease_seconds)
        self._next_check = 0.0
        #: Until when (monotonic) no lease is given up: a part was away (part_away).
        self._hold_until = 0.0
        self.holder = holder_name()
        #: The duty passes to another control plane a lease and a half after its
        #: holder last swept (a busy recorder may sweep only a lease and a quarter apart).
        self._duty_lease = lease_seconds * 1.5

    def part_away(self, exc: Exception) -> None:
        """The database or Redis could not be reached just now. Workers' heartbeats
        may not have been heard or recorded meanwhile, so no attempt is given up for
        its lease until both have answered for a full lease, here or in any other
        control plane (the database being away is not a worker being dead)."""
        self._hold_until = time.monotonic() + self._lease.total_seconds()
        try:
            self._transport.jobs.mark_part_away(str(exc)[:200], self._lease.total_seconds())
        except RedisUnavailable:
            pass  # Redis is the part away: this process holds off on its own

    def holding_off(self) -> bool:
        """Whether leases are not given up now, as a part was away within a lease."""
        return time.monotonic() < self._hold_until or self._transport.jobs.part_away()

    def sweep(self) -> None:
        """Everything above that is due: called often (a few times a lease), and
        done by the one control plane that holds the recovery duty (two that ever
        overlap are safe: each step is fenced in the table)."""
        if not self._transport.duties.hold(DUTY, self.holder, self._duty_lease):
            return
        jobs = self._transport.jobs
        if not jobs.has_epoch():
            log.warning("Redis holds no epoch mark (it restarted empty, or is new): "
                        "checking every pending call")
            self.restore_slots()
            self.requeue_untracked(utcnow())
            jobs.mark_epoch()
        elif time.monotonic() >= self._next_check:
            self.requeue_untracked(utcnow() - self._lease, ROUTINE_CHECK_PAGES)
            self.promote_woken()
            self._next_check = time.monotonic() + self._lease.total_seconds()
        self.give_up_expired()

    def requeue_untracked(self, created_before: datetime, pages: int | None = None) -> int:
        """Queue again the pending calls created before then that Redis lost track
        of, oldest first (`pages` pages of them at most: then only those due, as the
        calls waiting for a later time, which may be many and old, are among the
        delayed calls and would fill the pages)."""
        requeued, after = 0, None
        due_by = utcnow() if pages is not None else None
        while pages is None or pages > 0:
            page = self._store.pending(created_before, CHECK_PAGE, after, due_by)
            if not page:
                return requeued
            if pages is not None:
                pages -= 1
            by_id = {call.id: call for call in page}
            lost = self._transport.jobs.untracked([(c.queue, c.id, c.attempt) for c in page])
            if lost:
                log.warning("queueing %d pending call(s) again that Redis had lost", len(lost))
                self._dispatch.queue([by_id[i] for i in lost])
                requeued += len(lost)
            last = page[-1]
            after = (last.created_at, last.id)
        return requeued

    def restore_slots(self) -> int:
        """Running calls of limited stages hold their slots again (before any
        pending call is let in at its gate), so the limits still hold; how many."""
        if self._limits is None:
            return 0
        running = self._limits.running_gated(RESTORE_LIMIT)
        restored = self._transport.gates.restore(running)
        if restored:
            log.warning("%d running call(s) of limited stages hold their slots again", restored)
            # A call that ended between the read and the restore would hold its slot for good.
            now = self._store.get_many(call_id for _, call_id, *_rest in running)
            self._transport.gates.drop_stubs([call_id for call_id, call in now.items()
                                              if call.status is not Status.RUNNING])
        return restored

    def promote_woken(self) -> int:
        """Calls due in the table that still wait among the delayed calls (a wait
        woken early while Redis was away) go to their queues; how many."""
        now = utcnow()
        moved = self._transport.queues.promote(self._store.due_delayed(now, CHECK_PAGE), now)
        if moved:
            log.warning("queued %d due call(s) that still waited among the delayed calls", moved)
        return moved

    def give_up_expired(self) -> int:
        """Give up every attempt whose lease has ended; how many were given up.
        None while holding off after a part was away (see part_away)."""
        if self.holding_off():
            return 0
        now = utcnow()
        given_up = 0
        for lease in self._store.expired_leases(now, SWEEP_LIMIT):
            outcome = self._transport.jobs.abandon(lease.queue, lease.id, lease.worker, lease.attempt)
            if outcome is not None and not self._record_late(lease, outcome, now):
                continue  # it finished after all: its report is on its way to the recorder
            error = ErrorRecord.system(
                WorkerLost,
                f"worker {lease.worker} stopped renewing the lease of attempt {lease.attempt} "
                f"(it ended at {lease.lease_expires_at:%H:%M:%S})",
            )
            given_up += self.give_up(lease.id, lease.attempt, lease.worker, error, now) is not None
        return given_up

    def _record_late(self, lease: ExpiredLease, outcome: Outcome, now: datetime) -> bool:
        """An attempt whose lease ended but whose job says it finished: its report
        should reach the recorder soon. If a lease has passed since and the table
        still says running, the report was lost or refused: record the outcome
        from the job. True if the attempt must be given up after all (the table
        refuses that outcome too)."""
        if lease.lease_expires_at > now - self._lease:
            return False
        log.warning("call %s: attempt %d finished a lease ago but is not recorded; recording "
                    "its outcome from its job", lease.id, lease.attempt)
        finished = self._store.apply_reports([(lease.id, outcome)])
        if finished:
            if self._metrics is not None:
                self._metrics.finished(finished)
            self._transport.broadcasts.announce_recorded([call.id for call in finished])
            return False
        return True

    def give_up(
        self,
        call_id: str,
        attempt: int,
        worker: str | None,
        error: ErrorRecord,
        expired_before: datetime | None = None,
    ) -> CallRecord | None:
        """End a running attempt for good, then queue the next or settle the failure."""
        record = self._store.end_attempt(
            call_id, attempt, worker, error, self._lost_attempts, expired_before=expired_before
        )
        if record is None:
            return None
        if self._metrics is not None:
            self._metrics.lost(record.stage)
            if record.status.is_terminal:
                self._metrics.finished([record])
        try:
            if record.status is Status.PENDING:
                log.warning("call %s: attempt %d lost (%s); queued as attempt %d",
                            call_id, attempt, error.message, record.attempt)
                self._dispatch.queue([record])
            else:
                log.warning("call %s: attempt %d lost (%s); no attempts left, failed",
                            call_id, attempt, error.message)
                self._transport.jobs.settle(record.queue, record.outcome())
                self._dispatch.admit({record.gate} if record.gate else set())
        except RedisUnavailable as exc:
            # The table has it; the pending-call check puts it back on its queue.
            log.warning("call %s: given up, but Redis is away: %s", call_id, exc)
        return record
