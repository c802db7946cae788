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


@blp.route("/events/<key>", parameters=[KEY])
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
        return services().events.send(key, _payload())
