"""The recorder: mirrors workers' start and finish reports into the audit table.

Workers report through a Redis stream rather than an HTTP request per call; the
recorder applies a batch of reports in one transaction, and only then hands the
finished calls to this process's waiters, lets the jobs expire and broadcasts
their completion. So anything a waiter sees is already in the table. A report is acknowledged only after it was recorded; when
the database is away, the batch is read again from this recorder's own pending
list. A report the database refuses for good cannot stop the reports behind
it: a refused finish is recorded as a failure that says so, and anything else
the recorder cannot read or apply is set aside with the reason, for an operator
(`callplane recorder dead-letters`).

The same thread sweeps for attempts whose lease has ended (controlplane.recovery),
and only when it has read every report there was: a heartbeat still unread must
not let a live worker's attempt look lost.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

import msgspec

from controlplane.errors import StoreUnavailable
from controlplane.metrics import Metrics
from controlplane.recovery import Recovery
from controlplane.store import Store, utcnow
from sdk.errors import DecodeError, RedisUnavailable, UnrecordableOutcome
from sdk.records import CallRecord, ErrorRecord, Outcome, to_json
from sdk.reports import CreatedReport, LostReport, Report, RetryReport, decode_reports
from sdk.transport import Transport
from sdk.transport.events import Entry
from sdk.waiters import Waiters
from sdk.wire import Status

log = logging.getLogger(__name__)

#: Reports applied per transaction, at most.
BATCH_SIZE = 512
#: How long one blocking read waits for reports before checking for shutdown.
BLOCK_MILLISECONDS = 1000
#: How long a batch that nobody waits on waits for more reports.
LINGER_MILLISECONDS = 10
#: Pause after Redis or the database failed, before trying again.
RETRY_SECONDS = 0.5
#: Sweeps for ended leases per lease, so an attempt is given up at most a
#: quarter of a lease after its lease ended.
SWEEPS_PER_LEASE = 4


class Recorder:
    def __init__(self, store: Store, transport: Transport, waiters: Waiters, recovery: Recovery,
                 lease_seconds: float, metrics: Metrics | None = None):
        self._store = store
        self._metrics = metrics
        self._transport = transport
        self._waiters = waiters
        self._recovery = recovery
        self._lease = timedelta(seconds=lease_seconds)
        self._sweep_seconds = lease_seconds / SWEEPS_PER_LEASE
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def run(self, stopping: threading.Event) -> None:
        own_pending = True
        block_ms = max(1, int(min(BLOCK_MILLISECONDS, self._sweep_seconds * 1000)))
        next_sweep = time.monotonic() + self._sweep_seconds
        while not stopping.is_set():
            try:
                self._transport.events.ensure_group()
                while not stopping.is_set():
                    events = self._transport.events.read(
                        self.consumer, BATCH_SIZE, block_ms, own_pending
                    )
                    if own_pending and not events:
                        own_pending = False
                        continue
                    if events:
                        self.record(self._linger(events))
                    # Sweep once caught up (no unread heartbeat can make a live
                    # worker's attempt look lost), or when a lease overdue anyway.
                    now = time.monotonic()
                    caught_up = len(events) < BATCH_SIZE
                    if now >= next_sweep and (caught_up or now >= next_sweep + self._lease.total_seconds()):
                        self._sweep()
                        next_sweep = time.monotonic() + self._sweep_seconds
            except (RedisUnavailable, StoreUnavailable) as exc:
                self._recovery.part_away(exc)
                log.warning("recorder: %s; retrying", exc)
                own_pending = True
                stopping.wait(RETRY_SECONDS)
            except Exception:  # the database is away or busy, or Redis lost the stream
                log.exception("recorder: could not record a batch; retrying")
                own_pending = True
                stopping.wait(RETRY_SECONDS)

    def _sweep(self) -> None:
        self.take_over_stale()
        self._recovery.sweep()

    def take_over_stale(self) -> int:
        """Record the reports another recorder was handed and has not acknowledged
        for a lease (its control plane died mid-batch); how many there were."""
        stale = self._transport.events.claim_stale(
            self.consumer, int(self._lease.total_seconds() * 1000), BATCH_SIZE
        )
        if stale:
            log.warning("recorder: recording %d report(s) another recorder left", len(stale))
            self.record(stale)
        return len(stale)

    def _linger(self, events: list[Entry]) -> list[Entry]:
        """Grow a batch that nobody waits on, for up to LINGER_MILLISECONDS.

        A start, or the finish of a call its caller ran in place (the caller
        already has the outcome), is not awaited: lingering lets a short call's
        start and finish, or many in-place children, share one transaction. A
        report someone waits on ends the linger at once.
        """
        deadline = time.monotonic() + LINGER_MILLISECONDS / 1000
        while len(events) < BATCH_SIZE and not any(_awaited(fields) for _, fields in events):
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = self._transport.events.read(self.consumer, BATCH_SIZE - len(events), left_ms)
            if not more:
                break
            events += more
        return events

    def record(self, events: list[Entry]) -> None:
        """Apply a batch of reports, then announce the finished calls and forget the
        batch. A report that is not one callplane wrote is logged and dropped."""
        reports: list[tuple[str, Report]] = []
        lost: list[tuple[str, LostReport]] = []
        made_here: list[CallRecord] = []
        for event_id, fields in events:
            try:
                decoded = decode_reports(fields)
            except DecodeError as exc:
                log.error("recorder: setting aside malformed report %s (%s)", event_id, exc)
                self._transport.events.set_aside({**fields, "entry": event_id}, str(exc))
                continue
            for subject, report in decoded:
                if isinstance(report, LostReport):
                    lost.append((subject, report))
                else:
                    reports.append((subject, report))
                if isinstance(report, CreatedReport) and fields.get("kind") == "create":
                    # A call a worker made in place, after the ancestors it names (its
                    # finish carries the same creation again: counted here only).
                    made_here.append(report.calls[-1])
        lease_until = utcnow() + self._lease
        try:
            finished = self._store.apply_reports(reports, lease_until)
        except StoreUnavailable:
            raise
        except Exception:  # one bad report must not stop the others
            log.exception("recorder: a batch failed; recording its reports one by one")
            finished = self._one_by_one(reports, lease_until)
        self._waiters.deliver({call.id: call for call in finished})
        if self._metrics is not None:
            self._metrics.finished(finished)
            self._metrics.retried(sum(isinstance(report, RetryReport) for _, report in reports))
            self._metrics.created(made_here)
        for call_id, report in lost:
            self._recovery.give_up(call_id, report.attempt, report.worker, report.error)
        self._transport.broadcasts.announce_recorded([call.id for call in finished],
                                                     [event_id for event_id, _ in events])

    def _one_by_one(self, reports: list[tuple[str, Report]], lease_until: datetime
                    ) -> list[CallRecord]:
        return [call for report in reports for call in self._one(report, lease_until)]

    def _one(self, report: tuple[str, Report], lease_until: datetime, fallback: bool = True
             ) -> list[CallRecord]:
        try:
            return self._store.apply_reports([report], lease_until)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception("recorder: the database refuses a report on %s", report[0])
            call_id, body = report
            if fallback and isinstance(body, Outcome):  # the call must still end, and say why
                return self._one((call_id, refused_outcome(body, exc)), lease_until, fallback=False)
            self._transport.events.set_aside(
                {"kind": type(body).__name__, "id": call_id, "body": to_json(body)},
                f"the audit table refuses it: {type(exc).__name__}: {exc}"[:2000],
            )
            return []


def refused_outcome(outcome: Outcome, exc: Exception) -> Outcome:
    """A finish the database refused for good, as a failure that says so: its call
    ends (its waiter is told) instead of staying running with nothing to record."""
    reason = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
    error = ErrorRecord.system(
        UnrecordableOutcome,
        f"the audit table refused this call's outcome ({type(exc).__name__}: {reason}); "
        "the worker's report is in the control plane's log",
    )
    return msgspec.structs.replace(outcome, status=Status.FAILED, result=None, output="",
                                   error=error)


def _awaited(fields: dict[str, str]) -> bool:
    """Whether someone may be waiting for this report to be recorded."""
    return fields.get("kind") == "finish" and fields.get("in_place") != "1"
