"""rq-dashboard mounted at /rq shows callplane's queues, jobs and workers; its
writes go through callplane (requeue retries the call, delete cancels it) or are
refused (empty, compact, requeue all), so the audit table never falls out of step."""

from __future__ import annotations

import pytest
import redis
import requests

from controlplane.local_cluster import wait_until
from sdk.errors import CallCancelled, StageFailed
from tests.cluster import executions
from tests.workflows import recovery


def dashboard(run, method: str, path: str) -> requests.Response:
    return requests.request(method, f"{run.server_url}/rq{path}", timeout=10)


def test_it_shows_callplane_queues_jobs_and_workers(run, store_of):
    worker = run.worker()
    handle = recovery.echo.submit("seen")
    assert handle.result(timeout=30) == "seen"
    queue = store_of.get(handle.id).queue

    queues = dashboard(run, "GET", "/0/data/queues.json").json()["queues"]
    assert queue in [q["name"] for q in queues]
    finished = dashboard(run, "GET", f"/0/data/jobs/{queue}/finished/100/desc/1.json").json()
    assert handle.id in [job["id"] for job in finished["jobs"]]
    job = dashboard(run, "GET", f"/0/data/job/{handle.id}.json").json()
    assert (job["status"], job["origin"], job["description"]) == (
        "finished", queue, "callplane stage echo")
    workers = dashboard(run, "GET", "/0/data/workers.json").json()["workers"]
    assert worker.worker_name in [w["name"] for w in workers]
    for page in ("/", "/0/view/workers", f"/0/view/jobs/{queue}/finished/8/asc/1",
                 f"/0/view/job/{handle.id}"):
        assert dashboard(run, "GET", page).status_code == 200, page


def test_requeue_retries_the_call_as_its_next_attempt(run, store_of, tmp_path):
    run.worker()
    handle = recovery.fails_once.submit(str(tmp_path / "log"))
    with pytest.raises(StageFailed):
        handle.result(timeout=30)

    answer = dashboard(run, "POST", f"/job/{handle.id}/requeue")
    assert answer.status_code == 200 and answer.json()["status"] == "OK"
    done = requests.get(f"{run.server_url}/api/call/{handle.id}", params={"wait": 30}, timeout=40)
    assert (done.json()["status"], done.json()["attempt"]) == ("succeeded", 2)
    assert [attempt["status"] for attempt in done.json()["attempts"]] == ["failed"]

    again = dashboard(run, "POST", f"/job/{handle.id}/requeue")
    assert again.status_code == 409 and "only a failed or cancelled call" in again.json()["message"]
    assert store_of.get(handle.id).attempt == 2


def test_delete_cancels_the_call_and_tells_its_waiter(run, store_of, tmp_path):
    run.worker()
    log = tmp_path / "nap"
    handle = recovery.isolated_nap.submit(str(log), 600)
    wait_until(lambda: executions(log), "the nap")

    answer = dashboard(run, "POST", f"/job/{handle.id}/delete")
    assert answer.status_code == 200 and answer.json()["status"] == "OK"
    with pytest.raises(CallCancelled):
        handle.result(timeout=30)
    assert store_of.get(handle.id).status == "cancelled"


def test_emptying_compacting_and_requeueing_a_whole_queue_are_refused(run, store_of):
    handle = recovery.echo.submit("still queued")  # no worker yet: it waits in its queue
    queue = store_of.get(handle.id).queue
    queued = redis.Redis.from_url(run.redis_url)
    assert queued.llen(f"rq:queue:{queue}") == 1

    for method, path in (("POST", f"/queue/{queue}/queued/empty"),
                         ("POST", f"/queue/{queue}/compact"),
                         ("POST", f"/requeue/{queue}"), ("GET", f"/requeue/{queue}")):
        answer = dashboard(run, method, path)
        assert answer.status_code == 403, path
        assert "read-only" in answer.json()["message"]
    assert queued.llen(f"rq:queue:{queue}") == 1
    assert store_of.get(handle.id).status == "pending"

    run.worker()
    assert handle.result(timeout=30) == "still queued"
