"""What a call waits for: the records of durable sleeps (see controlplane.sleeps),
and what a pending call waits for before any worker may start it."""

from __future__ import annotations

from datetime import datetime

import msgspec

from sdk.wire import Status

#: The stage of a durable sleep's step (see controlplane.sleeps).
SLEEP_STAGE = "callplane.sleep"


class WaitingFor(msgspec.Struct, frozen=True):
    """What a pending call waits for before any worker may start it: its time as a
    delayed call (`delay`), or the end of its sleep (`sleep`), until `until`."""

    kind: str
    until: datetime

    @classmethod
    def of(cls, status: Status, not_before: datetime | None, sleeping: bool, now: datetime
           ) -> WaitingFor | None:
        """For a call in `status`, due at `not_before`; `sleeping`: a sleep of the
        call's is not over."""
        if status is not Status.PENDING or not_before is None or not_before <= now:
            return None
        return cls("sleep" if sleeping else "delay", not_before)


class SleepRequest(msgspec.Struct, frozen=True):
    """A running call sleeps at `position` among its calls (POST /api/call/<id>/sleep):
    it and the calls it runs in, `chain` ([id, attempt], outermost first, itself
    last), give their slot back until the sleep is over."""

    worker: str
    attempt: int
    position: int
    seconds: float
    chain: list[tuple[str, int]]


class SleepAnswer(msgspec.Struct, frozen=True):
    """`done`: the sleep at that position is over (this run goes on); otherwise the
    chain was suspended until `wake_at`."""

    done: bool
    wake_at: str
