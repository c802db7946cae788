"""What people and HTTP workers ask of a call: claim it, finish it, retry it, cancel it.
Each changes the table first (a conditional UPDATE), then mirrors the change in
Redis and wakes whoever waits."""

from __future__ import annotations

import logging
import time

import msgspec

from controlplane.dispatch import Dispatch
from controlplane.errors import CallConflict, DispatchUnavailable
from controlplane.metrics import Metrics
from controlplane.reading import CallReading
from controlplane.store import Store, utcnow
from controlplane.trees import tree_nodes
from sdk.errors import CallCancelled, RedisUnavailable
from sdk.records import CallRecord, ErrorRecord, FinishRequest, Outcome
from sdk.reports import StartReport
from sdk.transport import Transport
from sdk.waits import STEP_STAGES
from sdk.wire import Status

log = logging.getLogger(__name__)
#: How long a cancel waits for the recorders to write what was reported before it.
RECORDERS_WAIT_SECONDS = 2.0
RECORDERS_POLL_SECONDS = 0.01


class CallCommands:
    def __init__(self, store: Store, reading: CallReading, transport: Transport, dispatch: Dispatch,
                 metrics: Metrics | None = None):
        self._store = store
        self._metrics = metrics
        self._reading = reading
        self._transport = transport
        self._dispatch = dispatch

    def start(self, call_id: str, worker: str) -> CallRecord:
        """Claim a queued call for `worker`: the same atomic claim the workers use."""
        record = self._reading.get(call_id)
        try:
            claimed = self._transport.queues.claim(record.queue, call_id, StartReport.now(worker))
        except RedisUnavailable as exc:
            raise DispatchUnavailable(str(exc)) from None
        if claimed is None:
            raise CallConflict(
                f"call {call_id} cannot be started: it is {record.status} "
                "and not waiting on its queue (another worker claimed it)"
            )
        self._transport.queues.take(record.queue, call_id)
        # No lease: a worker driving calls over HTTP has no way to renew one.
        self._store.start(call_id, worker, claimed.start.started_at, attempt=record.attempt)
        return self._reading.get(call_id)

    def finish(self, call_id: str, request: FinishRequest) -> CallRecord:
        """Record a result or error for a running call and wake its waiters."""
        record = self._reading.get(call_id)
        outcome = Outcome(call_id, record.stage, request.status, result=request.result,
                          error=request.error, output=request.output, finished_at=utcnow())
        if not self._store.finish(call_id, outcome, worker=request.worker, attempt=request.attempt):
            now = self._reading.get(call_id)
            if now.status is not Status.RUNNING:
                raise CallConflict(
                    f"call {call_id} is {now.status}, not running: only a running call can be "
                    "finished"
                )
            raise CallConflict(
                f"call {call_id} is running as attempt {now.attempt} on {now.worker}, not "
                f"attempt {request.attempt or now.attempt} on {request.worker or now.worker}: "
                "a stale attempt cannot finish it"
            )
        finished = self._reading.get(call_id)
        if self._metrics is not None:
            self._metrics.finished([finished])
        try:
            self._transport.jobs.settle(record.queue, finished.outcome())
            self._dispatch.admit({record.gate} if record.gate else set())  # its slot came free
        except RedisUnavailable:
            pass  # the table holds the outcome; waiters re-read it on their next check
        return finished

    def retry(self, call_id: str) -> CallRecord:
        """Run a failed or cancelled call again, by hand, as its next attempt: now,
        whatever time it waited for before."""
        record = self._reading.get(call_id)
        if not record.status.is_rerunnable:
            raise CallConflict(
                f"call {call_id} is {record.status}: only a failed or cancelled call can be "
                "retried"
            )
        fresh = msgspec.structs.replace(record, status=Status.PENDING, worker=None, run_mode=None,
                                        started_at=None, lease_expires_at=None, not_before=None)
        rerun = self._store.rerun(record, fresh)
        if rerun is None:
            raise CallConflict(f"call {call_id} changed while it was being retried; try again")
        self._dispatch.enqueue([rerun])
        return rerun

    def wake(self, chain: list[str]) -> None:
        """Calls suspended until later (a wait's chain) are due now: the table, then
        their jobs. If Redis is away, recovery moves them once it answers (they
        are due in the table)."""
        self.promote(self._store.wake(chain, utcnow()))

    def promote(self, call_ids: list[str]) -> None:
        """Calls due in the table go from the delayed calls to their queues (those not
        among them are left as they are). If Redis is away, recovery moves them once
        it answers."""
        try:
            self._transport.queues.promote(call_ids, utcnow())
            self._dispatch.admit(self._transport.queues.gates_of(call_ids))  # limited ones wait there
        except RedisUnavailable as exc:
            log.warning("calls %s are due but stay among the delayed calls until Redis "
                        "answers: %s", call_ids, exc)

    def _wake_waiting_in(self, cancelled: list[CallRecord], run: list[CallRecord]) -> None:
        """A sleep or event wait cancelled on its own ends the wait of the calls
        suspended in it (its caller and the calls it ran in): they run on now."""
        by_id = {call.id: call for call in run}
        for step in cancelled:
            if step.stage not in STEP_STAGES:
                continue
            chain, parent = [], by_id.get(step.parent_stage_run_id or "")
            while parent is not None and parent.status is Status.PENDING:
                chain.append(parent.id)
                parent = by_id.get(parent.parent_stage_run_id or "")
            if chain:
                self.wake(chain)

    def await_recorders(self) -> None:
        """Let the recorders write what workers reported before now, so the calls a
        worker created in place are in the tree: briefly, as a recorder may be away
        (one created later is cancelled when it is recorded, see Writes.apply_reports)."""
        events = self._transport.events
        try:
            newest = events.newest()
            deadline = time.monotonic() + RECORDERS_WAIT_SECONDS
            while newest is not None and not events.recorded_through(newest):
                if time.monotonic() >= deadline:
                    log.warning("cancelling without the reports the recorders have not written yet")
                    return
                time.sleep(RECORDERS_POLL_SECONDS)
        except RedisUnavailable:
            return

    def cancel(self, call_id: str) -> list[CallRecord]:
        """Cancel a call and every unfinished call under it: queued ones leave their
        queue, running ones are asked to stop, waiters get a cancellation error.
        Returns the calls it cancelled (as they were)."""
        self.await_recorders()
        run = self._reading.run_of(call_id)
        subtree = [node.id for node in tree_nodes(run, call_id)]
        error = ErrorRecord.system(CallCancelled, f"cancelled with call {call_id}")
        cancelled = self._store.cancel(subtree, error)
        self._wake_waiting_in(cancelled, run)
        if cancelled:
            at = utcnow()
            outcomes = [(c.queue, Outcome(c.id, c.stage, Status.CANCELLED, error=error,
                                          finished_at=at)) for c in cancelled]
            if self._metrics is not None:
                self._metrics.finished(msgspec.structs.replace(c, status=Status.CANCELLED,
                                                               finished_at=at) for c in cancelled)
            try:
                self._transport.jobs.cancel(outcomes, at)
                self._dispatch.admit({c.gate for c in cancelled if c.gate})  # their slots came free
            except RedisUnavailable as exc:
                # The table has it: workers' claims and reports of these calls are refused.
                log.warning("cancelled %d call(s), but Redis is away: %s", len(cancelled), exc)
        return cancelled
