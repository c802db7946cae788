"""The blueprint every REST resource module uses: the strict body parser, a 404 for
a malformed call id before any view runs, and documented refusals."""

from __future__ import annotations

from http import HTTPStatus

import flask
import flask_smorest

from controlplane.api.bodies import FastBodyParser
from controlplane.api.parsing import refuse_malformed_id
from controlplane.schemas import ID_PATTERN

#: The errors an operation with a JSON body may answer besides 422: its JSON is
#: not JSON the control plane can keep (400), or the body is too large (413).
BODY_ERRORS = (400, 413)
#: The answer to a request line longer than the HTTP server takes, which the server
#: gives itself (not in the API's error shape); no valid request is that long, as
#: every parameter is bounded.
URI_TOO_LONG = 414
#: The errors not answered in the API's one error shape, and how they are documented.
ERROR_DOCS = {URI_TOO_LONG: {"description": "request line too long, refused by the HTTP server"}}
#: A call's id in a path, as the API document shows it.
CALL_ID = {"in": "path", "name": "call_id", "description": "the id of a call",
           "schema": {"type": "string", "pattern": ID_PATTERN}}


class ApiBlueprint(flask_smorest.Blueprint):
    # Schemas are given to its decorators as instances: webargs would build a new
    # one from a class on every request, which was a quarter of a create's time.
    ARGUMENTS_PARSER = FastBodyParser()

    def __init__(self, name: str, import_name: str, description: str):
        super().__init__(name, import_name, url_prefix="/api", description=description)
        self.before_request(_no_call_has_that_id)

    def refuses(self, *codes: int):
        """Document the errors a view may answer with, besides the 422 of bad arguments."""

        def document(view):
            for code in codes:
                doc = ERROR_DOCS.get(code, {"response": HTTPStatus(code).name})
                view = self.alt_response(code, **doc)(view)
            return view

        return document


def _no_call_has_that_id():
    call_id = (flask.request.view_args or {}).get("call_id")
    if call_id is not None:
        refuse_malformed_id(call_id)


def services():
    """The services of the app serving this request (controlplane.services)."""
    return flask.current_app.extensions["callplane"]
