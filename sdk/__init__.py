"""What user code imports: `from sdk import WorkflowRunner` (or, as the seed has it,
`from sdk.decorators import WorkflowRunner`)."""

from sdk.decorators import Stage, WorkflowRunner
from sdk.errors import (
    CallCancelled,
    CallplaneError,
    ControlPlaneRefused,
    ControlPlaneUnavailable,
    DeterminismError,
    EventTimeout,
    ProcessDied,
    StageFailed,
    StageTimeout,
    UnrecordableOutcome,
    WorkerLost,
)
from sdk.handles import CallHandle

__all__ = [
    "CallCancelled",
    "CallHandle",
    "CallplaneError",
    "ControlPlaneRefused",
    "ControlPlaneUnavailable",
    "DeterminismError",
    "EventTimeout",
    "ProcessDied",
    "Stage",
    "StageFailed",
    "StageTimeout",
    "UnrecordableOutcome",
    "WorkerLost",
    "WorkflowRunner",
]
