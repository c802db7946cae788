"""Durable sleeps: a running call gives its worker slot back until a time, and runs
again from the top then, its finished calls returning their recorded results.

A sleep is a step of its call (see controlplane.steps), of the stage
`callplane.sleep`: running, with its wake time as `not_before`, while it lasts;
succeeded once a run of its call passes it after that time.
"""

from __future__ import annotations

from datetime import timedelta

from controlplane.steps import WaitSteps
from controlplane.store import Store, utcnow
from sdk.records import Arguments, Outcome
from sdk.waits import SLEEP_STAGE, SleepRequest, WaitAnswer
from sdk.wire import Status


class Sleeps:
    def __init__(self, store: Store, steps: WaitSteps):
        self._store = store
        self._steps = steps

    def sleep(self, call_id: str, request: SleepRequest) -> WaitAnswer:
        """The sleep of a running call at a position: over (this run goes on), or the
        chain suspended until it is. CallConflict when the call made another call
        there in an earlier run, or no longer runs there."""
        now = utcnow()
        sleep = self._steps.step_at(call_id, request, SLEEP_STAGE, Arguments([request.seconds], {}),
                                    now + timedelta(seconds=request.seconds))
        wake = sleep.not_before or now
        if sleep.status is not Status.RUNNING or wake <= now:
            self._store.finish(sleep.id, Outcome(sleep.id, SLEEP_STAGE, Status.SUCCEEDED,
                                                 finished_at=now))
            return WaitAnswer(True, wake.isoformat())
        self._steps.suspend(call_id, request, wake)
        return WaitAnswer(False, wake.isoformat())
