"""controlplane.api.lane: the create endpoints' fast lane answers what it takes
exactly as the Flask views do, and leaves everything else to them intact."""

from __future__ import annotations

import flask
import pytest

from controlplane.app import create_app, services_of
from controlplane.errors import StoreUnavailable
from controlplane.migrate import upgrade
from sdk.settings import Settings

pytestmark = pytest.mark.unit

TOKEN = "lane-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: A header only the Flask view reads: a create that carries it goes through Flask
#: (and means nothing when the body names its id).
THROUGH_FLASK = {**AUTH, "Idempotency-Key": "through-flask"}
#: What differs between two calls made alike.
OWN = {"id", "root_stage_run_id", "created_at"}


@pytest.fixture
def lane(tmp_path):
    """A test client of a control plane with a token, and the requests Flask dispatched."""
    url = f"sqlite:///{tmp_path / 'callplane.db'}"
    upgrade(url)
    # Redis never answers: a created call is recorded and left for recovery to queue.
    app = create_app(Settings(database_url=url, redis_url="redis://127.0.0.1:1/0", token=TOKEN,
                              max_body_bytes=10_000))
    dispatched: list[str] = []

    def started(_sender, **_extra):
        dispatched.append(flask.request.path)

    flask.request_started.connect(started, app)
    yield app.test_client(), dispatched, services_of(app)
    flask.request_started.disconnect(started, app)
    services_of(app).store.engine.dispose()


def alike(answer) -> dict:
    return {key: value for key, value in answer.json.items() if key not in OWN}


def test_a_create_is_answered_by_the_lane_as_the_view_answers_it(lane):
    http, dispatched, _ = lane
    body = {"stage": "add", "arguments": {"args": [1, 2], "kwargs": {"z": None}}, "max_attempts": 3}
    fast = http.post("/api/call", json={**body, "id": "fast1"}, headers=AUTH)
    assert dispatched == []
    slow = http.post("/api/call", json={**body, "id": "slow1"}, headers=THROUGH_FLASK)
    assert dispatched == ["/api/call"]
    assert (fast.status_code, slow.status_code) == (201, 201)
    assert fast.json["id"] == "fast1" and fast.json["root_stage_run_id"] == "fast1"
    assert alike(fast) == alike(slow) and fast.headers["Content-Type"] == "application/json"
    again = http.post("/api/call", json={**body, "id": "fast1"}, headers=AUTH)
    assert again.status_code == 200 and again.json == fast.json


def test_refusals_in_the_lane_are_the_views_refusals(lane):
    http, dispatched, _ = lane
    http.post("/api/call", json={"stage": "add", "id": "taken"}, headers=AUTH)
    cases = [{"stage": "other", "id": "taken"},  # another call under a taken id: 409
             {"stage": "add", "parent_stage_run_id": "nobody", "position": 0}]  # 404
    for body in cases:
        fast = http.post("/api/call", json=body, headers=AUTH)
        slow = http.post("/api/call", json=body, headers=THROUGH_FLASK)
        assert fast.status_code == slow.status_code in (404, 409)
        assert fast.json == slow.json and set(fast.json) == {"code", "status", "message"}
    assert len(dispatched) == len(cases)


def test_a_batch_is_answered_by_the_lane_as_the_view_answers_it(lane):
    http, dispatched, _ = lane
    calls = [{"stage": "add", "arguments": {"args": [n]}} for n in range(3)]
    fast = http.post("/api/calls", json={"calls": calls}, headers=AUTH)
    assert dispatched == []
    slow = http.post("/api/calls?through=flask", json={"calls": calls}, headers=AUTH)
    assert dispatched == ["/api/calls"]
    assert fast.status_code == slow.status_code == 201
    assert [{k: v for k, v in call.items() if k not in OWN} for call in fast.json["calls"]] == \
           [{k: v for k, v in call.items() if k not in OWN} for call in slow.json["calls"]]


@pytest.mark.parametrize(("path", "body", "headers", "status", "says"), [
    ("/api/call", {"stage": "add"}, {}, 401, "requires a token"),
    ("/api/call", {"stage": "add"}, {"Authorization": "Bearer wrong"}, 401, "requires a token"),
    ("/api/call", {"stage": "not a stage!"}, AUTH, 422, "stage"),
    ("/api/call", {"stage": "add", "surprise": 1}, AUTH, 422, "surprise"),
    ("/api/call?wait=soon", {"stage": "add"}, AUTH, 422, "wait"),
    ("/api/call?wait=99999", {"stage": "add"}, AUTH, 422, "wait"),
    ("/api/call", {"stage": "add", "arguments": {"args": ["x" * 20_000]}}, AUTH, 413, ""),
    ("/api/calls", {"calls": []}, AUTH, 422, "calls"),
])
def test_what_the_lane_does_not_take_flask_answers_with_the_body_intact(
    lane, path, body, headers, status, says
):
    http, dispatched, _ = lane
    answer = http.post(path, json=body, headers=headers)
    assert answer.status_code == status, answer.json
    assert says in answer.get_data(as_text=True)
    assert dispatched == [path.partition("?")[0]]


def test_an_idempotency_key_header_still_names_the_call(lane):
    http, _, _ = lane
    first = http.post("/api/call", json={"stage": "add"}, headers={**AUTH, "Idempotency-Key": "k1"})
    again = http.post("/api/call", json={"stage": "add"}, headers={**AUTH, "Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json["id"] == again.json["id"]


@pytest.mark.parametrize(("failure", "status", "retry_after"), [
    (RuntimeError("the database is on fire"), 500, None),  # unexpected: logged, a bare 500
    (StoreUnavailable("the audit database is unavailable: connection refused"), 503, "2"),
])
def test_a_failure_in_the_lane_is_answered_as_the_view_answers_it(
    lane, monkeypatch, failure, status, retry_after
):
    http, _, services = lane

    def fail(*_args, **_kwargs):
        raise failure

    monkeypatch.setattr(services.creation, "create", fail)
    fast = http.post("/api/call", json={"stage": "add"}, headers=AUTH)
    slow = http.post("/api/call", json={"stage": "add", "id": "x1"}, headers=THROUGH_FLASK)
    assert fast.status_code == slow.status_code == status
    assert fast.json == slow.json and fast.json["code"] == status
    assert fast.headers.get("Retry-After") == slow.headers.get("Retry-After") == retry_after
