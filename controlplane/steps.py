"""Waiting without a worker: what durable sleeps (controlplane.sleeps) and waits for
events (controlplane.events) share.

A wait is a step of its call: a child at its position, of the stage
`callplane.sleep` or `callplane.event`, running while it lasts with its end (the
sleep's wake time, the event's timeout) as `not_before`. Suspending ends the run
of the call and of the calls it runs in (the chain in its worker's slot): each is
pending again at the same attempt, its job among the delayed calls until the
wait's end, and the first start each keeps tells its next run that it runs again
(CallMessage.resumed). An event that comes first wakes the chain early
(CallCommands.wake). The
next run passes the step's position again and finds it over.
"""

from __future__ import annotations

import logging
from datetime import datetime
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
from sdk.waits import EVENT_STAGE, SLEEP_STAGE, StepRequest
from sdk.wire import Status, child_call_id, queue_name

log = logging.getLogger(__name__)


def described(stage: str, arguments: Arguments) -> str:
    """What a call at a position is, as a determinism error names it."""
    if stage == SLEEP_STAGE:
        return "a sleep"
    if stage == EVENT_STAGE:
        return f"a wait for event {arguments.args[0]!r}"
    return f"a call of {stage!r}"


def _same(step: CallRecord, stage: str, arguments: Arguments) -> bool:
    """Whether an earlier run's call at a position is this step (a sleep's length,
    an event's timeout may differ: the recorded one stands)."""
    return step.stage == stage and (stage != EVENT_STAGE or step.arguments.args[:1] == arguments.args[:1])


class WaitSteps:
    def __init__(self, store: Store, reading: CallReading, transport: Transport,
                 dispatch: Dispatch, commands: CallCommands):
        self._store = store
        self._reading = reading
        self._transport = transport
        self._dispatch = dispatch
        self._commands = commands

    def step_at(self, call_id: str, request: StepRequest, stage: str, arguments: Arguments,
                until: datetime | None) -> CallRecord:
        """The running call's step at the request's position: the one an earlier run
        made (run again, until `until`, if it failed or was cancelled under an earlier
        attempt of the call), or a new one. CallConflict when the call made another
        call there in an earlier run, or the chain does not end with the call."""
        if not request.chain or tuple(request.chain[-1]) != (call_id, request.attempt):
            raise CallConflict(f"a wait's chain ends with the call that waits, {call_id}")
        self._commands.await_recorders()  # the run's start and in-place calls are in the table
        call, now = self._reading.get(call_id), utcnow()
        fresh = CallRecord(
            id=child_call_id(call.id, request.position), stage=stage, status=Status.RUNNING,
            arguments=arguments, parent_stage_run_id=call.id,
            root_stage_run_id=call.root_stage_run_id, position=request.position,
            parent_attempt=request.attempt, queue=queue_name(stage, call.repo_name, call.commit_hash),
            repo_name=call.repo_name, commit_hash=call.commit_hash, created_at=now,
            started_at=now, not_before=until, worker=request.worker,
        )
        step = self._store.child_at(call_id, request.position)
        if step is None:
            try:
                self._store.insert([fresh])
                return fresh
            except sqlalchemy.exc.IntegrityError:  # made meanwhile by the same run's retried request
                step = self._store.child_at(call_id, request.position) or fresh
        if not _same(step, stage, arguments):
            raise CallConflict(
                f"position {request.position} of call {call_id} ({call.stage}) was "
                f"{described(step.stage, step.arguments)} in an earlier run, and is "
                f"{described(stage, arguments)} now: a stage that sleeps or waits must make the "
                "same calls in the same order each run (side effects belong in child stages, "
                "what varies between runs outside their arguments)")
        if step.status.is_rerunnable and request.attempt > (step.parent_attempt or 0):
            return self._store.rerun(step, fresh) or self._reading.get(step.id)
        return step

    def suspend(self, call_id: str, request: StepRequest, wake: datetime) -> None:
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
        log.info("call %s waits until %s at the latest (%d call(s) give their slot back)",
                 call_id, wake.isoformat(), len(suspended))

    def _refuse(self, chain: list[tuple[str, int]], call_id: str, request: StepRequest) -> NoReturn:
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
                           f"{request.attempt} any more: its wait is refused")
