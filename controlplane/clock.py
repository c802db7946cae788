"""The clock duty: delayed calls go to their queues when they are due, schedules
fire (controlplane.schedules), gates let calls in when their rate allows
(controlplane.limits), and kept events nobody waited for are forgotten
(controlplane.events).

Every control-plane process runs a Clock; the duty's lease in Redis (see
sdk.transport.duties) lets one of them do the work at a time, and another takes
it over within a lease when that one stops. A delayed call costs nothing while
it waits: it is one entry in a sorted set by due time, which the holder reads
a few times a second from its earliest end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from controlplane.duty import holder_name, keep_doing
from controlplane.events import Events
from controlplane.limits import Limits
from controlplane.schedules import ScheduleService
from controlplane.store import utcnow
from sdk.transport import Transport

log = logging.getLogger(__name__)

DUTY = "clock"
#: How often the holder looks for due calls (so a call starts within this of its time).
TICK_SECONDS = 0.2
#: How long the duty stays with a holder that stopped renewing it.
LEASE_SECONDS = 3.0
#: How often the schedules are looked at when none is due sooner (one registered
#: meanwhile may be).
SCHEDULES_CHECK = timedelta(seconds=1)
#: How often kept events past their time are dropped.
EVENTS_CHECK = timedelta(minutes=1)
#: Due calls moved per round trip.
PAGE = 500


class Clock:
    def __init__(self, transport: Transport, schedules: ScheduleService | None = None,
                 events: Events | None = None, limits: Limits | None = None,
                 clock: Callable[[], datetime] = utcnow):
        """`clock`: what time the duty takes it to be (a test sets it)."""
        self._now = clock
        self._transport = transport
        self._limits = limits
        self._schedules = schedules
        self._events = events
        #: When kept events past their time are next dropped.
        self._events_at = clock()
        self.holder = holder_name()
        #: When the schedules are next looked at (the earliest next fire, or a second on).
        self._schedules_at = clock()

    def run(self, stopping: threading.Event) -> None:
        """Tick until `stopping` is set; Redis or the database away is waited out,
        never fatal."""
        keep_doing(self.tick, TICK_SECONDS, stopping, "clock", "delayed calls and schedules")

    def tick(self) -> int:
        """If this process holds the duty: move every call due by now to its queue,
        fire the schedules due and, now and then, drop expired kept events; how
        many calls were queued or made."""
        if not self._transport.duties.hold(DUTY, self.holder, LEASE_SECONDS):
            return 0
        now = self._now()
        made = self._promote(now) + self._fire(now)
        if self._limits is not None:  # after _promote: limited calls it moved wait at their gates
            made += self._limits.admit_due(now)
        if self._events is not None and now >= self._events_at:
            forgotten = self._events.forget_expired(now)
            if forgotten:
                log.info("clock: %d event(s) sent to keys nobody waited for in time, dropped",
                         forgotten)
            self._events_at = now + EVENTS_CHECK
        return made

    def _fire(self, now: datetime) -> int:
        if self._schedules is None or now < self._schedules_at:
            return 0
        made = self._schedules.fire_due(now)
        following = self._schedules.next_fire(now)
        soon = now + SCHEDULES_CHECK
        self._schedules_at = min(following, soon) if following is not None else soon
        return made

    def _promote(self, now: datetime) -> int:
        moved = 0
        while True:
            due = self._transport.queues.due(now, PAGE)
            moved += self._transport.queues.promote(due, now)
            if len(due) < PAGE:
                break
        if moved:
            log.info("clock: %d delayed call(s) due, queued", moved)
        return moved
