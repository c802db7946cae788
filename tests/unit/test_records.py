"""sdk.records and sdk.reports: the typed records, and what is refused on decoding."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from sdk.errors import DecodeError, StageTimeout, WorkerLost
from sdk.records import (
    ENTRY_POINT,
    Arguments,
    CallMessage,
    CallRecord,
    ErrorRecord,
    Outcome,
    from_json,
    to_json,
)
from sdk.reports import (
    CREATED_FIELD,
    CreatedReport,
    Heartbeat,
    StartReport,
    decode_report,
    decode_reports,
)
from sdk.wire import RunMode, Status

pytestmark = pytest.mark.unit


def test_call_message_round_trips():
    message = CallMessage(id="a", stage="s", args=[1], kwargs={"k": None}, attempt=2)
    assert CallMessage.decode(message.encode()) == message
    func, instance, args, kwargs = json.loads(message.encode())  # RQ's JSON serializer layout
    assert (func, instance, kwargs, args[0]["id"]) == (ENTRY_POINT, None, {}, "a")


@pytest.mark.parametrize("data, complaint", [
    ("not json", "not callplane's JSON"),
    (json.dumps(["os.system", None, ["rm -rf /"], {}]), "refusing to run it"),
    (json.dumps([ENTRY_POINT, None, [], {}]), "one call message"),
    (json.dumps([ENTRY_POINT, None, [{"id": "a", "stage": "s", "evil": 1}], {}]), "unknown field"),
    (json.dumps([ENTRY_POINT, None, [{"id": "a"}], {}]), "missing required field `stage`"),
    (json.dumps([ENTRY_POINT, None, [{"id": "a", "stage": "s", "args": {}}], {}]), r"\$\.args"),
    (json.dumps([ENTRY_POINT, None, [{"id": 1, "stage": "s"}], {}]), r"\$\.id"),
])
def test_bad_jobs_are_refused_with_a_reason(data, complaint):
    with pytest.raises(DecodeError, match=complaint):
        CallMessage.decode(data)


def test_an_error_record_names_callplanes_errors_by_their_recorded_name():
    try:
        raise KeyError("k")
    except KeyError as exc:
        error = ErrorRecord.of(exc)
    assert (error.type, error.message) == ("KeyError", "'k'") and "raise KeyError" in error.traceback
    timeout = StageTimeout("s", "c", ErrorRecord.system(StageTimeout, "too slow"))
    assert ErrorRecord.of(timeout).type == "callplane.StageTimeout"
    assert ErrorRecord.system(WorkerLost, "gone") == ErrorRecord("callplane.WorkerLost", "gone", "")


def test_a_call_record_gives_its_job_and_its_outcome():
    at = datetime.now(timezone.utc)
    record = CallRecord("c", "s", Status.FAILED, arguments=Arguments([1], {"k": 2}),
                        root_stage_run_id="r", parent_stage_run_id="p", attempt=3,
                        error=ErrorRecord("E", "m"), run_mode=RunMode.INLINE, finished_at=at)
    assert record.message() == CallMessage("c", "s", [1], {"k": 2}, "p", "r", attempt=3)
    outcome = record.outcome()
    assert (outcome.status, outcome.error.type, outcome.finished_at) == (Status.FAILED, "E", at)
    assert from_json(to_json(outcome), Outcome, "an outcome") == outcome


def test_reports_decode_into_their_records_and_malformed_ones_are_refused():
    start = StartReport.now("w", RunMode.INLINE)
    subject, decoded = decode_report({"kind": "start", "id": "c", "body": start.body, "attempt": "2"})
    assert (subject, decoded.worker, decoded.run_mode, decoded.attempt) == ("c", "w", RunMode.INLINE, 2)
    beat = decode_report({"kind": "heartbeat", "id": "w", "body": to_json(Heartbeat("w", [("c", 1)]))})
    assert beat == ("w", Heartbeat("w", [("c", 1)]))
    for fields in ({"kind": "nonsense", "id": "c", "body": "{}"}, {"kind": "finish", "id": "c"},
                   {"kind": "finish", "id": "c", "body": "{"},
                   {"kind": "finish", "id": "c", "body": '{"id": "c", "stage": "s", "status": "no"}'},
                   {"kind": "start", "id": "c", "body": start.body, "attempt": "x"}):
        with pytest.raises(DecodeError):
            decode_report(fields)


def test_a_finish_that_carries_its_creation_is_two_reports_the_creation_first():
    at = datetime.now(timezone.utc)
    record = CallRecord("c", "s", Status.RUNNING, root_stage_run_id="r", parent_stage_run_id="p",
                        run_mode=RunMode.INLINE, created_at=at, started_at=at)
    outcome = Outcome("c", "s", Status.SUCCEEDED, result=1, worker="w", finished_at=at)
    fields = {"kind": "finish", "id": "c", "body": to_json(outcome), "in_place": "1",
              CREATED_FIELD: to_json(CreatedReport([record]))}
    assert decode_reports(fields) == [("c", CreatedReport([record])), ("c", outcome)]
    del fields[CREATED_FIELD]
    assert decode_reports(fields) == [("c", outcome)]
    with pytest.raises(DecodeError):
        decode_reports({**fields, CREATED_FIELD: '{"calls": [{"id": 1}]}'})


class Measure(float):
    """A float subclass, as numpy's float64 is: json.dumps takes it, msgspec alone does not."""


def test_values_json_takes_travel_as_their_base_type_and_times_keep_their_offset():
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    outcome = Outcome("c", "s", Status.SUCCEEDED, result={"m": Measure(1.5), "l": (1, 2)},
                      finished_at=at)
    text = to_json(outcome)
    assert '"result":{"m":1.5,"l":[1,2]}' in text and '"finished_at":"2026-01-02T03:04:05+00:00"' in text
    message = CallMessage("c", "s", args=[Measure(2.5)])
    assert CallMessage.decode(message.encode()).args == [2.5]


def test_an_error_record_missing_parts_reads_as_before():
    assert from_json('{"message": "m"}', ErrorRecord, "an error") == ErrorRecord("Exception", "m")
