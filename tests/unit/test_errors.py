"""sdk.errors: one vocabulary, one recorded name per class."""

from __future__ import annotations

import pytest

import sdk
from controlplane.errors import CallConflict, CallNotFound, DispatchUnavailable
from sdk.errors import (
    SYSTEM_FAILURES,
    CallCancelled,
    CallplaneError,
    ProcessDied,
    StageFailed,
    StageTimeout,
    UnrecordableOutcome,
    WorkerLost,
    failure,
)
from sdk.records import ErrorRecord

pytestmark = pytest.mark.unit


def test_every_error_callplane_records_has_a_class_under_the_root():
    for kind in (WorkerLost, ProcessDied, StageTimeout, UnrecordableOutcome, CallCancelled,
                 CallNotFound, CallConflict, DispatchUnavailable):
        assert issubclass(kind, CallplaneError)
        assert kind.recorded_name() == f"callplane.{kind.__name__}"
    assert set(SYSTEM_FAILURES) == {
        "callplane.WorkerLost", "callplane.ProcessDied", "callplane.StageTimeout",
        "callplane.UnrecordableOutcome",
    }


@pytest.mark.parametrize("kind", [WorkerLost, ProcessDied, StageTimeout, UnrecordableOutcome])
def test_a_recorded_system_error_raises_its_own_class_which_is_still_a_stage_failure(kind):
    raised = failure("s", "c1", ErrorRecord.system(kind, "why"))
    assert type(raised) is kind and isinstance(raised, StageFailed)
    assert (raised.remote_type, raised.remote_message, raised.call_id) == (
        kind.recorded_name(), "why", "c1")


def test_any_other_error_is_a_stage_failure_with_the_remote_traceback():
    raised = failure("s", "c1", ErrorRecord("ValueError", "bad", "Traceback ...\nValueError: bad"))
    assert type(raised) is StageFailed
    assert "raised ValueError: bad" in str(raised) and "Remote traceback" in str(raised)


def test_the_package_exports_what_users_catch():
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None
    assert sdk.WorkflowRunner is __import__("sdk.decorators").decorators.WorkflowRunner
    assert {"StageFailed", "CallCancelled", "WorkerLost", "CallHandle"} <= set(sdk.__all__)
