"""What workers report to the recorder through the event stream, as typed records.

An entry of the stream is `{kind, id, body}`: `id` names the call (the worker,
for a heartbeat) and `body` is the record as JSON. A finish's body is the
attempt's Outcome. The claim script adds the attempt it started to a start's
entry (only the job knows it), and a finish reported outside a job says whether
its caller already has the outcome (`in_place`).

A child its parent runs in place may be created by its worker through the stream
too (`create`, see workers.children): its creation then also rides with its
finish (`created`), and each names the in-place ancestors it was made under, so
whichever of a call's reports is recorded first, its row and its parents' rows
can be written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

import msgspec

from sdk.errors import DecodeError
from sdk.records import CallRecord, ErrorRecord, Outcome, from_json, to_json
from sdk.wire import RunMode


class StartReport(msgspec.Struct, frozen=True, omit_defaults=True):
    """Who starts a call's attempt, when and how."""

    worker: str
    started_at: datetime
    run_mode: RunMode | None = None
    #: Not in the body: the claim adds the attempt from the job.
    attempt: int = 1

    @classmethod
    def now(cls, worker: str, run_mode: RunMode | None = None) -> StartReport:
        return cls(worker, datetime.now(timezone.utc), run_mode)

    @property
    def body(self) -> str:
        return to_json(msgspec.structs.replace(self, attempt=1))


class RetryReport(msgspec.Struct, frozen=True):
    """An attempt raised and its worker runs the next one after a pause."""

    worker: str
    attempt: int
    error: ErrorRecord
    started_at: datetime
    finished_at: datetime
    next_started_at: datetime


class LostReport(msgspec.Struct, frozen=True):
    """An attempt will never report: the process running it died."""

    worker: str
    attempt: int
    error: ErrorRecord


class Heartbeat(msgspec.Struct, frozen=True):
    """A worker renews the leases of the attempts it runs: [call id, attempt] pairs."""

    worker: str
    calls: list[tuple[str, int]]


class CreatedReport(msgspec.Struct, frozen=True):
    """Calls a worker created running in place: the call, after the in-place
    ancestors it was made under (outermost first), each as its row."""

    calls: list[CallRecord]


Report = StartReport | Outcome | RetryReport | LostReport | Heartbeat | CreatedReport
#: The kind each entry names, and its body's record.
KINDS: dict[str, type] = {
    "start": StartReport, "finish": Outcome, "retry": RetryReport, "lost": LostReport,
    "heartbeat": Heartbeat, "create": CreatedReport,
}
#: The field of a finish entry that carries its call's creation (a CreatedReport).
CREATED_FIELD = "created"


def decode_reports(fields: Mapping[str, str]) -> list[tuple[str, Report]]:
    """An entry of the event stream as its reports: a finish that carries its
    call's creation is two, the creation first."""
    subject, report = decode_report(fields)
    created = fields.get(CREATED_FIELD)
    if created is None:
        return [(subject, report)]
    return [(subject, from_json(created, CreatedReport, "creation")), (subject, report)]


def decode_report(fields: Mapping[str, str]) -> tuple[str, Report]:
    """An entry of the event stream as (call id or worker, report); DecodeError if
    it is not one callplane wrote."""
    try:
        kind, subject, body = KINDS[fields["kind"]], fields["id"], fields["body"]
    except KeyError as exc:
        raise DecodeError(f"report lacks or misnames {exc}") from None
    report = from_json(body, kind, f"{fields['kind']} report")
    if kind is StartReport:
        try:
            attempt = int(fields.get("attempt") or 1)
        except ValueError:
            raise DecodeError(f"start report's attempt {fields['attempt']!r} is not a number") from None
        report = msgspec.structs.replace(report, attempt=attempt)
    return subject, report
