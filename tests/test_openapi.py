"""The API keeps the contract its OpenAPI document states: schemathesis sends each
operation generated requests, valid and invalid, and every answer must be no 5xx,
of a documented status and content type, with a body of the documented shape.
The document must also list every route the app serves under /api.

The schema is loaded from the running control plane in a fixture and each
operation is fuzzed with Hypothesis directly: schemathesis.pytest.from_fixture
fails on pytest 9 (it sets Function._nodeid, which pytest 9 no longer has), and
its stateful machine trips Hypothesis' flaky-strategy check here."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from controlplane.schemas import WAIT_LIMIT_SECONDS

#: Every operation of the API, each fuzzed on its own; the document must list
#: exactly these, so a new endpoint is fuzzed (and documented) once it is added here.
OPERATIONS = [
    "POST /api/call",
    "GET /api/call/{call_id}",
    "GET /api/calls",
    "POST /api/calls",
    "POST /api/calls/finished",
    "POST /api/call/{call_id}/start",
    "GET /api/call/{call_id}/tree",
    "GET /api/call/{call_id}/waits",
    "GET /api/runs",
    "POST /api/call/{call_id}/retry",
    "POST /api/call/{call_id}/cancel",
    "POST /api/call/{call_id}/finish",
    "POST /api/call/{call_id}/sleep",
    "POST /api/call/{call_id}/event",
    "POST /api/events/{key}",
    "GET /api/jobs/key",
    "GET /api/set-aside",
    "GET /api/limits",
    "POST /api/limits",
    "GET /api/stats",
    "GET /api/schedules",
    "POST /api/schedules",
    "POST /api/schedules/{name}/pause",
    "POST /api/schedules/{name}/resume",
    "POST /api/schedules/{name}/trigger",
]
#: The blueprints under /api that serve the document and its page, not the API.
DOCUMENT_PAGES = {"api-docs", "apidocs"}
#: Examples per operation, valid and invalid ones: the whole file takes well under a minute.
MAX_EXAMPLES = 100
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: The longest a generated request may wait for calls to finish: nothing runs the
#: calls it makes, so each `wait` would hold it that long (up to the server's max_wait).
SHORT_WAIT = 0.1
#: The stage of the calls made for requests to act on; no worker runs it.
STAGE = "openapi_fuzz"
#: How to bring a new call to each state, by the API; a generated call_id names
#: a real call in one of them, or (None) stays as generated, so almost surely none.
STATES = {
    "pending": [],
    "running": [("start", {"worker": "fuzz"})],
    "succeeded": [("start", {"worker": "fuzz"}), ("finish", {"status": "succeeded", "result": 1})],
    "failed": [("start", {"worker": "fuzz"}),
               ("finish", {"status": "failed", "error": {"type": "E", "message": "m"}})],
    "cancelled": [("cancel", {})],
    None: [],
}


@pytest.fixture(scope="module")
def openapi(server_url):
    return schemathesis.openapi.from_url(f"{server_url}/api/openapi.json")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_operation_keeps_its_contract(openapi, server_url, operation):
    method, path = operation.split(" ")
    endpoint = openapi[path][method]
    cases = st.one_of([endpoint.as_strategy(mode) for mode in schemathesis.GenerationMode])

    # Derandomized: CI sends the same requests every run.
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases, state=st.sampled_from(list(STATES)))
    def fuzz(case, state):
        if state and "call_id" in (case.path_parameters or {}):
            case.path_parameters["call_id"] = call_in(server_url, state)
        shorten_wait(case)
        case.call_and_validate(checks=CHECKS, timeout=30)

    fuzz()


def call_in(server_url: str, state: str) -> str:
    """A new call, brought to `state` by the API."""
    call_id = _post(server_url, "/api/call", {"stage": STAGE})["id"]
    for action, body in STATES[state]:
        _post(server_url, f"/api/call/{call_id}/{action}", body)
    return call_id


def _post(server_url: str, path: str, body: dict) -> dict:
    response = requests.post(server_url + path, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def shorten_wait(case) -> None:
    """Cut a valid `wait` (query or body) to SHORT_WAIT; invalid ones stay, to be refused."""
    for values in (case.query, case.body):
        wait = values.get("wait") if isinstance(values, dict) else None
        if type(wait) in (int, float) and SHORT_WAIT < wait <= WAIT_LIMIT_SECONDS:
            values["wait"] = SHORT_WAIT


def test_the_document_lists_every_api_route(server_url, database_url, redis_url):
    from controlplane.app import create_app, services_of
    from sdk.settings import Settings

    app = create_app(Settings(database_url=database_url, redis_url=redis_url))
    services_of(app).store.engine.dispose()
    served = {
        f"{method} {rule.rule.replace('<', '{').replace('>', '}')}"
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint.split(".")[0] not in DOCUMENT_PAGES
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    paths = requests.get(f"{server_url}/api/openapi.json", timeout=10).json()["paths"]
    documented = {
        f"{method.upper()} {path}" for path, item in paths.items() for method in item
        if method != "parameters"
    }
    assert documented == served
    assert set(OPERATIONS) == documented
