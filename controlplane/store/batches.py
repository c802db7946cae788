"""A batch of workers' reports, planned as the few statements that apply it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controlplane.store.rows import row_of
from controlplane.store.statements import reported_params, reported_start_params
from sdk.records import CallRecord, Outcome
from sdk.reports import CreatedReport, Heartbeat, Report, RetryReport, StartReport


@dataclass
class ReportBatch:
    """Parameters for each kind of statement, applied in the order of a call's life:
    creations, starts, retries (by attempt), renewals, finishes.

    A start whose attempt's finish is in the same batch is folded into it (the
    finish carries the start), and so is a renewal. Every finish is tried, in
    the order reported, so a stale one cannot hide the current one.
    """

    #: Rows of calls created in place, each once, every parent before its children.
    creates: list[dict[str, Any]] = field(default_factory=list)
    starts: list[dict[str, Any]] = field(default_factory=list)
    retries: list[tuple[str, RetryReport]] = field(default_factory=list)
    renewals: list[dict[str, Any]] = field(default_factory=list)
    finishes: list[dict[str, Any]] = field(default_factory=list)
    #: The calls a finish names, each once, in the order reported.
    finished_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, reports: Iterable[tuple[str, Report]], lease_until: datetime | None) -> ReportBatch:
        reports = list(reports)
        batch = cls()
        finished = {(call_id, r.attempt) for call_id, r in reports if isinstance(r, Outcome)}
        created: set[str] = set()
        for subject, report in reports:
            if isinstance(report, CreatedReport):
                batch.creates += [_created_row(call, lease_until) for call in report.calls
                                  if call.id not in created]
                created.update(call.id for call in report.calls)
            elif isinstance(report, StartReport):
                if (subject, report.attempt) not in finished:
                    batch.starts.append(reported_start_params(subject, report, lease_until))
            elif isinstance(report, RetryReport):
                batch.retries.append((subject, report))
            elif isinstance(report, Heartbeat):
                batch.renewals += [
                    {"p_id": call_id, "p_attempt": attempt, "p_worker": report.worker,
                     "p_lease": lease_until}
                    for call_id, attempt in report.calls if (call_id, attempt) not in finished
                ]
            elif isinstance(report, Outcome):
                batch.finishes.append(reported_params(subject, report))
        batch.retries.sort(key=lambda retry: retry[1].attempt)
        batch.finished_ids = list(dict.fromkeys(p["p_id"] for p in batch.finishes))
        return batch


def _created_row(call: CallRecord, lease_until: datetime | None) -> dict[str, Any]:
    """A row a worker created: its lease runs from when it is recorded, as a start's
    does (the worker renews it from then on)."""
    row = row_of(call)
    if lease_until is not None:
        row["lease_expires_at"] = lease_until
    return row
