"""The call endpoints: the seed's create, read (optionally waiting), list, start and
finish, plus creating many calls at once and waiting for any or all of several."""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from http import HTTPStatus

import flask
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from webargs.flaskparser import FlaskParser

from controlplane.calls import CallConflict, CallNotFound, DispatchUnavailable
from controlplane.schemas import (
    ID_PATTERN,
    CallBatchCreateSchema,
    CallBatchSchema,
    CallCreatedBatchSchema,
    CallCreateSchema,
    CallListQuerySchema,
    CallSchema,
    CancelledSchema,
    CreateHeadersSchema,
    FinishedQuerySchema,
    FinishSchema,
    RunListQuerySchema,
    StartSchema,
    TreeSchema,
    WaitSchema,
)
from controlplane.trees import tree_nodes

#: How deep a request body may nest: deeper, queueing the call or answering with
#: it would exceed Python's recursion limit, after the call was recorded.
JSON_DEPTH_LIMIT = 100
TOO_DEEP = f"nested more than {JSON_DEPTH_LIMIT} levels deep"
#: The errors an operation with a JSON body may answer besides 422: its JSON is
#: not JSON the control plane can keep (400), or the body is too large (413).
BODY_ERRORS = (400, 413)
#: The answer to a request line over 4094 bytes, which gunicorn gives itself (as
#: an HTML page); no valid request is that long, as every parameter is bounded.
URI_TOO_LONG = 414
#: The errors not answered in the API's one error shape, and how they are documented.
ERROR_DOCS = {URI_TOO_LONG: {"description": "request line over 4094 bytes, refused by gunicorn"}}
#: A call's id in a path, as the API document shows it.
CALL_ID = {"in": "path", "name": "call_id", "description": "the id of a call",
           "schema": {"type": "string", "pattern": ID_PATTERN}}
_CALL_ID = re.compile(ID_PATTERN)


class JSONBodyParser(FlaskParser):
    """webargs' parser, refusing with 400 what json.loads takes but the control
    plane cannot keep: NaN and Infinity (not JSON; Redis messages refuse them),
    integers past Python's 4300 digits, and nesting past JSON_DEPTH_LIMIT."""

    def load_json(self, req, schema):
        try:
            body = super().load_json(req, schema)
            problem = _json_problem(body)
        except RecursionError:
            problem = TOO_DEEP
        except ValueError:  # json.loads converts integers of up to 4300 digits
            problem = "an integer has more than 4300 digits"
        if problem:
            abort(400, messages={"json": [f"Invalid JSON body: {problem}."]})
        return body


def _json_problem(body) -> str | None:
    """What in a parsed body the control plane cannot keep, if anything (level by
    level, so depth costs no recursion)."""
    level = [body]
    for _depth in range(JSON_DEPTH_LIMIT + 1):
        below = []
        for node in level:
            if isinstance(node, float) and not math.isfinite(node):
                return "NaN and Infinity are not JSON numbers: send a number or null"
            if isinstance(node, dict):
                below.extend(node.values())
            elif isinstance(node, list):
                below.extend(node)
        if not below:
            return None
        level = below
    return TOO_DEEP


blp = Blueprint("calls", __name__, url_prefix="/api", description="Calls of stages")
blp.ARGUMENTS_PARSER = JSONBodyParser()
# Schemas are given as instances: webargs would build a new one from a class on
# every request, which was a quarter of a create's time.


def calls():
    return current_app.extensions["callplane"].calls


def refuses(*codes: int):
    """Document the errors a view may answer with, besides the 422 of bad arguments."""

    def document(view):
        for code in codes:
            doc = ERROR_DOCS.get(code, {"response": HTTPStatus(code).name})
            view = blp.alt_response(code, **doc)(view)
        return view

    return document


@blp.before_request
def _no_call_has_that_id():
    call_id = (flask.request.view_args or {}).get("call_id")
    if call_id is not None:
        refuse_malformed_id(call_id)


