"""Putting recorded calls on their queues: the table first, then Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from controlplane.store import utcnow
from sdk.errors import RedisUnavailable
from sdk.records import CallRecord
from sdk.transport import Transport
from sdk.wire import Status

log = logging.getLogger(__name__)


class Dispatch:
    def __init__(self, transport: Transport):
        self._transport = transport

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
        self._transport.queues.enqueue([call.message() for call in pending], now, due)
