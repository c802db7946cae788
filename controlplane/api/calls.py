"""The call endpoints: the seed's create, read (optionally waiting), list, start and
finish, plus creating many calls at once, waiting for any or all of several,
retrying and cancelling. Views only translate: the services do the work, and
their refusals reach the client through controlplane.api.errors."""

from __future__ import annotations

import msgspec
from flask.views import MethodView

from controlplane.api.answers import call_answer, calls_answer, created_answer
from controlplane.api.blueprint import BODY_ERRORS, CALL_ID, URI_TOO_LONG, services
from controlplane.api.paging import PageCount, PagedBlueprint
from controlplane.schemas import (
    CallBatchCreateSchema,
    CallBatchSchema,
    CallCreatedBatchSchema,
    CallCreateSchema,
    CallListQuerySchema,
    CallSchema,
    CancelledSchema,
    CreateHeadersSchema,
    EventWaitSchema,
    FinishedQuerySchema,
    FinishSchema,
    SleepSchema,
    StartSchema,
    WaitAnswerSchema,
    WaitSchema,
)

blp = PagedBlueprint("calls", __name__, description="Calls of stages")


@blp.route("/call")
class CallCreate(MethodView):
    @blp.arguments(CallCreateSchema())
    @blp.arguments(WaitSchema(), location="query")
    @blp.arguments(CreateHeadersSchema(), location="headers")
    @blp.response(201, CallSchema)
    @blp.alt_response(200, schema=CallSchema, description="the call with this id already existed")
    @blp.refuses(*BODY_ERRORS, 404, 409, URI_TOO_LONG)
    def post(self, request, query, headers):
        """Create a call; with ?wait=SECONDS, also wait for it to finish. The same
        `id`, or the same idempotency key (body or Idempotency-Key header), returns
        the call made before."""
        key = headers.get("idempotency_key")
        if key and not request.id and not request.idempotency_key:  # the body's own key wins
            request = msgspec.structs.replace(request, idempotency_key=key)
        record, created = services().waiting.create(request, query.get("wait"))
        return call_answer(record, 201 if created else 200)


@blp.route("/call/<call_id>", parameters=[CALL_ID])
class CallResource(MethodView):
    @blp.arguments(WaitSchema(), location="query")
    @blp.response(200, CallSchema)
    @blp.refuses(404, URI_TOO_LONG)
    def get(self, query, call_id):
        """A call's status, result or error; ?wait=SECONDS holds until it finishes."""
        record = services().waiting.wait(call_id, query.get("wait"))
        return call_answer(services().reading.details(record))


@blp.route("/calls")
class CallList(MethodView):
    @blp.arguments(CallListQuerySchema(), location="query")
    @blp.response(200, CallSchema(many=True))
    @blp.paginate()
    @blp.refuses(URI_TOO_LONG)
    def get(self, query, pagination_parameters):
        """Calls, oldest first, filtered by status, stage and parent.

        The X-Pagination header has `total`, `total_pages` and `last_page` when at
        most 1,000 calls match past this page; with more it has only `page`,
        `first_page`, `previous_page` and `next_page`: matching calls are never
        all counted on a request."""
        calls, total = services().reading.list(
            query, pagination_parameters.first_item, pagination_parameters.page_size
        )
        pagination_parameters.item_count = PageCount(total)
        return calls

    @blp.arguments(CallBatchCreateSchema())
    @blp.response(201, CallCreatedBatchSchema)
    @blp.refuses(*BODY_ERRORS, 404, 409)
    def post(self, request):
        """Create many calls in one request: one transaction, one Redis round trip.
        Each call is answered without its arguments (the request has them)."""
        created = services().creation.create_many(request["calls"])
        return created_answer([record for record, _ in created])


@blp.route("/calls/finished")
class CallsFinished(MethodView):
    @blp.arguments(FinishedQuerySchema())
    @blp.response(200, CallBatchSchema)
    @blp.refuses(*BODY_ERRORS, 404)
    def post(self, request):
        """Those of the named calls that have finished; with `wait`, hold until one
        has (with `every`: all have)."""
        return calls_answer(services().waiting.finished(request["ids"], request["wait"],
                                                        request["every"]))


@blp.route("/call/<call_id>/start", parameters=[CALL_ID])
class CallStart(MethodView):
    @blp.arguments(StartSchema())
    @blp.response(200, CallSchema)
    @blp.refuses(*BODY_ERRORS, 404, 409, 503, URI_TOO_LONG)
    def post(self, request, call_id):
        """Claim a queued call for a worker; a second claim gets 409."""
        return services().commands.start(call_id, request["worker"])


@blp.route("/call/<call_id>/finish", parameters=[CALL_ID])
class CallFinish(MethodView):
    @blp.arguments(FinishSchema())
    @blp.response(200, CallSchema)
    @blp.refuses(*BODY_ERRORS, 404, 409, URI_TOO_LONG)
    def post(self, request, call_id):
        """Record a running call's result or error and wake its waiters."""
        return services().commands.finish(call_id, request)


@blp.route("/call/<call_id>/sleep", parameters=[CALL_ID])
class CallSleep(MethodView):
    @blp.arguments(SleepSchema())
    @blp.response(200, WaitAnswerSchema)
    @blp.refuses(*BODY_ERRORS, 404, 409, 503, URI_TOO_LONG)
    def post(self, request, call_id):
        """A running call sleeps (a worker asks, for `runner.sleep`): the sleep at that
        position is over, or the calls in its worker slot give it back until it is.
        409 when the call made another call at that position in an earlier run."""
        return services().sleeps.sleep(call_id, request)


@blp.route("/call/<call_id>/event", parameters=[CALL_ID])
class CallEventWait(MethodView):
    @blp.arguments(EventWaitSchema())
    @blp.response(200, WaitAnswerSchema)
    @blp.refuses(*BODY_ERRORS, 404, 409, 503, URI_TOO_LONG)
    def post(self, request, call_id):
        """A running call waits for an event (a worker asks, for
        `runner.wait_for_event`): the wait at that position is over (the event's
        payload, or its timeout), or the calls in its worker slot give it back until
        it is. 409 when the call made another call at that position in an earlier run."""
        return services().events.wait(call_id, request)


@blp.route("/call/<call_id>/retry", parameters=[CALL_ID])
class CallRetry(MethodView):
    @blp.response(200, CallSchema)
    @blp.refuses(404, 409, URI_TOO_LONG)
    def post(self, call_id):
        """Run a failed or cancelled call again, as its next attempt (409 otherwise)."""
        return services().commands.retry(call_id)


@blp.route("/call/<call_id>/cancel", parameters=[CALL_ID])
class CallCancel(MethodView):
    @blp.response(200, CancelledSchema)
    @blp.refuses(404, URI_TOO_LONG)
    def post(self, call_id):
        """Cancel a call and every unfinished call under it: queued ones leave their
        queue, running ones are stopped, waiters get a cancellation error."""
        cancelled = services().commands.cancel(call_id)
        return {"call": services().reading.get(call_id), "cancelled": [c.id for c in cancelled]}
