"""Recovering attempts that will never report: their worker died or hangs (its
lease ended), or the process running them died (the worker says so).

The table decides first (a conditional UPDATE fenced by attempt, so of several
control planes only one gives an attempt up), then Redis follows: the call goes
back on its queue as its next attempt, or, once its attempts are used up, its
job is settled as failed and its waiters are told.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from controlplane.store import Store, utcnow
from sdk.errors import RedisUnavailable
from sdk.transport import Transport
from sdk.wire import CallMessage, Status, dumps

log = logging.getLogger(__name__)

#: Expired leases given up per sweep, at most.
SWEEP_LIMIT = 500


class Recovery:
    def __init__(self, store: Store, transport: Transport, lost_attempts: int):
        self._store = store
        self._transport = transport
        self._lost_attempts = lost_attempts

    def sweep(self) -> int:
        """Give up every attempt whose lease has ended; how many were given up."""
        now = utcnow()
        given_up = 0
        for call in self._store.expired_leases(now, SWEEP_LIMIT):
            if not self._transport.abandon(call["queue"], call["id"], call["worker"], call["attempt"]):
                continue  # it finished after all: its report is on its way to the recorder
            error = {
                "type": "callplane.WorkerLost",
                "message": f"worker {call['worker']} stopped renewing the lease of attempt "
                           f"{call['attempt']} (it ended at {call['lease_expires_at']:%H:%M:%S})",
                "traceback": "",
            }
            given_up += self.give_up(call["id"], call["attempt"], call["worker"], error, now) is not None
        return given_up

    def give_up(
        self,
        call_id: str,
        attempt: int,
        worker: str | None,
        error: dict[str, Any],
        expired_before: datetime | None = None,
    ) -> dict[str, Any] | None:
        """End a running attempt for good, then queue the next or settle the failure."""
        record = self._store.end_attempt(
            call_id, attempt, worker, error, self._lost_attempts, expired_before=expired_before
        )
        if record is None:
            return None
        try:
            if record["status"] == Status.PENDING.value:
                log.warning("call %s: attempt %d lost (%s); queued as attempt %d",
                            call_id, attempt, error["message"], record["attempt"])
                self._transport.enqueue([CallMessage.of_record(record)], utcnow())
            else:
                log.warning("call %s: attempt %d lost (%s); no attempts left, failed",
                            call_id, attempt, error["message"])
                outcome = {"id": call_id, "status": record["status"], "error": record["error"],
                           "attempt": attempt, "result": None, "output": ""}
                self._transport.settle(record["queue"], call_id, dumps(outcome), False,
                                       record["finished_at"])
        except RedisUnavailable as exc:
            # The table has it; the pending-call check puts it back on its queue.
            log.warning("call %s: given up, but Redis is away: %s", call_id, exc)
        return record
