"""Waiting for events: `runner.wait_for_event(KEY)` in a stage gives its worker slot
back until an event is sent to KEY (POST /api/events/<key>, `callplane events
send`), then the call runs again from the top with its payload; an event sent
before anyone waits is kept for the first wait; a timeout raises EventTimeout in
the stage. On the cluster of tests/cluster.py, with one worker slot."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from controlplane.cli import main
from controlplane.local_cluster import wait_until
from controlplane.tables import event_waits, events
from sdk.errors import CallplaneError, StageFailed
from tests.cluster import LEASE_SECONDS, executions
from tests.workflows import recovery


def a_key() -> str:
    return f"approval:{uuid.uuid4().hex[:12]}"


def waiting(store, call_id: str) -> bool:
    record = store.get(call_id)
    return record.status == "pending" and record.not_before is not None


def kept_events(store, key: str) -> list:
    """The payloads of the events sent to `key` that no wait has had yet."""
    with store.engine.connect() as conn:
        return [row.payload for row in conn.execute(
            sa.select(events.c.payload).where(events.c.key == key, events.c.delivered_to.is_(None))
            .order_by(events.c.id))]


def send(server_url: str, key: str, payload) -> dict:
    answer = requests.post(f"{server_url}/api/events/{key}", json=payload, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_event_sent_to_a_waiting_call_resumes_it_with_the_payload(run, store_of, tmp_path):
    run.worker()  # one slot
    log, key = tmp_path / "tokens", a_key()
    waiter = recovery.awaits_approval.submit(str(log), key)
    wait_until(lambda: waiting(store_of, waiter.id), "the call waiting")
    shown = requests.get(f"{run.server_url}/api/call/{waiter.id}", timeout=10).json()
    assert shown["waiting_for"] == {"kind": "event", "key": key, "until": None}
    (node,) = [n for n in requests.get(f"{run.server_url}/api/call/{waiter.id}/tree",
                                       timeout=10).json()["calls"] if n["id"] == waiter.id]
    assert node["waiting_for"]["key"] == key
    tree = CliRunner().invoke(main, ["calls", "--server-url", run.server_url, "tree", waiter.id])
    assert f"waiting for event {key}" in tree.output.splitlines()[0]
    listed = CliRunner().invoke(main, ["calls", "--server-url", run.server_url, "list"])
    assert any(waiter.id in line and f"waiting for event {key}" in line
               for line in listed.output.splitlines())
    others = [recovery.echo.submit(i) for i in range(5)]  # the slot is free meanwhile
    assert [handle.result(timeout=30) for handle in others] == list(range(5))

    sent = CliRunner().invoke(main, ["events", "--server-url", run.server_url, "send", key,
                                     '{"approved": true, "by": "ana"}'])
    assert sent.exit_code == 0, sent.output
    step = store_of.child_at(waiter.id, 1)
    assert sent.output.strip() == f"delivered to the wait {step.id}"
    before, payload, after = waiter.result(timeout=30)
    assert payload == {"approved": True, "by": "ana"}
    assert [before, after] == [store_of.get(n.id).result for n in store_of.tree(waiter.id)
                               if n.stage == "token"]
    assert len(executions(log)) == 2  # the first token was not made again
    assert [(n.stage, n.status) for n in store_of.tree(waiter.id)[1:]] == [
        ("token", "succeeded"), ("callplane.event", "succeeded"), ("token", "succeeded")]
    assert store_of.get(step.id).result == payload
    assert kept_events(store_of, key) == []  # delivered, not kept too


def test_an_event_sent_before_the_wait_is_kept_for_the_first_waits_in_order(run, store_of, tmp_path):
    run.worker()
    key = a_key()
    first = send(run.server_url, key, "first")
    assert first["delivered_to"] is None and first["kept_until"]
    for _ in range(2):  # a send repeated with its idempotency key is one event
        again = requests.post(f"{run.server_url}/api/events/{key}", json=["second"], timeout=10,
                              headers={"Idempotency-Key": "send-2"})
        assert again.status_code == 200 and again.json()["delivered_to"] is None
    assert kept_events(store_of, key) == ["first", ["second"]]
    one = recovery.awaits_approval(str(tmp_path / "one"), key)
    two = recovery.awaits_approval(str(tmp_path / "two"), key)
    assert (one[1], two[1]) == ("first", ["second"])
    assert kept_events(store_of, key) == []


def test_a_wait_in_a_call_run_in_place_wakes_the_calls_it_runs_in(run, store_of, tmp_path):
    run.worker()
    log, key = tmp_path / "tokens", a_key()
    outer = recovery.calls_an_approver.submit(str(log), key)
    wait_until(lambda: waiting(store_of, outer.id), "the calls waiting")
    shown = requests.get(f"{run.server_url}/api/call/{outer.id}", timeout=10).json()
    assert shown["waiting_for"]["key"] == key  # the wait of the call it runs in place
    send(run.server_url, key, 7)
    assert outer.result(timeout=30)[1] == 7
    assert [n.stage for n in store_of.tree(outer.id)] == [
        "calls_an_approver", "awaits_approval", "token", "callplane.event", "token"]
    assert len(executions(log)) == 2


def test_a_worker_killed_while_its_call_waits_changes_nothing(run, store_of, tmp_path):
    first = run.worker()
    log, key = tmp_path / "tokens", a_key()
    waiter = recovery.awaits_approval.submit(str(log), key)
    wait_until(lambda: waiting(store_of, waiter.id), "the call waiting")
    first.kill()
    first.wait()
    run.worker()
    time.sleep(LEASE_SECONDS * 2)  # past the dead worker's lease: recovery has swept meanwhile
    send(run.server_url, key, "late")
    assert waiter.result(timeout=30)[1] == "late"
    assert len(executions(log)) == 2
    assert store_of.get(waiter.id).attempt == 1  # run again by its event, not as lost
    assert "lost" not in [attempt.status for attempt in store_of.attempts(waiter.id)]


def test_a_cancelled_waiting_run_retried_by_hand_runs_now_and_waits_again(run, store_of, tmp_path):
    run.worker()
    key = a_key()
    waiter = recovery.awaits_approval.submit(str(tmp_path / "tokens"), key)
    wait_until(lambda: waiting(store_of, waiter.id), "the call waiting")
    requests.post(f"{run.server_url}/api/call/{waiter.id}/cancel", timeout=10).raise_for_status()
    retried = requests.post(f"{run.server_url}/api/call/{waiter.id}/retry", timeout=10).json()
    assert retried["attempt"] == 2 and retried["not_before"] is None  # not years from now
    wait_until(lambda: store_of.get(waiter.id).attempt == 2 and waiting(store_of, waiter.id),
               "the retried call waiting again")
    assert store_of.child_at(waiter.id, 1).attempt == 2  # its wait, made again
    send(run.server_url, key, "second time")
    assert waiter.result(timeout=30)[1] == "second time"


def test_cancelling_the_wait_alone_ends_it_at_once_with_call_cancelled(run, store_of, tmp_path):
    run.worker()
    waiter = recovery.awaits_approval.submit(str(tmp_path / "tokens"), a_key())
    wait_until(lambda: waiting(store_of, waiter.id), "the call waiting")
    step = store_of.child_at(waiter.id, 1)
    requests.post(f"{run.server_url}/api/call/{step.id}/cancel", timeout=10).raise_for_status()
    with pytest.raises(CallplaneError, match="the wait for event .* was cancelled"):
        waiter.result(timeout=30)  # now, not at the end of a wait without a timeout


def test_a_wait_times_out_with_event_timeout_and_a_later_event_is_kept(run, store_of):
    run.worker()
    key = a_key()
    handle = recovery.times_out_waiting.submit(key, 1)
    wait_until(lambda: waiting(store_of, handle.id), "the call waiting")
    until = requests.get(f"{run.server_url}/api/call/{handle.id}", timeout=10).json()["waiting_for"]
    assert until["kind"] == "event" and until["until"] is not None
    assert handle.result(timeout=30) == f"EventTimeout: no event was sent to {key!r} within 1 s"
    step = store_of.child_at(handle.id, 0)
    assert (step.stage, step.status, step.error.type) == (
        "callplane.event", "failed", "callplane.EventTimeout")
    assert send(run.server_url, key, "too late")["delivered_to"] is None
    assert kept_events(store_of, key) == ["too late"]


def test_a_run_that_waits_for_another_key_than_before_fails_naming_the_position(
    run, tmp_path
):
    run.worker()
    key = a_key()
    with pytest.raises(StageFailed, match=(
            f"position 0 of call .* was a wait for event '{key}' in an earlier run, and is a "
            f"wait for event '{key}-other' now")):
        recovery.waits_for_another_key(str(tmp_path / "log"), key)


def test_events_sent_at_once_to_as_many_waits_each_reach_one(run, store_of, tmp_path):
    """Senders and waiters racing on one key: every wait gets one event, none twice."""
    run.worker("--concurrency", "4")
    key = a_key()
    waiters = [recovery.awaits_approval.submit(str(tmp_path / f"w{i}"), key) for i in range(4)]
    wait_until(lambda: sum(waiting(store_of, w.id) for w in waiters) >= 2, "some calls waiting")
    senders = [threading.Thread(target=send, args=(run.server_url, key, i)) for i in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert sorted(w.result(timeout=30)[1] for w in waiters) == [0, 1, 2, 3]
    assert kept_events(store_of, key) == []
    with store_of.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(event_waits)
                            .where(event_waits.c.key == key)).scalar_one() == 0


@pytest.mark.parametrize(("key", "body", "words"), [
    ("k" * 201, b"1", "an event key is 1 to 200 letters, digits and _ . : @ -, not 'kkkk"),
    ("two%20words", b"1", "not 'two words'"),
    ("approval:1", b"{not json", "Invalid JSON body"),
    ("approval:1", b"[NaN]", "NaN is not a JSON number"),
    ("approval:1", b'"\\u0000"', "NUL"),
])
def test_a_bad_event_is_refused_saying_why_and_changes_nothing(run, store_of, key, body, words):
    answer = requests.post(f"{run.server_url}/api/events/{key}", data=body, timeout=10,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert words in json.dumps(answer.json(), ensure_ascii=False).replace('\\"', '"')
    assert kept_events(store_of, key) == []


def test_waiting_outside_a_stage_or_for_nonsense_is_refused(run):
    with pytest.raises(RuntimeError, match="waits in a stage running on a worker"):
        recovery.runner.wait_for_event("approval:1")
    with pytest.raises(ValueError, match="an event key is 1 to 200"):
        recovery.runner.wait_for_event("k" * 201)
    with pytest.raises(ValueError, match="takes 0 to"):
        recovery.runner.wait_for_event("approval:1", timeout=-1)
    refused = CliRunner().invoke(main, ["events", "--server-url", run.server_url, "send",
                                        "approval:1", "{yes"])
    assert refused.exit_code == 2 and "not JSON" in refused.output
