"""The event stream: workers' reports (sdk.reports) and the recorders' group that
reads them. A report is acknowledged only once the audit table recorded it
(Broadcasts.announce_recorded); one a recorder was handed and never
acknowledged (its control plane died mid-batch) is claimed by another."""

from __future__ import annotations

import redis

from sdk.records import to_json
from sdk.reports import CREATED_FIELD, CreatedReport, Heartbeat, LostReport, RetryReport
from sdk.transport.connection import translating
from sdk.transport.keys import (
    DEAD_LETTERS_KEPT,
    DEAD_LETTERS_STREAM,
    EVENTS_STREAM,
    RECORDERS_GROUP,
    job_key,
)
from sdk.transport.scripts import Scripts

#: An entry of the stream: (its id, its fields: kind, id, body, ...).
Entry = tuple[str, dict[str, str]]


@translating
class Events:
    def __init__(self, client: redis.Redis, scripts: Scripts):
        self._redis = client
        self._scripts = scripts

    # -- what workers report ---------------------------------------------------------

    def report_finish(self, call_id: str, outcome_json: str, awaited: bool = False,
                      created: CreatedReport | None = None) -> None:
        """Report an outcome straight to the recorder: for a call that was never
        queued (its caller ran it in place, and has the outcome), or whose job
        Redis lost (`awaited`: someone may be waiting for it). A call its worker
        created in place carries its creation along (`created`)."""
        extra = {CREATED_FIELD: to_json(created)} if created is not None else {}
        self._add(call_id, "finish", outcome_json, in_place="0" if awaited else "1", **extra)

    def report_created(self, created: CreatedReport) -> None:
        """Record calls a worker created running in place (see sdk.reports)."""
        self._add(created.calls[-1].id, "create", to_json(created))

    def report_retry(self, call_id: str, report: RetryReport) -> bool:
        """Move a call this worker runs to its next attempt (see retry.lua); False if
        the attempt is no longer this worker's."""
        return bool(self._scripts.retry(
            keys=[job_key(call_id), EVENTS_STREAM],
            args=[report.worker, report.attempt, call_id, to_json(report)],
        ))

    def report_lost(self, call_id: str, report: LostReport) -> None:
        """Tell the recorder that an attempt will never report (its process died)."""
        self._add(call_id, "lost", to_json(report))

    def heartbeat(self, report: Heartbeat) -> None:
        """Renew the leases of the attempts a worker runs."""
        self._add(report.worker, "heartbeat", to_json(report))

    def _add(self, subject: str, kind: str, body: str, **extra: str) -> None:
        self._redis.xadd(EVENTS_STREAM, {"kind": kind, "id": subject, "body": body, **extra})

    # -- the recorders' group ---------------------------------------------------------

    def ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(EVENTS_STREAM, RECORDERS_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int, block_ms: int, own_pending: bool = False) -> list[Entry]:
        """Workers' reports, new ones by default; with `own_pending`, those this
        consumer was handed before but never acknowledged (it failed to record them)."""
        try:
            reply = self._redis.xreadgroup(
                RECORDERS_GROUP,
                consumer,
                {EVENTS_STREAM: "0" if own_pending else ">"},
                count=count,
                block=None if own_pending else block_ms,
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # Redis restarted empty: start the stream anew
            return []
        return [event for _stream, events in reply for event in events] if reply else []

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Reports handed to a recorder that has not acknowledged them for
        `min_idle_ms` (its control plane died mid-batch), now this consumer's."""
        try:
            reply = self._redis.xautoclaim(
                EVENTS_STREAM, RECORDERS_GROUP, consumer, min_idle_ms, "0-0", count=count
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return []
        return [event for event in reply[1] if event[1]]  # a deleted entry comes back empty

    # -- what the recorders could not apply ------------------------------------------

    def set_aside(self, fields: dict[str, str], reason: str) -> None:
        """Keep a report no recorder can apply where an operator can read it, with
        why (the newest DEAD_LETTERS_KEPT are kept). Its entry is acknowledged
        with its batch, so it never blocks the reports behind it."""
        self._redis.xadd(DEAD_LETTERS_STREAM, {**fields, "reason": reason},
                         maxlen=DEAD_LETTERS_KEPT, approximate=True)

    def set_aside_count(self) -> int:
        return int(self._redis.xlen(DEAD_LETTERS_STREAM))

    def dead_letters(self, count: int) -> tuple[int, list[Entry]]:
        """How many reports were set aside, and the newest `count` of them."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(DEAD_LETTERS_STREAM)
            pipe.xrevrange(DEAD_LETTERS_STREAM, count=count)
            total, newest = pipe.execute()
        return total, newest

    # -- how far the recorders are ----------------------------------------------------

    def newest(self) -> str | None:
        """The id of the newest report not yet recorded (recorded ones are deleted)."""
        entries = self._redis.xrevrange(EVENTS_STREAM, count=1)
        return entries[0][0] if entries else None

    def recorded_through(self, entry_id: str) -> bool:
        """Whether every report up to `entry_id` was recorded: handed to a recorder
        and acknowledged."""
        groups = {group["name"]: group for group in self._redis.xinfo_groups(EVENTS_STREAM)}
        group = groups.get(RECORDERS_GROUP)
        if group is None or _order(group["last-delivered-id"]) < _order(entry_id):
            return False
        pending = self._redis.xpending(EVENTS_STREAM, RECORDERS_GROUP)
        return not pending["pending"] or _order(pending["min"]) > _order(entry_id)


def _order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
