"""controlplane.store.batches: a batch of reports planned as a few statements."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from controlplane.store.batches import ReportBatch
from sdk.records import ErrorRecord, Outcome
from sdk.reports import Heartbeat, RetryReport, StartReport
from sdk.wire import Status

pytestmark = pytest.mark.unit
NOW = datetime.now(timezone.utc)


def test_a_start_and_a_renewal_of_a_finished_attempt_fold_into_its_finish():
    batch = ReportBatch.of([
        ("a", StartReport("w", NOW)),
        ("b", StartReport("w", NOW, attempt=2)),
        ("w", Heartbeat("w", [("a", 1), ("b", 2)])),
        ("a", Outcome("a", "s", Status.SUCCEEDED, worker="w", finished_at=NOW)),
    ], NOW)
    assert [p["p_id"] for p in batch.starts] == ["b"]
    assert [(p["p_id"], p["p_attempt"]) for p in batch.renewals] == [("b", 2)]
    assert batch.finished_ids == ["a"] and batch.finishes[0]["p_status"] == "succeeded"


def test_retries_apply_in_attempt_order_and_every_finish_is_tried_once_named():
    error = ErrorRecord("E", "m")
    retry = [RetryReport("w", attempt, error, NOW, NOW, NOW) for attempt in (2, 1)]
    stale = Outcome("c", "s", Status.FAILED, error=error, worker="w1", finished_at=NOW)
    current = Outcome("c", "s", Status.SUCCEEDED, worker="w2", attempt=2, finished_at=NOW)
    batch = ReportBatch.of([("c", retry[0]), ("c", retry[1]), ("c", stale), ("c", current)], NOW)
    assert [r.attempt for _, r in batch.retries] == [1, 2]
    assert len(batch.finishes) == 2 and batch.finished_ids == ["c"]


def test_an_outcome_that_no_running_call_can_have_is_refused():
    with pytest.raises(ValueError, match="not an outcome of a running call"):
        ReportBatch.of([("c", Outcome("c", "s", Status.PENDING))], NOW)
