"""callplane's exceptions: one root, a shallow tree, one recorded name per class.

Transport errors are translated at the boundary, so no `redis.*` or
`http.client` exception reaches user code. A call's failure comes back as data
(an ErrorRecord: type, message, traceback) and is raised at the call site as
StageFailed, or as the class that callplane itself recorded it under
(StageTimeout, WorkerLost, ProcessDied, UnrecordableOutcome), which are
StageFailed too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdk.records import ErrorRecord

#: The prefix of the names under which callplane records its own errors.
RECORDED_PREFIX = "callplane."


class CallplaneError(Exception):
    """Root of every error callplane raises."""

    @classmethod
    def recorded_name(cls) -> str:
        """The one name an audit record gives this error, wherever it was raised."""
        return RECORDED_PREFIX + cls.__name__


class DecodeError(CallplaneError):
    """Raised when a job or report read from Redis is not in callplane's wire format."""


class ControlPlaneUnavailable(CallplaneError):
    """Raised when the control plane cannot be reached or answers with a 5xx."""


class ControlPlaneRefused(CallplaneError):
    """Raised when the control plane answers a request with a 4xx; carries its message."""

    def __init__(self, status: int, message: str, errors: dict[str, Any] | None = None):
        self.status = status
        self.message = message
        self.errors = errors or {}
        detail = f" {self.errors}" if self.errors else ""
        super().__init__(f"control plane refused the request ({status}): {message}{detail}")


class RedisUnavailable(CallplaneError):
    """Raised when Redis cannot be reached."""


class DeterminismError(CallplaneError):
    """Raised in a stage that, run again from the top (after a sleep, or as a later
    attempt), makes other calls than before at some position."""


class EventTimeout(CallplaneError, TimeoutError):
    """Raised in a stage whose `runner.wait_for_event(key, timeout=...)` saw no event
    sent to `key` within the timeout."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


class WorkflowFileError(CallplaneError):
    """Raised when a workflow file cannot be loaded or registers no stage."""


class CallCancelled(CallplaneError):
    """Raised at the call site when the call was cancelled, and inside a cancelled
    stage running on a worker's main thread."""


class StageFailed(CallplaneError):
    """Raised at the call site when the call failed on its worker.

    Carries the remote exception's type name, message and traceback; the local
    traceback of this exception still points at the line that made the call.
    """

    def __init__(self, stage: str, call_id: str, error: ErrorRecord, worker: str | None = None):
        self.stage = stage
        self.call_id = call_id
        self.error = error
        #: The worker that ran the call, when known.
        self.worker = worker
        self.remote_type = error.type
        self.remote_message = error.message
        self.remote_traceback = error.traceback
        # Not super(): as one of a user's own exception classes (see own_class),
        # the next __init__ in line may take other arguments.
        Exception.__init__(
            self, f"stage {stage!r} (call {call_id}) raised {self.remote_type}: {self.remote_message}"
        )

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text


class StageTimeout(StageFailed):
    """Raised when a call ran past its stage's timeout and was stopped; retried like
    any error when the stage retries (`retry_on` may name it)."""


class WorkerLost(StageFailed):
    """Raised when the worker running a call stopped renewing its lease (killed,
    hung, cut off) on its last allowed attempt."""


class ProcessDied(StageFailed):
    """Raised when the process running a call's last allowed attempt died (an
    isolated call's forked process, killed or crashed)."""


class UnrecordableOutcome(StageFailed):
    """Raised when the audit table refused to store a call's outcome (the reason is
    in the message); the call is recorded as failed instead of staying running."""


class UnrecordableResult(CallplaneError, ValueError):
    """Raised in a worker when a stage returns a value callplane cannot keep (nested
    past the limit); recorded as UnrecordableOutcome, which its caller raises."""

    @classmethod
    def recorded_name(cls) -> str:
        return UnrecordableOutcome.recorded_name()


#: The failures callplane records under its own names, by that name: a client
#: that reads one raises its class.
SYSTEM_FAILURES: dict[str, type[StageFailed]] = {
    cls.recorded_name(): cls for cls in (StageTimeout, WorkerLost, ProcessDied, UnrecordableOutcome)
}


def failure(
    stage: str,
    call_id: str,
    error: ErrorRecord,
    worker: str | None = None,
    own: Mapping[str, type[StageFailed]] | None = None,
) -> StageFailed:
    """The exception a call's recorded error raises at the call site: callplane's
    own class for its own failures; for an exception class the caller allowed
    (`own`, by class name: see own_class), that class, which is a StageFailed
    too; else StageFailed. The name is matched without its module, which differs
    between a worker (it loads the workflow file under a name of its own) and
    the caller."""
    kind = SYSTEM_FAILURES.get(error.type) or next(
        (cls for name, cls in (own or {}).items()
         if error.type == name or error.type.endswith("." + name)),
        StageFailed,
    )
    return kind(stage, call_id, error, worker)


def own_class(kind: type[BaseException]) -> type[StageFailed]:
    """A StageFailed that is also `kind`: `except kind` and `except StageFailed`
    both catch it. StageFailed where the two cannot be combined."""
    try:
        return type(kind.__name__, (StageFailed, kind), {"__module__": kind.__module__})
    except TypeError:  # e.g. a class whose instances' layout excludes StageFailed's
        return StageFailed
