"""The create endpoints' fast lane: POST /api/call and POST /api/calls answered
before Flask's request machinery.

Creating calls is most of what a control plane is asked, and Flask's part of a
create (a request context, the token hook, webargs parsing the body, the query
and the headers, smorest's wrappers) was about a fifth of its CPU. The lane
answers only requests it can answer exactly as the API does: the API token in
the Authorization header (or no token configured), a JSON body that
controlplane.api.bodies takes, no query but a plain `?wait=`, no Idempotency-Key
header. Anything else, a body to refuse included, goes on to Flask with its
body intact and is answered there.
"""

from __future__ import annotations

import hmac
import io
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from controlplane.api.answers import call_json, created_json
from controlplane.api.bodies import batch_requests, create_request
from controlplane.api.errors import refusal
from controlplane.schemas import WAIT_LIMIT_SECONDS
from controlplane.services import Services
from sdk.records import json_text

log = logging.getLogger(__name__)

#: A plain `?wait=SECONDS`, as WaitSchema takes it (its range is checked too).
_WAIT = re.compile(r"wait=(\d{1,4}(?:\.\d{1,6})?)")
_INTERNAL_ERROR = json_text({"code": 500, "status": HTTPStatus(500).phrase})

#: An answer: its status and its JSON; None leaves the request to Flask.
Answer = tuple[int, str] | None


class CreateLane:
    """WSGI middleware in front of the Flask app (see the module's docstring)."""

    def __init__(self, wsgi_app: Callable, services: Services, token: str | None,
                 max_body_bytes: int):
        self._app = wsgi_app
        self._services = services
        self._authorization = f"Bearer {token}".encode() if token else None
        self._max_body = max_body_bytes
        self._routes: dict[str, Callable[[bytes, float | None], Answer]] = {
            "/api/call": self._create, "/api/calls": self._create_many,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        route = self._routes.get(environ.get("PATH_INFO", ""))
        if route is None or environ.get("REQUEST_METHOD") != "POST" or not self._admits(environ):
            return self._app(environ, start_response)
        body = self._body(environ)
        headers: dict[str, str] = {}
        try:
            answer = None if body is None else route(body, _wait(environ.get("QUERY_STRING", "")))
        except Exception as exc:  # answered as Flask's error handlers would
            refused = refusal(exc)
            if refused is None:
                log.exception("a create failed")
                answer = 500, _INTERNAL_ERROR
            else:
                answer, headers = (refused[0], json_text(refused[1])), refused[2]
        if answer is None:
            return self._app(environ, start_response)
        status, text = answer
        payload = text.encode()
        start_response(f"{status} {HTTPStatus(status).phrase}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
            *headers.items(),
        ])
        return [payload]

    def _admits(self, environ: dict[str, Any]) -> bool:
        """The token is the API's, the body JSON, the query a plain `?wait=` or
        none, and nothing asks for what only Flask's views do (an Idempotency-Key
        header)."""
        if self._authorization is not None and not hmac.compare_digest(
            environ.get("HTTP_AUTHORIZATION", "").encode(), self._authorization
        ):
            return False
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        query = environ.get("QUERY_STRING", "")
        plain_query = not query or ((match := _WAIT.fullmatch(query)) is not None
                                    and float(match[1]) <= WAIT_LIMIT_SECONDS)
        return (mimetype == "application/json" and plain_query
                and "HTTP_IDEMPOTENCY_KEY" not in environ)

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The request's body, put back for Flask to read again; None when it has
        no length within the limit (Flask answers those)."""
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self._max_body:
            return None
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
        return body if len(body) == int(length) else None

    def _create(self, body: bytes, wait: float | None) -> Answer:
        request = create_request(body)
        if request is None:
            return None
        record, created = self._services.waiting.create(request, wait)
        return (201 if created else 200), call_json(record)

    def _create_many(self, body: bytes, wait: float | None) -> Answer:
        batch = batch_requests(body) if wait is None else None
        if batch is None:
            return None
        created = self._services.creation.create_many(batch["calls"])
        return 201, created_json([record for record, _ in created])


def _wait(query: str) -> float | None:
    """The seconds of an admitted query's `?wait=`; None for none (or 0)."""
    return float(query.removeprefix("wait=")) or None if query else None
