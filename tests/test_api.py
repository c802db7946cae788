"""Every endpoint over real HTTP, including each kind of bad request, which must
get a 4xx JSON error saying what is wrong and change nothing."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from sdk.client import ControlPlaneClient
from sdk.errors import ControlPlaneRefused
from sdk.records import Arguments, CallRequest
from tests.conftest import control_plane_with_token

#: A stage no test worker registers, so its calls stay queued for the claim tests.
UNSERVED = "nobody_runs_this"


def total(api):
    return api("GET", "/api/calls").headers["X-Pagination"]


def create(api, **body):
    response = api("POST", "/api/call", json={"stage": UNSERVED, **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_records_and_queues_a_call(api):
    call = create(api, arguments={"args": [1], "kwargs": {"x": [2]}})
    assert call["status"] == "pending"
    assert call["arguments"] == {"args": [1], "kwargs": {"x": [2]}}
    assert call["root_stage_run_id"] == call["id"]
    assert api("GET", f"/api/call/{call['id']}").json()["status"] == "pending"
    pending = api("GET", "/api/calls", params={"status": "pending", "stage": UNSERVED}).json()
    assert call["id"] in [c["id"] for c in pending]


def test_create_with_a_known_id_is_a_safe_retry(api):
    call_id = uuid.uuid4().hex
    first = create(api, id=call_id)
    again = api("POST", "/api/call", json={"stage": UNSERVED, "id": call_id})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    other = api("POST", "/api/call", json={"stage": "other_stage", "id": call_id})
    assert other.status_code == 409 and "already exists" in other.json()["message"]


def test_child_records_its_parent_and_inherits_its_version(api):
    parent = create(api, repo_name="repo", commit_hash="abc123")
    child = create(api, parent_stage_run_id=parent["id"], position=0)
    assert child["parent_stage_run_id"] == parent["id"]
    assert child["root_stage_run_id"] == parent["id"]
    assert (child["repo_name"], child["commit_hash"]) == ("repo", "abc123")
    other = api("POST", "/api/call", json={
        "stage": UNSERVED, "parent_stage_run_id": parent["id"], "repo_name": "repo", "commit_hash": "fff",
    })
    assert other.status_code == 409 and "parent's code version" in other.json()["message"]


@pytest.mark.parametrize("body, content_type, status, where", [
    ("{not json", "application/json", 400, "json"),
    ("[1, 2]", "application/json", 422, "json"),
    ('{"stage": 3}', "application/json", 422, "stage"),
    ('{"stage": ""}', "application/json", 422, "stage"),
    ('{}', "application/json", 422, "stage"),
    ('{"stage": "s", "surprise": 1}', "application/json", 422, "surprise"),
    ('{"stage": "s", "arguments": {"args": 5}}', "application/json", 422, "args"),
    ('{"stage": "s", "arguments": {"kwargs": []}}', "application/json", 422, "kwargs"),
    ('{"stage": "s", "id": "has spaces"}', "application/json", 422, "id"),
    ('{"stage": "s", "repo_name": "r"}', "application/json", 422, "commit_hash"),
    ('{"stage": "s", "position": 1}', "application/json", 422, "position"),
    ('{"stage": "s", "position": -1, "parent_stage_run_id": "p"}', "application/json", 422, "position"),
    # Found by tests/test_openapi.py and its probes: each was a 500, some after the row was written.
    ('{"stage": "s", "arguments": {"args": [NaN]}}', "application/json", 400, "NaN"),
    ('{"stage": "s", "arguments": {"args": [1e400]}}', "application/json", 400, "Infinity"),
    ('{"stage": "s", "arguments": {"args": [1%s]}}' % ("0" * 5000), "application/json", 400, "digits"),
    ('{"stage": "s", "arguments": {"args": %s}}' % ("[" * 200 + "]" * 200), "application/json", 400,
     "nested"),
    ('{"stage": "a\\u0000b"}', "application/json", 422, "NUL"),
    # No NUL in text, as the README says: in arguments neither, in a string or a key.
    ('{"stage": "s", "arguments": {"args": ["a\\u0000b"]}}', "application/json", 400, "NUL"),
    ('{"stage": "s", "arguments": {"kwargs": {"k": {"a\\u0000": 1}}}}', "application/json", 400,
     "NUL"),
    ('{"stage": "s\\ud800"}', "application/json", 422, "surrogates"),
    ('{"stage": "%s"}' % ("s" * 123), "application/json", 422, "stage"),
    # Pages show stage names (rq-dashboard without escaping them): no markup gets in.
    ('{"stage": "<img src=x onerror=alert(1)>"}', "application/json", 422, "letters, digits"),
    ('{"stage": "s", "id": "abc\\n"}', "application/json", 422, "id"),
    ('{"stage": "s", "position": 2147483648, "parent_stage_run_id": "p"}', "application/json", 422,
     "position"),
])
def test_bad_create_requests_are_refused_and_change_nothing(api, body, content_type, status, where):
    before = total(api)
    response = api("POST", "/api/call", data=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert where in response.text
    assert total(api) == before


def test_unknown_parent_is_refused_and_changes_nothing(api):
    before = total(api)
    response = api("POST", "/api/call", json={"stage": "s", "parent_stage_run_id": "missing"})
    assert response.status_code == 404 and "parent call 'missing'" in response.json()["message"]
    assert total(api) == before


def test_oversized_body_gets_413(api):
    before = total(api)
    response = api("POST", "/api/call", json={"stage": "s", "arguments": {"args": ["x" * (17 << 20)]}})
    assert response.status_code == 413
    assert total(api) == before


def test_get_unknown_call_is_404(api):
    response = api("GET", "/api/call/does-not-exist")
    assert response.status_code == 404 and "does-not-exist" in response.json()["message"]


@pytest.mark.parametrize("wait", ["abc", "-1", "99999"])
def test_bad_wait_is_422(api, wait):
    call = create(api)
    assert api("GET", f"/api/call/{call['id']}", params={"wait": wait}).status_code == 422


def test_list_filters_and_paginates(api):
    parent = create(api)
    for i in range(5):
        create(api, parent_stage_run_id=parent["id"], position=i)
    page = api("GET", "/api/calls", params={"parent_stage_run_id": parent["id"], "page_size": 2, "page": 2})
    assert page.status_code == 200
    assert [c["position"] for c in page.json()] == [2, 3]
    assert '"total": 5' in page.headers["X-Pagination"]
    assert api("GET", "/api/calls", params={"status": "bogus"}).status_code == 422
    assert api("GET", "/api/calls", params={"page_size": 0}).status_code == 422


def test_start_then_finish_wakes_a_waiter(api):
    call = create(api)
    started = api("POST", f"/api/call/{call['id']}/start", json={"worker": "hand"})
    assert started.status_code == 200
    assert started.json()["status"] == "running" and started.json()["worker"] == "hand"
    answers = {}
    waiter = threading.Thread(
        target=lambda: answers.update(r=api("GET", f"/api/call/{call['id']}", params={"wait": 30})))
    waiter.start()
    finished = api("POST", f"/api/call/{call['id']}/finish", json={"status": "succeeded", "result": [1, 2]})
    assert finished.status_code == 200 and finished.json()["result"] == [1, 2]
    waiter.join(timeout=30)
    assert answers["r"].json()["status"] == "succeeded"
    again = api("POST", f"/api/call/{call['id']}/finish", json={"status": "succeeded", "result": 3})
    assert again.status_code == 409 and "not running" in again.json()["message"]
    assert api("GET", f"/api/call/{call['id']}").json()["result"] == [1, 2]


def test_a_finish_that_names_a_stale_attempt_or_another_worker_gets_409(api):
    call = create(api)
    api("POST", f"/api/call/{call['id']}/start", json={"worker": "hand"})
    for fence in ({"attempt": 2}, {"worker": "other", "attempt": 1}):
        stale = api("POST", f"/api/call/{call['id']}/finish", json={"status": "succeeded", **fence})
        assert stale.status_code == 409 and "stale attempt" in stale.json()["message"]
    assert api("GET", f"/api/call/{call['id']}").json()["status"] == "running"
    current = {"status": "succeeded", "worker": "hand", "attempt": 1}
    assert api("POST", f"/api/call/{call['id']}/finish", json=current).status_code == 200


def test_a_failed_child_runs_again_when_a_later_attempt_of_its_parent_makes_it(api):
    parent = create(api)
    child = {"id": uuid.uuid4().hex, "stage": UNSERVED, "arguments": {"args": [1], "kwargs": {}},
             "parent_stage_run_id": parent["id"], "position": 0, "parent_attempt": 1}
    assert api("POST", "/api/call", json=child).status_code == 201
    api("POST", f"/api/call/{child['id']}/start", json={"worker": "hand"})
    error = {"type": "ValueError", "message": "no", "traceback": ""}
    api("POST", f"/api/call/{child['id']}/finish", json={"status": "failed", "error": error})
    same_attempt = api("POST", "/api/call", json=child)  # the same parent attempt, asking again
    assert same_attempt.status_code == 200 and same_attempt.json()["status"] == "failed"
    # The parent's next attempt makes the child at the same position, under another id.
    rerun = api("POST", "/api/call", json={**child, "id": uuid.uuid4().hex, "parent_attempt": 2})
    assert rerun.status_code == 201, rerun.text
    assert rerun.json()["id"] == child["id"]
    assert (rerun.json()["status"], rerun.json()["attempt"]) == ("pending", 2)
    (earlier,) = api("GET", f"/api/call/{child['id']}").json()["attempts"]
    assert (earlier["attempt"], earlier["status"], earlier["error"]) == (1, "failed", error)


def test_finish_records_an_error(api):
    call = create(api)
    api("POST", f"/api/call/{call['id']}/start", json={"worker": "hand"})
    error = {"type": "KeyError", "message": "'x'", "traceback": "Traceback ..."}
    finished = api("POST", f"/api/call/{call['id']}/finish", json={"status": "failed", "error": error})
    assert finished.json()["status"] == "failed" and finished.json()["error"] == error


def test_finishing_a_call_that_is_not_running_is_409(api):
    call = create(api)
    response = api("POST", f"/api/call/{call['id']}/finish", json={"status": "succeeded", "result": 1})
    assert response.status_code == 409 and "pending, not running" in response.json()["message"]
    assert api("GET", f"/api/call/{call['id']}").json()["status"] == "pending"


@pytest.mark.parametrize("body", [
    {"status": "failed"},
    {"status": "succeeded", "error": {"type": "E", "message": "m"}},
    {"status": "running"},
    {"result": 1},
    {"status": "failed", "error": {"message": "no type"}},
    {"status": "succeeded", "attempt": 2**31},
    {"status": "succeeded", "output": "a\x00b"},
])
def test_bad_finish_requests_are_422_and_change_nothing(api, body):
    call = create(api)
    api("POST", f"/api/call/{call['id']}/start", json={"worker": "hand"})
    assert api("POST", f"/api/call/{call['id']}/finish", json=body).status_code == 422
    assert api("GET", f"/api/call/{call['id']}").json()["status"] == "running"


def test_start_needs_a_worker_and_a_known_call(api):
    call = create(api)
    assert api("POST", f"/api/call/{call['id']}/start", json={}).status_code == 422
    # Refused before the claim: it used to take the call off its queue, then PostgreSQL
    # refused the NUL, a 500 that left the call pending on no queue.
    assert api("POST", f"/api/call/{call['id']}/start", json={"worker": "w\x00"}).status_code == 422
    assert api("POST", "/api/call/unknown/start", json={"worker": "w"}).status_code == 404
    assert api("GET", f"/api/call/{call['id']}").json()["status"] == "pending"
    assert api("POST", f"/api/call/{call['id']}/start", json={"worker": "w"}).status_code == 200


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/call/a%00b", 404),
    ("POST", "/api/call/a%00b/cancel", 404),
    ("GET", "/api/calls?stage=a%00b", 422),
    ("GET", "/api/calls?page=100000000000000000000", 200),
    ("GET", "/api/runs?since=0001-01-01T00:00:00%2B14:00", 422),
])
def test_unstorable_ids_and_filters_are_answered_not_500(api, method, path, status):
    assert api(method, path).status_code == status


def test_runs_since_a_time_in_another_zone(api):
    call = create(api)
    created = datetime.fromisoformat(call["created_at"])
    east = timezone(timedelta(hours=5))
    for minutes, listed in ((-1, True), (1, False)):
        since = (created + timedelta(minutes=minutes)).astimezone(east).isoformat()
        runs = api("GET", "/api/runs", params={"stage": UNSERVED, "since": since}).json()
        assert (call["id"] in [run["id"] for run in runs]) is listed


def test_concurrent_claims_of_one_call_let_exactly_one_win(api):
    call = create(api)
    barrier = threading.Barrier(8)
    codes = []

    def claim(i):
        barrier.wait()
        codes.append(api("POST", f"/api/call/{call['id']}/start", json={"worker": f"w{i}"}).status_code)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * 7


def test_openapi_document_describes_the_endpoints(api):
    paths = api("GET", "/api/openapi.json").json()["paths"]
    for path in ("/api/call", "/api/call/{call_id}", "/api/calls",
                 "/api/call/{call_id}/start", "/api/call/{call_id}/finish"):
        assert path in paths


def test_batch_create_records_and_queues_every_call_at_once(api):
    ids = [uuid.uuid4().hex for _ in range(3)]
    response = api("POST", "/api/calls", json={"calls": [
        {"id": call_id, "stage": UNSERVED, "arguments": {"args": [i]}} for i, call_id in enumerate(ids)
    ]})
    assert response.status_code == 201, response.text
    assert [c["id"] for c in response.json()["calls"]] == ids
    assert {c["status"] for c in response.json()["calls"]} == {"pending"}
    same = {"id": ids[0], "stage": UNSERVED, "arguments": {"args": [0]}}
    again = api("POST", "/api/calls", json={"calls": [same]})
    assert again.status_code == 201 and again.json()["calls"][0]["id"] == ids[0]
    other = api("POST", "/api/calls", json={"calls": [{**same, "arguments": {"args": [9]}}]})
    assert other.status_code == 409 and "other arguments" in other.json()["message"]


@pytest.mark.parametrize("body, status, says", [
    ({"calls": []}, 422, "calls"),
    ({"calls": [{"stage": UNSERVED}, {"stage": 3}]}, 422, "calls"),
    ({"calls": [{"stage": UNSERVED, "parent_stage_run_id": "nosuchparent"}]}, 404, "nosuchparent"),
    ({"calls": [{"stage": UNSERVED, "run_mode": "inline"}]}, 422, "worker"),
])
def test_a_bad_batch_creates_nothing(api, body, status, says):
    before = total(api)
    response = api("POST", "/api/calls", json=body)
    assert response.status_code == status
    assert says in response.text
    assert total(api) == before


def test_finished_waits_for_any_or_every_named_call(api, runner):
    quick = create(api)
    response = api("POST", "/api/calls/finished", json={"ids": [quick["id"]], "wait": 0.2})
    assert response.status_code == 200 and response.json() == {"calls": []}
    slow = api("POST", "/api/call", json={"stage": "sleep_then_add", "arguments": {"args": [0.5, 1, 2]}}).json()
    fast = api("POST", "/api/call", json={"stage": "add", "arguments": {"args": [1, 2]}}).json()
    any_one = api("POST", "/api/calls/finished", json={"ids": [slow["id"], fast["id"]], "wait": 30})
    assert [c["id"] for c in any_one.json()["calls"]] == [fast["id"]]
    every = api("POST", "/api/calls/finished",
                json={"ids": [slow["id"], fast["id"]], "wait": 30, "every": True}).json()["calls"]
    assert [(c["id"], c["result"]) for c in every] == [(slow["id"], 3), (fast["id"], 3)]
    unknown = api("POST", "/api/calls/finished", json={"ids": ["nosuchcall"]})
    assert unknown.status_code == 404 and "nosuchcall" in unknown.json()["message"]


def test_an_inline_call_is_recorded_running_on_its_worker_and_never_queued(api):
    call = create(api, run_mode="inline", worker="w-1")
    assert (call["status"], call["worker"], call["run_mode"]) == ("running", "w-1", "inline")
    assert call["started_at"] is not None
    done = api("POST", f"/api/call/{call['id']}/finish", json={"status": "succeeded", "result": 5})
    assert done.json()["status"] == "succeeded"


def test_a_body_past_the_limit_is_refused_by_the_sdk_at_once_with_the_limit(server_url, api):
    before = total(api)
    request = CallRequest(stage="s", arguments=Arguments(["x" * (17 << 20)], {}))
    started = time.monotonic()
    with pytest.raises(ControlPlaneRefused, match=r"17.0 MiB.*up to 16.0 MiB \(CALLPLANE_MAX_BODY_BYTES\)"):
        ControlPlaneClient(server_url).create_call(request)
    # At once: not sent, so not retried for a minute as an unreachable control plane is.
    assert time.monotonic() - started < 10 and total(api) == before


def test_a_413_from_a_control_plane_with_a_lower_limit_reaches_the_sdk_at_once(env, tmp_path):
    limited = {**env, "CALLPLANE_MAX_BODY_BYTES": str(1 << 20)}
    with control_plane_with_token(limited, "limit-token", tmp_path) as url:
        # A client that believes in a larger limit sends the body; the server refuses it.
        client = ControlPlaneClient(url, token="limit-token", max_body_bytes=64 << 20)
        request = CallRequest(stage="s", arguments=Arguments(["x" * (8 << 20)], {}))
        started = time.monotonic()
        with pytest.raises(ControlPlaneRefused) as refused:
            client.create_call(request)
        assert refused.value.status == 413 and time.monotonic() - started < 30  # not 60 s of retries
