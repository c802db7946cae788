"""The service's refusals as the API's one error shape, `{code, status, message}`,
through Flask's error handlers (views and the dashboard's routes just raise) and
through the create endpoints' fast lane (controlplane.api.lane)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.exceptions import BadRequest, Conflict, HTTPException, NotFound, ServiceUnavailable

from controlplane.errors import (
    BadLimitKey,
    CallConflict,
    CallNotFound,
    DispatchUnavailable,
    ScheduleNotFound,
    StoreUnavailable,
)
from sdk.errors import RedisUnavailable

#: Each refusal and the HTTP error it answers as.
REFUSALS: dict[type[Exception], type[HTTPException]] = {
    CallNotFound: NotFound,
    ScheduleNotFound: NotFound,
    CallConflict: Conflict,
    BadLimitKey: BadRequest,
    DispatchUnavailable: ServiceUnavailable,
    StoreUnavailable: ServiceUnavailable,
    RedisUnavailable: ServiceUnavailable,
}
#: When a client should try again after a 503 (a part of the control plane is away).
RETRY_AFTER_SECONDS = 2


def refusal(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """The status, body and headers a refusal answers with; None for any other exception."""
    answer = next((answer for kind, answer in REFUSALS.items() if isinstance(exc, kind)), None)
    if answer is None:
        return None
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if answer.code == 503 else {}
    return answer.code, {"code": answer.code, "status": answer().name, "message": str(exc)}, headers


def register_error_handlers(app: Flask) -> None:
    def handle(exc: Exception):
        code, payload, headers = refusal(exc)  # type: ignore[misc]  # registered for refusals only
        return payload, code, headers

    for kind in REFUSALS:
        app.register_error_handler(kind, handle)
