"""What a call waits for: the records of its waiting steps (a durable sleep, a wait
for an event; see controlplane.steps), and what a pending call waits for before
any worker may start it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec

from sdk.wire import Status

#: The stage of a durable sleep's step (see controlplane.sleeps).
SLEEP_STAGE = "callplane.sleep"
#: The stage of a wait for an event (see controlplane.events).
EVENT_STAGE = "callplane.event"
#: The stages of the steps a call waits in without holding a worker.
STEP_STAGES = (SLEEP_STAGE, EVENT_STAGE)

#: What an event key may be: it is a URL path segment (POST /api/events/<key>).
EVENT_KEY = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")
EVENT_KEY_RULE = "1 to 200 letters, digits and _ . : @ -"


def check_event_key(key: object) -> str:
    """`key` if it is a valid event key; else ValueError saying what one is."""
    if not isinstance(key, str) or EVENT_KEY.fullmatch(key) is None:
        shown = f"{key[:60]!r}… ({len(key)} characters)" if isinstance(key, str) and len(key) > 60 \
            else repr(key)
        raise ValueError(f"an event key is {EVENT_KEY_RULE}, not {shown}")
    return key


def timed_out(key: str, timeout: float | None) -> str:
    """What callplane.EventTimeout says."""
    return f"no event was sent to {key!r} within {timeout or 0:g} s"


class WaitingFor(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a pending call waits for before any worker may start it: its time as a
    delayed call (`delay`), the end of its sleep (`sleep`), or an event sent to
    `key` (`event`; `until` is its timeout, None for none)."""

    kind: str
    until: datetime | None
    key: str | None = None

    @classmethod
    def of(cls, status: Status, not_before: datetime | None, step: Any, now: datetime
           ) -> WaitingFor | None:
        """For a call in `status`, due at `not_before`; `step`: the running sleep or
        event wait (a CallRecord) it waits in, if any."""
        if status is not Status.PENDING or not_before is None or not_before <= now:
            return None
        if step is not None and step.stage == EVENT_STAGE:
            return cls("event", step.not_before, step.arguments.args[0])
        return cls("sleep" if step is not None else "delay", not_before)


class StepRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A running call waits at `position` among its calls: it and the calls it runs
    in, `chain` ([id, attempt], outermost first, itself last), give their slot
    back until the wait is over."""

    worker: str
    attempt: int
    position: int
    chain: list[tuple[str, int]]


class SleepRequest(StepRequest, frozen=True, kw_only=True):
    """A durable sleep (POST /api/call/<id>/sleep)."""

    seconds: float


class EventWaitRequest(StepRequest, frozen=True, kw_only=True):
    """A wait for the event sent to `key`, for `timeout` seconds at most (None: no
    limit) (POST /api/call/<id>/event)."""

    key: str
    timeout: float | None = None


class WaitAnswer(msgspec.Struct, frozen=True):
    """`done`: the wait at that position is over (this run goes on), with the
    event's `payload`, or `timed_out`, or `cancelled` (the wait alone); otherwise the chain was suspended until
    `wake_at` at the latest."""

    done: bool
    wake_at: str | None = None
    payload: Any = None
    timed_out: bool = False
    cancelled: bool = False


class EventSent(msgspec.Struct, frozen=True):
    """What became of an event (POST /api/events/<key>): delivered to a waiting call,
    or kept for the next one until `kept_until`."""

    key: str
    delivered_to: str | None = None
    kept_until: datetime | None = None