def refuse_malformed_id(call_id: str) -> None:
    """An id outside ID_PATTERN names no call: 404 before it reaches the database,
    which may refuse it (PostgreSQL refuses NUL in a string)."""
    if not _CALL_ID.fullmatch(call_id):
        abort(404, message=f"no call with id {call_id!r}: ids are 1-64 letters, digits, '_' or '-'")


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
    @blp.arguments(CreateHeadersSchema(), location="headers")
    @blp.response(201, CallSchema)
    @blp.alt_response(200, schema=CallSchema, description="the call with this id already existed")
    @refuses(*BODY_ERRORS, 404, 409, URI_TOO_LONG)
    def post(self, request, query, headers):
        """Create a call; with ?wait=SECONDS, also wait for it to finish. The same
        `id`, or the same idempotency key (body or Idempotency-Key header), returns
        the call made before."""
        key = headers.get("idempotency_key")
        if key and not request.get("id"):
            request = {"idempotency_key": key, **request}
        with http_errors():
            if query.get("wait"):
                record, created = calls().create_and_wait(request, query["wait"])
            else:
                record, created = calls().create(request)
        return record, 201 if created else 200


@blp.route("/call/<call_id>", parameters=[CALL_ID])
class CallResource(MethodView):
    @blp.arguments(WaitSchema(), location="query")
    @blp.response(200, CallSchema)
    @refuses(404, URI_TOO_LONG)
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
    @refuses(URI_TOO_LONG)
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
    @refuses(*BODY_ERRORS, 404, 409)
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
    @refuses(*BODY_ERRORS, 404)
    def post(self, request):
        """Those of the named calls that have finished; with `wait`, hold until one
        has (with `every`: all have)."""
        with http_errors():
            return {"calls": calls().finished(request["ids"], request["wait"], request["every"])}


@blp.route("/call/<call_id>/start", parameters=[CALL_ID])
class CallStart(MethodView):
    @blp.arguments(StartSchema())
    @blp.response(200, CallSchema)
    @refuses(*BODY_ERRORS, 404, 409, 503, URI_TOO_LONG)
    def post(self, request, call_id):
        """Claim a queued call for a worker; a second claim gets 409."""
        with http_errors():
            return calls().start(call_id, request["worker"])


@blp.route("/call/<call_id>/tree", parameters=[CALL_ID])
class CallTree(MethodView):
    @blp.response(200, TreeSchema)
    @refuses(404, URI_TOO_LONG)
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
    @refuses(URI_TOO_LONG)
    def get(self, query, pagination_parameters):
        """Runs (root calls), newest first, filtered by status, stage, time and code
        version (X-Pagination header)."""
        rows, total = calls().store.runs(
            **query, offset=pagination_parameters.first_item, limit=pagination_parameters.page_size
        )
        pagination_parameters.item_count = total
        return rows


@blp.route("/call/<call_id>/retry", parameters=[CALL_ID])
class CallRetry(MethodView):
    @blp.response(200, CallSchema)
    @refuses(404, 409, URI_TOO_LONG)
    def post(self, call_id):
        """Run a failed or cancelled call again, as its next attempt (409 otherwise)."""
        with http_errors():
            return calls().retry(call_id)


@blp.route("/call/<call_id>/cancel", parameters=[CALL_ID])
class CallCancel(MethodView):
    @blp.response(200, CancelledSchema)
    @refuses(404, URI_TOO_LONG)
    def post(self, call_id):
        """Cancel a call and every unfinished call under it: queued ones leave their
        queue, running ones are stopped, waiters get a cancellation error."""
        with http_errors():
            cancelled = calls().cancel(call_id)
            return {"call": calls().get(call_id), "cancelled": [c["id"] for c in cancelled]}


@blp.route("/call/<call_id>/finish", parameters=[CALL_ID])
class CallFinish(MethodView):
    @blp.arguments(FinishSchema())
    @blp.response(200, CallSchema)
    @refuses(*BODY_ERRORS, 404, 409, URI_TOO_LONG)
    def post(self, request, call_id):
        """Record a running call's result or error and wake its waiters."""
        with http_errors():
            return calls().finish(call_id, request)
