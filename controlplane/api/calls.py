"""The call endpoints: the seed's create, read (optionally waiting), list, start and
finish, plus creating many calls at once and waiting for any or all of several."""

from __future__ import annotations

from contextlib import contextmanager

import flask
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from controlplane.calls import CallConflict, CallNotFound, DispatchUnavailable
from controlplane.schemas import (
    CallBatchCreateSchema,
    CallBatchSchema,
    CallCreatedBatchSchema,
    CallCreateSchema,
    CallListQuerySchema,
    CallSchema,
    CancelledSchema,
    FinishedQuerySchema,
    FinishSchema,
    RunListQuerySchema,
    StartSchema,
    TreeSchema,
    WaitSchema,
)
from controlplane.trees import tree_nodes

blp = Blueprint("calls", __name__, url_prefix="/api", description="Calls of stages")
# Schemas are given as instances: webargs would build a new one from a class on
# every request, which was a quarter of a create's time.


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
    @blp.arguments(CallCreateSchema())
    @blp.arguments(WaitSchema(), location="query")
    @blp.response(201, CallSchema)
    @blp.alt_response(200, schema=CallSchema, description="the call with this id already existed")
    def post(self, request, query):
        """Create a call; with ?wait=SECONDS, also wait for it to finish. The same
        `id`, or the same idempotency key (body or Idempotency-Key header), returns
        the call made before."""
        key = flask.request.headers.get("Idempotency-Key")
        if key and not request.get("id"):
            request = {"idempotency_key": key, **request}
        with http_errors():
            if query.get("wait"):
                record, created = calls().create_and_wait(request, query["wait"])
            else:
                record, created = calls().create(request)
        return record, 201 if created else 200


@blp.route("/call/<call_id>")
class CallResource(MethodView):
    @blp.arguments(WaitSchema(), location="query")
    @blp.response(200, CallSchema)
    def get(self, query, call_id):
        """A call's status, result or error; ?wait=SECONDS holds until it finishes."""
        with http_errors():
            record = calls().wait(call_id, query.get("wait"))
            return {**record, "waiting_on": calls().waiting_on(record),
                    "attempts": calls().earlier_attempts(record)}


@blp.route("/calls")
class CallList(MethodView):
    @blp.arguments(CallListQuerySchema(), location="query")
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

    @blp.arguments(CallBatchCreateSchema())
    @blp.response(201, CallCreatedBatchSchema)
    def post(self, request):
        """Create many calls in one request: one transaction, one Redis round trip.
        Each call is answered without its arguments (the request has them)."""
        with http_errors():
            created = calls().create_many(request["calls"])
        return {"calls": [record for record, _ in created]}


@blp.route("/calls/finished")
class CallsFinished(MethodView):
    @blp.arguments(FinishedQuerySchema())
    @blp.response(200, CallBatchSchema)
    def post(self, request):
        """Those of the named calls that have finished; with `wait`, hold until one
        has (with `every`: all have)."""
        with http_errors():
            return {"calls": calls().finished(request["ids"], request["wait"], request["every"])}


@blp.route("/call/<call_id>/start")
class CallStart(MethodView):
    @blp.arguments(StartSchema())
    @blp.response(200, CallSchema)
    def post(self, request, call_id):
        """Claim a queued call for a worker; a second claim gets 409."""
        with http_errors():
            return calls().start(call_id, request["worker"])


@blp.route("/call/<call_id>/tree")
class CallTree(MethodView):
    @blp.response(200, TreeSchema)
    def get(self, call_id):
        """The call and every call under it, depth-first (one query for the whole run)."""
        with http_errors():
            record = calls().get(call_id)
        rows = calls().store.tree(record["root_stage_run_id"])
        return {"call_id": call_id, "calls": tree_nodes(rows, call_id)}


@blp.route("/runs")
class RunList(MethodView):
    @blp.arguments(RunListQuerySchema(), location="query")
    @blp.response(200, CallSchema(many=True))
    @blp.paginate()
    def get(self, query, pagination_parameters):
        """Runs (root calls), newest first, filtered by status, stage, time and code
        version (X-Pagination header)."""
        rows, total = calls().store.runs(
            **query, offset=pagination_parameters.first_item, limit=pagination_parameters.page_size
        )
        pagination_parameters.item_count = total
        return rows


@blp.route("/call/<call_id>/retry")
class CallRetry(MethodView):
    @blp.response(200, CallSchema)
    def post(self, call_id):
        """Run a failed or cancelled call again, as its next attempt (409 otherwise)."""
        with http_errors():
            return calls().retry(call_id)


@blp.route("/call/<call_id>/cancel")
class CallCancel(MethodView):
    @blp.response(200, CancelledSchema)
    def post(self, call_id):
        """Cancel a call and every unfinished call under it: queued ones leave their
        queue, running ones are stopped, waiters get a cancellation error."""
        with http_errors():
            cancelled = calls().cancel(call_id)
            return {"call": calls().get(call_id), "cancelled": [c["id"] for c in cancelled]}


@blp.route("/call/<call_id>/finish")
class CallFinish(MethodView):
    @blp.arguments(FinishSchema())
    @blp.response(200, CallSchema)
    def post(self, request, call_id):
        """Record a running call's result or error and wake its waiters."""
        with http_errors():
            return calls().finish(call_id, request)
