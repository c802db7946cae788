"""Putting recorded calls on their queues: the table first, then Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from controlplane.store import utcnow
from sdk.errors import RedisUnavailable
from sdk.records import CallRecord
from sdk.transport import Transport
from sdk.wire import Status

if TYPE_CHECKING:
    from controlplane.limits import Limits

log = logging.getLogger(__name__)


class Dispatch:
    def __init__(self, transport: Transport, limits: Limits | None = None):
        """`limits`: lets calls of limited stages in at their gates (without, they
        wait there for the clock's look at their gates)."""
        self._transport = transport
        self._limits = limits

    def enqueue(self, calls: Iterable[CallRecord]) -> None:
        """Queue those of `calls` that are pending (a call its caller runs in place
        never is). With Redis away they are accepted all the same: the table has
        them, and recovery queues them once Redis answers again."""
        pending = [call for call in calls if call.status is Status.PENDING]
        try:
            self.queue(pending)
        except RedisUnavailable as exc:
            log.warning("%d call(s) recorded but not queued yet: %s", len(pending), exc)

    def queue(self, pending: list[CallRecord]) -> None:
        """Put pending calls where they wait: on their queues, or among the delayed
        calls until their time (see Clock). Raises RedisUnavailable."""
        if not pending:
            return
        now = utcnow()
        due = {call.id: call.not_before for call in pending
               if call.not_before is not None and call.not_before > now}
        priorities = {call.id: call.priority for call in pending if call.priority}
        self._transport.queues.enqueue([call.message() for call in pending], now, due, priorities)
        # Their gates: they hold calls now, and the slots of calls that wait again came free.
        self.admit({call.gate for call in pending if call.gate})

    def admit(self, gates: set[str]) -> None:
        """Look at these gates (calls may have come, or slots come free)."""
        if gates and self._limits is not None:
            self._limits.admit(gates)
