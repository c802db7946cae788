"""callplane's exceptions. Transport errors are translated at the boundary, so no
`redis.*` or `http.client` exception reaches user code; remote failures come back
as data (type, message, traceback) inside StageFailed."""

from __future__ import annotations

import traceback


class CallplaneError(Exception):
    """Root of every error callplane raises."""


class DecodeError(CallplaneError):
    """Raised when a job or event read from Redis is not in callplane's wire format."""


class ControlPlaneUnavailable(CallplaneError):
    """Raised when the control plane cannot be reached or answers with a 5xx."""


class ControlPlaneRefused(CallplaneError):
    """Raised when the control plane answers a request with a 4xx; carries its message."""

    def __init__(self, status: int, message: str, errors: dict | None = None):
        self.status = status
        self.message = message
        self.errors = errors or {}
        detail = f" {self.errors}" if self.errors else ""
        super().__init__(f"control plane refused the request ({status}): {message}{detail}")


class RedisUnavailable(CallplaneError):
    """Raised when Redis cannot be reached."""


class WorkflowFileError(CallplaneError):
    """Raised when a workflow file cannot be loaded or registers no stage."""


class StageFailed(CallplaneError):
    """Raised at the call site when the stage raised on its worker.

    Carries the remote exception's type name, message and traceback; the local
    traceback of this exception still points at the line that made the call.
    """

    def __init__(self, stage: str, call_id: str, error: dict):
        self.stage = stage
        self.call_id = call_id
        self.remote_type = error.get("type", "Exception")
        self.remote_message = error.get("message", "")
        self.remote_traceback = error.get("traceback", "")
        super().__init__(
            f"stage {stage!r} (call {call_id}) raised {self.remote_type}: {self.remote_message}"
        )

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text


class StageTimeout(CallplaneError):
    """A call ran past its stage's timeout and was stopped (recorded as
    callplane.StageTimeout); retried like any error when the stage retries."""


class CallCancelled(CallplaneError):
    """Raised at the call site when the call was cancelled."""


def describe(exc: BaseException) -> dict[str, str]:
    """An exception as the audit record keeps it: type, message, traceback."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return {
        "type": name,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
