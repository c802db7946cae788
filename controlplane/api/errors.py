"""The service's refusals as the API's one error shape, `{code, status, message}`,
through Flask's error handlers: views and the dashboard's routes just raise."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.exceptions import Conflict, HTTPException, NotFound, ServiceUnavailable

from controlplane.errors import CallConflict, CallNotFound, DispatchUnavailable

#: Each refusal and the HTTP error it answers as.
REFUSALS: dict[type[Exception], type[HTTPException]] = {
    CallNotFound: NotFound,
    CallConflict: Conflict,
    DispatchUnavailable: ServiceUnavailable,
}


def register_error_handlers(app: Flask, api: Api) -> None:
    for refusal, answer in REFUSALS.items():

        def handle(exc: Exception, answer: type[HTTPException] = answer):
            error = answer()
            error.data = {"message": str(exc)}
            return api.handle_http_exception(error)

        app.register_error_handler(refusal, handle)
