"""The event endpoint: whoever a waiting call waits on (a person approving, a
payment provider's webhook) sends it an event, a JSON body, to its key."""

from __future__ import annotations

import json
from typing import Any

import flask
from flask.views import MethodView
from flask_smorest import abort

from controlplane.api.blueprint import BODY_ERRORS, URI_TOO_LONG, ApiBlueprint, services
from controlplane.schemas import EventSentSchema
from sdk.waits import EVENT_KEY, check_event_key
from sdk.wire import json_problem

blp = ApiBlueprint("events", __name__, description="Events that waiting calls wait for")
#: An event's key in a path, as the API document shows it.
KEY = {"in": "path", "name": "key", "description": "the key a call waits for",
       "schema": {"type": "string", "pattern": f"^{EVENT_KEY.pattern}$"}}
IDEMPOTENCY_KEY_LIMIT = 200
IDEMPOTENCY = {"in": "header", "name": "Idempotency-Key", "required": False,
               "description": "a send repeated with the same key is the same event",
               "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_LIMIT}}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number: send a number or null")


def _payload() -> Any:
    """The request's body as JSON (an empty body is null), or a 400 saying what is wrong."""
    body = flask.request.get_data()
    if not body.strip():
        return None
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
        problem = json_problem(payload)
    except RecursionError:
        problem = "it nests too deep"
    except ValueError as exc:  # not JSON, or not UTF-8, or an integer of over 4300 digits
        problem = str(exc)
    if problem:
        abort(400, messages={"json": [f"Invalid JSON body: {problem}."]})
    return payload


def _idempotency_key() -> str | None:
    """The request's Idempotency-Key (a retried send is the same event), or a 400."""
    key = flask.request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_LIMIT:
        abort(400, message=f"an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_LIMIT} characters")
    return key


@blp.route("/events/<key>", parameters=[KEY, IDEMPOTENCY])
class Event(MethodView):
    @blp.doc(requestBody={"description": "the event's payload: any JSON (empty: null)",
                          "content": {"application/json": {"schema": {}}}})
    @blp.response(200, EventSentSchema)
    @blp.refuses(*BODY_ERRORS, URI_TOO_LONG)
    def post(self, key):
        """Send an event: the call waiting longest for `key` gets its payload and runs
        on; with none waiting, the event is kept (CALLPLANE_EVENT_KEEP_SECONDS, a
        day by default) for the first call that waits for it."""
        try:
            check_event_key(key)
        except ValueError as exc:
            abort(400, message=str(exc))
        return services().events.send(key, _payload(), _idempotency_key())
