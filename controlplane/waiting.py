"""Waiting for calls to finish, for a client's long poll (`?wait=`, /calls/finished).

The completion broadcast this process hears is sent only once the table has
recorded the completion, so a woken call needs no read; the table is read first
and after each re-check interval (a broadcast may be lost), and at the end the
finished rows this process's recorder did not hand over with the wake-up.
"""

from __future__ import annotations

import logging
import time

import msgspec

from controlplane.creation import CallCreation, call_id_of
from controlplane.errors import CallNotFound
from controlplane.metrics import Metrics
from controlplane.reading import CallReading
from controlplane.store import Store
from sdk.records import CallRecord, CallRequest
from sdk.waiters import Waiters, Watch

log = logging.getLogger(__name__)

#: How long after finding a call finished in the table its broadcast may still
#: be on its way (it is sent right after the commit) before it counts as lost.
BROADCAST_GRACE_SECONDS = 0.5


class CallWaiting:
    def __init__(self, store: Store, reading: CallReading, creation: CallCreation,
                 waiters: Waiters, max_wait_seconds: float, metrics: Metrics | None = None):
        self._store = store
        self._reading = reading
        self._creation = creation
        self._waiters = waiters
        self._max_wait = max_wait_seconds
        #: Counts finished calls whose completion broadcast never reached a waiter
        #: here (each found by reading the table instead).
        self._metrics = metrics

    def wait(self, call_id: str, seconds: float | None) -> CallRecord:
        """The call, once it is finished or after `seconds` (capped by max_wait)."""
        if seconds:
            finished = self.finished([call_id], seconds, every=True)
            if finished:
                return finished[0]
        return self._reading.get(call_id)

    def create(self, request: CallRequest, seconds: float | None) -> tuple[CallRecord, bool]:
        """Create the call; with `seconds`, also wait up to that long for it to finish."""
        if seconds:
            return self.create_and_wait(request, seconds)
        return self._creation.create(request)

    def create_and_wait(self, request: CallRequest, seconds: float) -> tuple[CallRecord, bool]:
        """Create the call, then wait up to `seconds` for it to finish.

        The wait is registered before the call is queued, so its completion
        cannot be missed, and a call created just now needs no first read.
        """
        request = msgspec.structs.replace(request, id=call_id_of(request), idempotency_key=None)
        with self._waiters.watching([request.id]) as watch:
            record, created = self._creation.create(request)
            if record.finished:
                return record, created
            finished = self._await([record.id], watch, self._deadline(seconds), True,
                                   check_first=not created)
        return (finished[0] if finished else self._reading.get(record.id)), created

    def finished(self, call_ids: list[str], seconds: float, every: bool) -> list[CallRecord]:
        """Those of `call_ids` that have finished, once at least one has (with
        `every`: all have), or after `seconds` (capped by max_wait)."""
        with self._waiters.watching(call_ids) as watch:
            return self._await(call_ids, watch, self._deadline(seconds), every)

    def _await(
        self, call_ids: list[str], watch: Watch, deadline: float, every: bool, check_first=True
    ) -> list[CallRecord]:
        """Wait on `watch` until one (or `every`) of `call_ids` finished or the deadline.

        At the deadline the table is read once more, so nothing finished is left
        out of the answer (see _found_at_deadline).
        """
        pending = set(call_ids)
        done: set[str] = set()
        to_check = set(pending) if check_first else set()
        while True:
            if to_check:
                statuses = self._store.statuses(to_check)
                unknown = to_check - statuses.keys()
                if unknown:
                    raise CallNotFound(f"no call with id(s) {sorted(unknown)[:5]}")
                done |= {i for i, status in statuses.items() if status.is_terminal}
                pending -= done
            if not pending or (done and not every):
                break
            woken = watch.next(deadline)
            if woken == set():
                done |= self._found_at_deadline(pending, watch)
                break
            if woken is None:
                to_check = set(pending)
            else:
                done |= woken & pending
                pending -= woken
                to_check = set()
        calls: dict[str, CallRecord] = {
            i: call for i, call in watch.delivered.items() if i in done and isinstance(call, CallRecord)
        }
        unread = done - calls.keys()
        if unread:
            calls.update(self._store.get_many(unread))
        return [calls[call_id] for call_id in call_ids if call_id in calls]

    def _found_at_deadline(self, pending: set[str], watch: Watch) -> set[str]:
        """Those of `pending` that the table says have finished, at a wait's deadline.
        One whose broadcast does not come within BROADCAST_GRACE_SECONDS was a lost
        wake-up, and is logged as one."""
        finished = {i for i, status in self._store.statuses(pending).items() if status.is_terminal}
        unheard = set(finished)
        grace_ends = time.monotonic() + BROADCAST_GRACE_SECONDS
        while unheard:
            woken = watch.next(grace_ends)
            if woken == set():
                break
            unheard -= woken or set()
        if unheard:
            if self._metrics is not None:
                self._metrics.missed_wakeups(len(unheard))
            log.warning("missed wake-up: %d finished call(s) were never announced to this "
                        "waiter (e.g. %s); found by reading the table", len(unheard), min(unheard))
        return finished

    def _deadline(self, seconds: float) -> float:
        return time.monotonic() + min(seconds, self._max_wait)
