"""What a request may say before a view sees it: JSON the control plane can keep,
and call ids that can name a call."""

from __future__ import annotations

import re

from flask_smorest import abort
from webargs.flaskparser import FlaskParser

from controlplane.schemas import ID_PATTERN
from sdk.wire import TOO_DEEP, json_problem

_CALL_ID = re.compile(ID_PATTERN)
#: The levels a body adds around a call's arguments at most ({"calls": [{"arguments":
#: {"args": [...]}}]}): a body is refused past the limit plus these, and each call's
#: arguments past the limit itself, counted as [args, kwargs] (as the SDK counts).
BODY_ENVELOPE = 4


class JSONBodyParser(FlaskParser):
    """webargs' parser, refusing with 400 what json.loads takes but the control
    plane cannot keep: NaN and Infinity (not JSON; Redis messages refuse them),
    integers past Python's 4300 digits, nesting past JSON_DEPTH_LIMIT, and a NUL
    in a call's arguments."""

    def load_json(self, req, schema):
        try:
            body = super().load_json(req, schema)
            problem = arguments_problem(body) or json_problem(body, text=False, envelope=BODY_ENVELOPE)
        except RecursionError:
            problem = TOO_DEEP
        except ValueError:  # json.loads converts integers of up to 4300 digits
            problem = "an integer has more than 4300 digits"
        if problem:
            abort(400, messages={"json": [f"Invalid JSON body: {problem}."]})
        return body


def arguments_problem(body) -> str | None:
    """What in the arguments of a create body (or of each call of a batch) callplane
    cannot keep: free JSON, which no schema field's own rules look at, so a NUL
    or nesting there is refused here (a text field's schema refuses its own NUL,
    naming it)."""
    if not isinstance(body, dict):
        return None
    calls = body.get("calls") if isinstance(body.get("calls"), list) else [body]
    for call in calls:
        if isinstance(call, dict) and "arguments" in call:
            problem = json_problem(call["arguments"])
            if problem:
                return problem
    return None


def refuse_malformed_id(call_id: str) -> None:
    """An id outside ID_PATTERN names no call: 404 before it reaches the database,
    which may refuse it (PostgreSQL refuses NUL in a string)."""
    if not _CALL_ID.fullmatch(call_id):
        abort(404, message=f"no call with id {call_id!r}: ids are 1-64 letters, digits, '_' or '-'")
