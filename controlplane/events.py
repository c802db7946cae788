"""Waiting for events: a running call gives its worker slot back until an event is
sent to a key (POST /api/events/<key>), and runs again from the top with it.

A wait is a step of its call (see controlplane.steps), of the stage
`callplane.event`, with arguments [key, timeout]: running while it waits, with its
timeout's end as `not_before`; succeeded with the event's payload as its result,
or failed with callplane.EventTimeout. An event sent while nobody waits for its
key is kept (CALLPLANE_EVENT_KEEP_SECONDS, a day by default) for the first call
that does. Waiter and sender each write their own row first and pair second
(EventRows.pair), so whichever comes last delivers; a sender that pairs wakes the
waiting chain at once, and a waiter that finds its step over after suspending
wakes its own chain (an event paired in between found it still running).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from controlplane.commands import CallCommands
from controlplane.steps import WaitSteps
from controlplane.store import Store, utcnow
from controlplane.store.events import Delivery, EventRows
from sdk.errors import EventTimeout
from sdk.options import MAX_DELAY_SECONDS
from sdk.records import Arguments, CallRecord, ErrorRecord, Outcome
from sdk.waits import EVENT_STAGE, EventSent, EventWaitRequest, WaitAnswer, timed_out
from sdk.wire import Status

log = logging.getLogger(__name__)


class Events:
    def __init__(self, rows: EventRows, store: Store, steps: WaitSteps, commands: CallCommands,
                 keep_seconds: float):
        self._rows = rows
        self._store = store
        self._steps = steps
        self._commands = commands
        self._keep = timedelta(seconds=keep_seconds)

    def send(self, key: str, payload: Any, idempotency_key: str | None = None) -> EventSent:
        """Deliver an event to the call waiting longest for `key`, or keep it for the
        next one that waits; a send repeated with its `idempotency_key` is the same
        event, answered as it stands."""
        now = utcnow()
        until = now + self._keep
        event_id = self._rows.keep(key, payload, now, until, idempotency_key)
        self._wake(self._rows.pair(key, now))
        mine = self._rows.delivered_to(event_id)
        if mine is not None:
            log.info("event %r delivered to call %s", key, mine)
            return EventSent(key, delivered_to=mine)
        return EventSent(key, kept_until=until)

    def wait(self, call_id: str, request: EventWaitRequest) -> WaitAnswer:
        """The wait of a running call at a position: over (the event came, or the
        timeout passed), or the chain suspended until one of them happens."""
        now = utcnow()
        until = now + timedelta(seconds=request.timeout) if request.timeout is not None else None
        arguments = Arguments([request.key, request.timeout], {})
        step = self._steps.step_at(call_id, request, EVENT_STAGE, arguments, until)
        if step.status is Status.RUNNING:
            self._rows.add_wait(step.id, request.key, [i for i, _ in request.chain], now)
            self._wake(self._rows.pair(request.key, now))
            step = self._store.get(step.id) or step
        answer = self._over(step, now)
        if answer is not None:
            self._rows.drop_wait(step.id)
            return answer
        wake = step.not_before or now + timedelta(seconds=MAX_DELAY_SECONDS)
        self._steps.suspend(call_id, request, wake)
        if (self._store.get(step.id) or step).status is not Status.RUNNING:
            self._commands.wake([i for i, _ in request.chain])
        return WaitAnswer(False, wake.isoformat())

    def forget_expired(self, now: datetime) -> int:
        """Drop the kept events nobody waited for in time (the clock does, now and then)."""
        return self._rows.drop_expired(now)

    def _over(self, step: CallRecord, now: datetime) -> WaitAnswer | None:
        """The answer of a wait that is over: its event, or its timeout (recorded
        now if it just passed); None while it goes on."""
        if step.status is Status.SUCCEEDED:
            return WaitAnswer(True, payload=step.result)
        if step.status is Status.FAILED:
            return WaitAnswer(True, timed_out=True)
        if step.status is not Status.RUNNING:  # cancelled: the stage gets CallCancelled
            return WaitAnswer(True, cancelled=True)
        if step.not_before is None or step.not_before > now:
            return None
        key, timeout = step.arguments.args[:2]
        error = ErrorRecord.system(EventTimeout, timed_out(key, timeout))
        if self._store.finish(step.id, Outcome(step.id, EVENT_STAGE, Status.FAILED, error=error,
                                               finished_at=now)):
            return WaitAnswer(True, timed_out=True)
        return self._over(self._store.get(step.id) or step, now)  # its event came meanwhile

    def _wake(self, deliveries: list[Delivery]) -> None:
        """Move the woken chains' jobs to their queues (their pairing made them due in
        the table already)."""
        for delivery in deliveries:
            self._commands.promote(delivery.chain)
