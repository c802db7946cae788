"""Durable sleeps: a running call gives its worker slot back until a time, and runs
again from the top then, its finished calls returning their recorded results.

A sleep is a child of its call at its position, of the stage `callplane.sleep`:
running, with its wake time as `not_before`, while it lasts; succeeded once a run
of its call passes it after that time. Suspending ends the run of the call and of
the calls it runs in (the chain in its worker's slot): each is pending again at
the same attempt, its job among the delayed calls until the wake time, and the
first start each keeps tells its next run that it runs again (CallMessage.resumed).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import NoReturn

import sqlalchemy.exc

from controlplane.commands import CallCommands
from controlplane.dispatch import Dispatch
from controlplane.errors import CallConflict, DispatchUnavailable, StoreUnavailable
from controlplane.reading import CallReading
from controlplane.store import Store, utcnow
from sdk.errors import RedisUnavailable
from sdk.records import Arguments, CallRecord
from sdk.transport import Transport
from sdk.waits import SLEEP_STAGE, SleepAnswer, SleepRequest
from sdk.wire import Status, child_call_id, queue_name

log = logging.getLogger(__name__)


class Sleeps:
    def __init__(self, store: Store, reading: CallReading, transport: Transport,
                 dispatch: Dispatch, commands: CallCommands):
        self._store = store
        self._reading = reading
        self._transport = transport
        self._dispatch = dispatch
        self._commands = commands

    def sleep(self, call_id: str, request: SleepRequest) -> SleepAnswer:
        """The sleep of a running call at a position: over (this run goes on), or the
        chain suspended until it is. CallConflict when the call made another call
        there in an earlier run, or no longer runs there."""
        if not request.chain or tuple(request.chain[-1]) != (call_id, request.attempt):
            raise CallConflict(f"a sleep's chain ends with the call that sleeps, {call_id}")
        self._commands.await_recorders()  # the run's start and in-place calls are in the table
        call, now = self._reading.get(call_id), utcnow()
        sleep = self._store.child_at(call_id, request.position) or self._new_sleep(call, request, now)
        if sleep.stage != SLEEP_STAGE:
            raise CallConflict(
                f"position {request.position} of call {call_id} ({call.stage}) was a call of "
                f"{sleep.stage!r} in an earlier run, and is a sleep now: a stage that sleeps must "
                "make the same calls in the same order each run (side effects belong in child "
                "stages, what varies between runs outside their arguments)")
        wake = sleep.not_before or now
        if wake <= now:
            self._store.end_sleep(sleep.id, now)
            return SleepAnswer(True, wake.isoformat())
        self._suspend(call_id, request, wake)
        return SleepAnswer(False, wake.isoformat())

    def _new_sleep(self, call: CallRecord, request: SleepRequest, now: datetime) -> CallRecord:
        sleep = CallRecord(
            id=child_call_id(call.id, request.position), stage=SLEEP_STAGE, status=Status.RUNNING,
            arguments=Arguments([request.seconds], {}), parent_stage_run_id=call.id,
            root_stage_run_id=call.root_stage_run_id, position=request.position,
            parent_attempt=request.attempt,
            queue=queue_name(SLEEP_STAGE, call.repo_name, call.commit_hash),
            repo_name=call.repo_name, commit_hash=call.commit_hash, created_at=now,
            started_at=now, not_before=now + timedelta(seconds=request.seconds),
        )
        try:
            self._store.insert([sleep])
        except sqlalchemy.exc.IntegrityError:  # made meanwhile by the same run's retried request
            return self._store.child_at(call.id, request.position) or sleep
        return sleep

    def _refuse(self, chain: list[tuple[str, int]], call_id: str, request: SleepRequest) -> NoReturn:
        """Why a chain could not be suspended: the recorders have not written its
        run yet (a start, a call made in place: try again), or it is not this
        worker's to suspend any more."""
        found = self._store.get_many(chained_id for chained_id, _ in chain)
        behind = [chained_id for chained_id, attempt in chain
                  if chained_id not in found or (found[chained_id].status is Status.PENDING
                                                 and found[chained_id].attempt == attempt)]
        if behind:
            raise StoreUnavailable(f"the recorders have not written the run of call(s) {behind} "
                                   "yet: try again")
        raise CallConflict(f"call {call_id} does not run on {request.worker} at attempt "
                           f"{request.attempt} any more: its sleep is refused")

    def _suspend(self, call_id: str, request: SleepRequest, wake: datetime) -> None:
        """Give the slot back: the jobs first (only this worker's attempts), then the
        table, then the jobs again, among the delayed calls until `wake`."""
        chain = [(chained_id, attempt) for chained_id, attempt in request.chain]
        try:
            for chained in self._store.get_many(chained_id for chained_id, _ in chain).values():
                self._transport.jobs.abandon(chained.queue, chained.id, request.worker,
                                             chained.attempt)
        except RedisUnavailable as exc:
            raise DispatchUnavailable(f"cannot give the slot back now: {exc}") from None
        suspended = self._store.suspend(chain, request.worker, wake)
        if suspended is None:
            self._refuse(chain, call_id, request)
        self._dispatch.enqueue(suspended)
        log.info("call %s sleeps until %s (%d call(s) give their slot back)", call_id,
                 wake.isoformat(), len(suspended))
