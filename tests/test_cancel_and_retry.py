"""Cancelling a running tree, retrying a failed call by hand (REST and CLI), and
idempotent creation. On the cluster of tests/cluster.py."""

from __future__ import annotations

import pytest
import redis
import requests
from click.testing import CliRunner

from controlplane.cli import main
from controlplane.local_cluster import wait_until
from sdk.errors import CallCancelled, StageFailed
from tests.cluster import executions
from tests.workflows import recovery


def test_cancelling_a_running_tree_stops_it_and_tells_its_waiter(run, store_of, tmp_path):
    worker = run.worker()
    log = tmp_path / "naps"
    handle = recovery.tree_of_naps.submit(str(log), 3, 600)
    wait_until(lambda: executions(log), "the child napping in its parent's slot")
    answer = requests.post(f"{run.server_url}/api/call/{handle.id}/cancel", timeout=10).json()
    assert answer["call"]["status"] == "cancelled" and len(answer["cancelled"]) == 5
    with pytest.raises(CallCancelled):
        handle.result(timeout=30)
    rows = store_of.tree(handle.id)
    assert {row.status for row in rows} == {"cancelled"} and len(rows) == 5
    queue = next(row.queue for row in rows[1:] if row.run_mode is None)
    assert redis.Redis.from_url(run.redis_url).llen(f"rq:queue:{queue}") == 0
    # The napping child was interrupted: the worker is free at once, and no queued child ran.
    assert recovery.echo.submit("free").result(timeout=30) == "free"
    assert len(executions(log)) == 1 and worker.poll() is None


def test_cancelling_an_isolated_call_kills_its_process(run, store_of, tmp_path):
    worker = run.worker()
    log = tmp_path / "nap"
    handle = recovery.isolated_nap.submit(str(log), 600)
    wait_until(lambda: executions(log), "the isolated nap")
    requests.post(f"{run.server_url}/api/call/{handle.id}/cancel", timeout=10)
    with pytest.raises(CallCancelled):
        handle.result(timeout=30)
    assert recovery.echo.submit("free").result(timeout=30) == "free"
    assert worker.poll() is None
    assert store_of.get(handle.id).status == "cancelled"


def test_a_failed_call_retried_by_hand_runs_as_its_next_attempt(run, store_of, tmp_path):
    run.worker()
    handle = recovery.fails_once.submit(str(tmp_path / "log"))
    with pytest.raises(StageFailed):
        handle.result(timeout=30)
    result = CliRunner().invoke(main, ["calls", "--server-url", run.server_url, "retry", handle.id])
    assert result.exit_code == 0, result.output
    assert "pending as attempt 2" in result.output
    done = requests.get(f"{run.server_url}/api/call/{handle.id}", params={"wait": 30}, timeout=40)
    assert (done.json()["status"], done.json()["result"]) == ("succeeded", "the second one does not")
    assert [a["status"] for a in done.json()["attempts"]] == ["failed"]
    again = CliRunner().invoke(main, ["calls", "--server-url", run.server_url, "retry", handle.id])
    assert again.exit_code != 0 and "only a failed or cancelled call" in again.output


def test_an_idempotency_key_returns_the_call_it_made(run):
    url = f"{run.server_url}/api/call"
    body = {"stage": "echo", "arguments": {"args": ["once"], "kwargs": {}}}
    first = requests.post(url, json=body, headers={"Idempotency-Key": "order-17"}, timeout=10)
    again = requests.post(url, json=body, headers={"Idempotency-Key": "order-17"}, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = requests.post(url, json={**body, "arguments": {"args": ["twice"], "kwargs": {}}},
                          headers={"Idempotency-Key": "order-17"}, timeout=10)
    assert other.status_code == 409
    waited = [requests.post(url, json=body, params={"wait": 0.1}, timeout=10,
                            headers={"Idempotency-Key": "order-18"}).json()["id"] for _ in range(2)]
    assert waited[0] == waited[1]
    both = requests.post(url, json={**body, "id": "x1", "idempotency_key": "k"}, timeout=10)
    assert both.status_code == 422 and "not both" in both.text
