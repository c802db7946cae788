"""The seed's call endpoints: create, read (optionally waiting), list, start, finish."""

from __future__ import annotations

from contextlib import contextmanager

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from controlplane.calls import CallConflict, CallNotFound, DispatchUnavailable
from controlplane.schemas import (
    CallCreateSchema,
    CallListQuerySchema,
    CallSchema,
    FinishSchema,
    StartSchema,
    WaitSchema,
)

blp = Blueprint("calls", __name__, url_prefix="/api", description="Calls of stages")


def calls():
    return current_app.extensions["callplane"].calls


@contextmanager
def http_errors():
    """Turn the service's refusals into the API's one error shape."""
    try:
        yield
    except CallNotFound as exc:
        abort(404, message=str(exc))
    except CallConflict as exc:
        abort(409, message=str(exc))
    except DispatchUnavailable as exc:
        abort(503, message=str(exc))


@blp.route("/call")
class CallCreate(MethodView):
    @blp.arguments(CallCreateSchema)
    @blp.arguments(WaitSchema, location="query")
    @blp.response(201, CallSchema)
    @blp.alt_response(200, schema=CallSchema, description="the call with this id already existed")
    def post(self, request, query):
        """Create a call; with ?wait=SECONDS, also wait for it to finish."""
        with http_errors():
            record, created = calls().create(request)
            if query.get("wait"):
                record = calls().wait(record["id"], query["wait"])
        return record, 201 if created else 200


@blp.route("/call/<call_id>")
class CallResource(MethodView):
    @blp.arguments(WaitSchema, location="query")
    @blp.response(200, CallSchema)
    def get(self, query, call_id):
        """A call's status, result or error; ?wait=SECONDS holds until it finishes."""
        with http_errors():
            return calls().wait(call_id, query.get("wait"))


@blp.route("/calls")
class CallList(MethodView):
    @blp.arguments(CallListQuerySchema, location="query")
    @blp.response(200, CallSchema(many=True))
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """Calls, oldest first, filtered by status, stage and parent (X-Pagination header)."""
        rows, total = calls().store.list(
            status=query.get("status"),
            stage=query.get("stage"),
            parent_id=query.get("parent_stage_run_id"),
            offset=pagination_parameters.first_item,
            limit=pagination_parameters.page_size,
        )
        pagination_parameters.item_count = total
        return rows


@blp.route("/call/<call_id>/start")
class CallStart(MethodView):
    @blp.arguments(StartSchema)
    @blp.response(200, CallSchema)
    def post(self, request, call_id):
        """Claim a queued call for a worker; a second claim gets 409."""
        with http_errors():
            return calls().start(call_id, request["worker"])


@blp.route("/call/<call_id>/finish")
class CallFinish(MethodView):
    @blp.arguments(FinishSchema)
    @blp.response(200, CallSchema)
    def post(self, request, call_id):
        """Record a running call's result or error and wake its waiters."""
        with http_errors():
            return calls().finish(call_id, request)
