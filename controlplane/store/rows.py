"""Rows of the audit tables as typed records, and records as rows."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec
import sqlalchemy as sa

from controlplane.trees import preview
from sdk.records import AttemptRecord, CallRecord, ErrorRecord, plain

#: The timestamp columns (SQLite hands them back without their zone: UTC).
TIMES = ("created_at", "started_at", "finished_at", "lease_expires_at", "not_before")


class ExpiredLease(msgspec.Struct, frozen=True):
    """What the recovery needs of a running attempt whose lease ended."""

    id: str
    attempt: int
    worker: str | None
    queue: str
    lease_expires_at: datetime


def as_utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp callplane writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def in_utc(value: datetime) -> datetime:
    """A time to compare with the table's, which are UTC: SQLite drops a bound
    time's offset, so one given in another zone must be converted first."""
    return as_utc(value).astimezone(timezone.utc)


def _mapping(row: sa.Row) -> dict[str, Any]:
    # Column names may be str subclasses (quoted_name): msgspec takes plain str keys.
    mapping = {str(name): value for name, value in zip(row._fields, row)}
    for key in TIMES:
        if key in mapping:
            mapping[key] = as_utc(mapping[key])
    return mapping


def call_of(row: sa.Row) -> CallRecord:
    return msgspec.convert(_mapping(row), CallRecord)


def attempt_of(row: sa.Row) -> AttemptRecord:
    return msgspec.convert(_mapping(row), AttemptRecord)


def lease_of(row: sa.Row) -> ExpiredLease:
    return msgspec.convert(_mapping(row), ExpiredLease)


def row_of(record: CallRecord) -> dict[str, Any]:
    """A new call's row for an INSERT: JSON as plain values, enums as their values,
    and the preview of its arguments that its tree shows. A new call has no result
    or error yet: those columns are left out, so they are SQL NULL (a bound None
    would be stored as JSON null)."""
    row = msgspec.structs.asdict(record)
    del row["result"], row["error"]
    row["arguments"] = plain(record.arguments)
    row["arguments_preview"] = preview(record.arguments)
    row["status"] = record.status.value
    row["run_mode"] = record.run_mode.value if record.run_mode else None
    return row


def error_value(error: ErrorRecord | None) -> dict[str, str] | None:
    """An error as its JSON column holds it."""
    return plain(error) if error is not None else None
