"""The audit store's contract, against whichever database this session runs on
(SQLite by default; PostgreSQL when CALLPLANE_TEST_POSTGRES is set)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy.exc

from controlplane.store import Store, make_engine, utcnow


@pytest.fixture(scope="module")
def store(database_url):
    store = Store(make_engine(database_url))
    yield store
    store.engine.dispose()


def new_call(store, **extra):
    call_id = uuid.uuid4().hex
    record = {"id": call_id, "root_stage_run_id": call_id, "stage": "s", "arguments": {"args": [], "kwargs": {}},
              "status": "pending", "queue": "any.s", "attempt": 1, "max_attempts": 1, "created_at": utcnow(), **extra}
    store.insert([record])
    return call_id


def test_insert_twice_is_an_integrity_error(store):
    call_id = new_call(store)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        new_call(store, id=call_id)


def test_start_happens_once(store):
    call_id = new_call(store)
    assert store.start(call_id, "w1", utcnow())
    assert not store.start(call_id, "w2", utcnow())
    assert store.get(call_id)["worker"] == "w1"


def test_finish_needs_running_unless_a_worker_reports_it(store):
    call_id = new_call(store)
    outcome = {"status": "succeeded", "result": {"k": [1]}}
    assert not store.finish(call_id, outcome)
    assert store.get(call_id)["status"] == "pending"
    report = {**outcome, "worker": "w", "started_at": utcnow().isoformat()}
    assert store.finish(call_id, report, reported_by_worker=True)
    record = store.get(call_id)
    assert record["status"] == "succeeded" and record["result"] == {"k": [1]}
    assert record["started_at"] is not None and record["finished_at"].tzinfo is not None
    assert not store.finish(call_id, report, reported_by_worker=True)  # one completion only


def test_events_apply_in_one_transaction_and_report_finished_calls(store):
    a, b, c = new_call(store), new_call(store), new_call(store)
    now = utcnow().isoformat()
    finished = store.apply_events([
        ("start", a, {"worker": "w", "started_at": now}),
        ("finish", a, {"status": "failed", "error": {"type": "E", "message": "m"}, "worker": "w",
                       "started_at": now, "finished_at": now}),
        ("finish", a, {"status": "succeeded", "worker": "w2", "started_at": now, "finished_at": now}),
        ("start", b, {"worker": "w", "started_at": now}),
        ("start", c, {"worker": "w", "started_at": now, "run_mode": "inline"}),
    ])
    assert finished == [a]
    assert store.get(a)["status"] == "failed" and store.get(b)["status"] == "running"
    assert (store.get(c)["status"], store.get(c)["run_mode"]) == ("running", "inline")


def test_tree_and_list(store):
    root = new_call(store)
    kids = [new_call(store, parent_stage_run_id=root, root_stage_run_id=root, position=i) for i in range(3)]
    assert [c["id"] for c in store.tree(root)] == [root, *kids]
    rows, total = store.list(parent_id=root, offset=1, limit=1)
    assert total == 3 and rows[0]["id"] == kids[1]


def test_a_report_that_cannot_be_recorded_does_not_stop_the_others_and_still_ends_its_call(store):
    import fakeredis

    from controlplane.recorder import Recorder
    from controlplane.recovery import Recovery
    from sdk.transport import Transport

    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    transport.ensure_recorder_group()
    good, bad = new_call(store), new_call(store)
    now = utcnow().isoformat()
    body = '{"status": "%s", "worker": "w", "started_at": "%s", "finished_at": "%s"}'
    Recorder(store, transport, Recovery(store, transport, 3, 30), 30).record([
        ("1-0", {"kind": "finish", "id": bad, "body": body % ("no-such-status", now, now)}),
        ("2-0", {"kind": "finish", "id": good, "body": body % ("succeeded", now, now)}),
    ])
    assert store.get(good)["status"] == "succeeded"
    # The refused finish still ends its call, with the reason.
    refused = store.get(bad)
    assert refused["status"] == "failed"
    assert refused["error"]["type"] == "callplane.UnrecordableOutcome"
    assert "refused this call's outcome" in refused["error"]["message"]


def test_reports_count_only_for_the_current_attempt_of_its_worker(store):
    from datetime import timedelta

    call_id = new_call(store)
    now = utcnow()
    assert not store.start(call_id, "w1", now, attempt=2)  # not the current attempt
    assert store.start(call_id, "w1", now, attempt=1, lease_until=now + timedelta(seconds=5))
    stale = {"status": "succeeded", "worker": "w2", "attempt": 1, "started_at": now.isoformat()}
    assert not store.finish(call_id, stale, reported_by_worker=True)  # another worker's
    assert not store.finish(call_id, {**stale, "worker": "w1", "attempt": 2}, reported_by_worker=True)
    later = now + timedelta(seconds=60)
    store.apply_events([("heartbeat", "w2", {"worker": "w2", "calls": [[call_id, 1]]})], later)
    assert store.get(call_id)["lease_expires_at"] < later  # only its holder renews a lease
    store.apply_events([("heartbeat", "w1", {"worker": "w1", "calls": [[call_id, 1]]})], later)
    assert store.get(call_id)["lease_expires_at"] == later
    assert store.finish(call_id, {**stale, "worker": "w1"}, reported_by_worker=True)
    assert store.get(call_id)["lease_expires_at"] is None


def test_an_attempt_is_given_up_once_and_the_last_one_fails_the_call(store):
    from datetime import timedelta

    call_id = new_call(store)
    error = {"type": "callplane.WorkerLost", "message": "gone", "traceback": ""}
    for attempt in (1, 2):
        now = utcnow()
        assert store.start(call_id, f"w{attempt}", now, attempt=attempt, lease_until=now)
        assert store.end_attempt(call_id, attempt, "w9", error, 2) is None  # not its worker
        assert store.end_attempt(call_id, attempt, None, error, 2,
                                 expired_before=now - timedelta(seconds=1)) is None  # lease not over
        record = store.end_attempt(call_id, attempt, f"w{attempt}", error, 2)
        assert store.end_attempt(call_id, attempt, f"w{attempt}", error, 2) is None  # once
    assert (record["status"], record["attempt"], record["error"]) == ("failed", 2, error)
    assert [(a["attempt"], a["worker"]) for a in store.attempts(call_id)] == [(1, "w1")]


def test_reports_a_dead_recorder_left_are_recorded_by_another(store, redis_url):
    import time

    from controlplane.recorder import Recorder
    from controlplane.recovery import Recovery
    from sdk.transport import EVENTS_STREAM, Transport

    # A real redis-server (fakeredis lacks XAUTOCLAIM), in a database of its own.
    transport = Transport.from_url(redis_url.rsplit("/", 1)[0] + "/8")
    transport.redis.flushdb()
    transport.ensure_recorder_group()
    call_id = new_call(store)
    now = utcnow().isoformat()
    body = f'{{"status": "succeeded", "worker": "w", "started_at": "{now}", "finished_at": "{now}"}}'
    transport.redis.xadd(EVENTS_STREAM, {"kind": "finish", "id": call_id, "body": body})
    assert transport.read_events("dead", 10, 100)  # handed to a recorder that then died
    recorder = Recorder(store, transport, Recovery(store, transport, 3, 0.1), 0.1)
    time.sleep(0.2)
    assert recorder.take_over_stale() == 1
    assert store.get(call_id)["status"] == "succeeded"
    assert recorder.take_over_stale() == 0  # acknowledged once recorded


def test_a_stale_finish_in_a_batch_does_not_hide_the_current_attempts_reports(store):
    call_id = new_call(store)
    assert store.start(call_id, "w1", utcnow(), attempt=1, lease_until=utcnow())
    error = {"type": "callplane.WorkerLost", "message": "gone", "traceback": ""}
    assert store.end_attempt(call_id, 1, "w1", error, 3)["attempt"] == 2
    now = utcnow().isoformat()
    report = {"status": "succeeded", "started_at": now, "finished_at": now}
    finished = store.apply_events([
        ("finish", call_id, {**report, "worker": "w1", "attempt": 1, "result": "stale"}),
        ("start", call_id, {"worker": "w2", "started_at": now, "attempt": 2}),
        ("finish", call_id, {**report, "worker": "w2", "attempt": 2, "result": "current"}),
    ])
    record = store.get(call_id)
    assert finished == [call_id]
    assert (record["attempt"], record["worker"], record["result"]) == (2, "w2", "current")


def test_an_attempt_finished_in_redis_but_never_recorded_is_recorded_from_its_job(store):
    import json
    from datetime import timedelta

    import fakeredis

    from controlplane.recovery import Recovery
    from sdk.transport import FinishReport, StartReport, Transport
    from sdk.wire import CallMessage

    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    call_id = new_call(store)
    long_ago = utcnow() - timedelta(seconds=120)
    message = CallMessage(id=call_id, stage="s")
    transport.enqueue([message], long_ago)
    transport.claim(message.queue, call_id, StartReport("w1", long_ago))
    assert store.start(call_id, "w1", long_ago, lease_until=long_ago + timedelta(seconds=30))
    outcome = {"status": "succeeded", "result": 7, "worker": "w1", "attempt": 1,
               "started_at": long_ago.isoformat(), "finished_at": long_ago.isoformat()}
    # The worker finished in Redis; its report never reached the table.
    assert transport.finish(FinishReport(message.queue, call_id, "w1", 1, json.dumps(outcome),
                                         True, long_ago)) == 1
    Recovery(store, transport, lost_attempts=3, lease_seconds=30).give_up_expired()
    record = store.get(call_id)
    assert (record["status"], record["result"], record["attempt"]) == ("succeeded", 7, 1)
