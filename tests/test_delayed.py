"""Delayed calls: `stage.options(delay=...)` or `options(at=...)`, and
"delay_seconds" or "not_before" over REST. No worker starts one before its time;
the clock duty queues it within a second after, through a control plane's
restart and Redis coming back empty (rebuilt from the table). Bad settings are
refused at once and change nothing. On the cluster of tests/cluster.py."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
import requests
from click.testing import CliRunner

from controlplane.cli import main
from controlplane.store.reads import CallQuery
from sdk.errors import CallCancelled
from sdk.transport.keys import DELAYED_KEY, job_key, scheduled_registry
from tests.workflows import recovery

#: The issue's bound: a due call starts within a second of its time, under no load.
PROMPT_SECONDS = 1.0


def assert_started_on_time(record) -> None:
    assert record.not_before is not None and record.started_at is not None
    assert record.not_before <= record.started_at, "started before its time"
    assert (record.started_at - record.not_before).total_seconds() < PROMPT_SECONDS


def test_a_delayed_call_waits_in_redis_then_starts_on_time(run, store_of):
    run.worker()
    handle = recovery.echo.options(delay=2).submit("later")
    record = store_of.get(handle.id)
    assert record.status == "pending"
    assert abs((record.not_before - record.created_at).total_seconds() - 2) < 0.1
    # It waits as a scheduled job (rq-dashboard counts it), by its due time.
    client = redis.Redis.from_url(run.redis_url, decode_responses=True)
    assert client.hget(job_key(handle.id), "status") == "scheduled"
    assert client.zscore(DELAYED_KEY, handle.id) == pytest.approx(record.not_before.timestamp())
    assert client.zscore(scheduled_registry(record.queue), handle.id) is not None
    shown = requests.get(f"{run.server_url}/api/call/{handle.id}", timeout=10).json()
    assert datetime.fromisoformat(shown["not_before"]) == record.not_before
    assert shown["waiting_for"] == {"kind": "delay", "until": shown["not_before"]}
    assert handle.result(timeout=30) == "later"
    assert_started_on_time(store_of.get(handle.id))
    assert client.zscore(DELAYED_KEY, handle.id) is None
    assert client.zscore(scheduled_registry(record.queue), handle.id) is None


def test_at_a_time_for_every_call_of_a_map_and_over_rest(run, store_of):
    run.worker()
    at = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    assert recovery.echo.options(at=at).map(["a", "b"]) == ["a", "b"]
    due = (datetime.now(timezone.utc) + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=5)))
    created = requests.post(f"{run.server_url}/api/call?wait=30", timeout=40, json={
        "stage": "echo", "arguments": {"args": ["rest"]}, "not_before": due.isoformat()}).json()
    assert created["status"] == "succeeded" and created["result"] == "rest"
    assert datetime.fromisoformat(created["not_before"]) == due
    record = store_of.get(created["id"])
    assert_started_on_time(record)
    later = requests.post(f"{run.server_url}/api/call", timeout=10, json={
        "stage": "echo", "arguments": {"args": [1]}, "delay_seconds": 60}).json()
    assert later["status"] == "pending" and later["not_before"] > later["created_at"]
    listed = CliRunner().invoke(main, ["calls", "--server-url", run.server_url, "list"])
    (line,) = [line for line in listed.output.splitlines() if later["id"] in line]
    assert f"due {later['not_before'][:19]}" in line
    requests.post(f"{run.server_url}/api/call/{later['id']}/cancel", timeout=10).raise_for_status()


def test_a_stage_with_parameters_named_delay_and_at_takes_them_as_its_arguments(run, store_of):
    run.worker()
    handle = recovery.appointment.submit(delay=3600, at="noon")
    record = store_of.get(handle.id)
    assert record.not_before is None and record.arguments.kwargs == {"delay": 3600, "at": "noon"}
    assert handle.result(timeout=30) == {"delay": 3600, "at": "noon"}
    assert recovery.appointment(delay=60, at="dusk") == {"delay": 60, "at": "dusk"}
    # options() still delays it, its arguments as given.
    later = recovery.appointment.options(delay=1).submit(delay=0, at="now")
    record = store_of.get(later.id)
    assert abs((record.not_before - record.created_at).total_seconds() - 1) < 0.1
    assert later.result(timeout=30) == {"delay": 0, "at": "now"}
    assert_started_on_time(store_of.get(later.id))


def test_a_delayed_child_is_queued_and_its_parent_waits_for_it(run, store_of):
    run.worker()
    handle = recovery.echo_later.submit("child", 1)
    assert handle.result(timeout=30) == "child"
    (child,) = store_of.tree(handle.id)[1:]
    # Queued when due, then taken back off its queue by its waiting parent's slot.
    assert_started_on_time(store_of.get(child.id))


def test_a_delayed_call_survives_a_control_plane_and_a_worker_restart(run, store_of):
    worker = run.worker()
    handle = recovery.echo.options(delay=6).submit("after the restart")
    worker.kill()
    run.kill_server()
    time.sleep(1)
    run.restart_server()
    run.worker()
    assert handle.result(timeout=30) == "after the restart"
    assert_started_on_time(store_of.get(handle.id))


def test_a_delayed_call_survives_redis_coming_back_empty(run, store_of):
    run.worker()
    handle = recovery.echo.options(delay=5).submit("rebuilt")
    run.restart_redis_empty()  # the table has it: recovery puts it back among the delayed
    assert handle.result(timeout=30) == "rebuilt"
    assert_started_on_time(store_of.get(handle.id))


def test_a_call_due_in_the_table_but_left_among_the_delayed_ones_is_queued(run, store_of):
    """A wait woken early (its event came) while Redis was away: the table says due,
    Redis still holds the job until later. Recovery queues it within a lease or two."""
    run.worker()
    handle = recovery.echo.options(delay=3600).submit("woken")
    time.sleep(2.5)  # older than a lease: recovery's routine check looks at it
    store_of.wake([handle.id], datetime.now(timezone.utc))  # the table only
    assert handle.result(timeout=30) == "woken"


def test_a_cancelled_delayed_call_never_runs(run, store_of):
    run.worker()
    handle = recovery.echo.options(delay=1).submit("never")
    requests.post(f"{run.server_url}/api/call/{handle.id}/cancel", timeout=10).raise_for_status()
    with pytest.raises(CallCancelled):
        handle.result(timeout=10)
    time.sleep(1.5)
    record = store_of.get(handle.id)
    assert (record.status, record.started_at) == ("cancelled", None)
    assert redis.Redis.from_url(run.redis_url).zscore(DELAYED_KEY, handle.id) is None


@pytest.mark.parametrize(("options", "kind", "words"), [
    ({"delay": -1}, ValueError, "delay must be between 0 and"),
    ({"delay": float("inf")}, ValueError, "delay must be between 0 and"),
    ({"delay": True}, TypeError, "delay must be a number of seconds"),
    ({"at": datetime(2030, 1, 1)}, ValueError, "has no timezone"),
    ({"at": "2030-01-01T00:00:00Z"}, TypeError, "at must be a datetime"),
    ({"delay": 1, "at": datetime(2030, 1, 1, tzinfo=timezone.utc)}, TypeError, "not both"),
])
def test_bad_options_are_refused_when_given(options, kind, words):
    with pytest.raises(kind, match=words):
        recovery.echo.options(**options)


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"delay_seconds": -1}, "delay_seconds", "greater than or equal to 0"),
    ({"not_before": "2030-01-01T00:00:00"}, "not_before", "with its UTC offset"),
    ({"not_before": "2030-01-01T00:00:00Z", "delay_seconds": 1}, "delay_seconds", "not both"),
    ({"delay_seconds": 1, "run_mode": "inline", "worker": "w"}, "delay_seconds", "runs now"),
])
def test_bad_delays_over_rest_are_refused_and_change_nothing(run, store_of, body, field, words):
    before = store_of.list(CallQuery(), limit=1)[1]
    answer = requests.post(f"{run.server_url}/api/call", timeout=10,
                           json={"stage": "echo", "id": "refused-delay", **body})
    assert answer.status_code in (400, 422)
    errors = answer.json()["errors"]["json"]
    assert words in " ".join(errors[field])
    assert store_of.get("refused-delay") is None
    assert store_of.list(CallQuery(), limit=1)[1] == before
