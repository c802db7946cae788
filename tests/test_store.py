"""The audit store's contract, against whichever database this session runs on
(SQLite by default; PostgreSQL when CALLPLANE_TEST_POSTGRES is set)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy.exc

from controlplane.store import Store, make_engine, utcnow
from controlplane.store.reads import CallQuery
from sdk.records import CallRecord, ErrorRecord, Outcome
from sdk.reports import Heartbeat, StartReport
from sdk.wire import RunMode, Status

LOST = ErrorRecord("callplane.WorkerLost", "gone")


@pytest.fixture(scope="module")
def store(database_url):
    store = Store(make_engine(database_url))
    yield store
    store.engine.dispose()


def new_call(store, call_id=None, **extra):
    call_id = call_id or uuid.uuid4().hex
    fields = {"root_stage_run_id": call_id, "queue": "any.s", "created_at": utcnow(), **extra}
    store.insert([CallRecord(call_id, "s", Status.PENDING, **fields)])
    return call_id


def finish(call_id, status=Status.SUCCEEDED, worker="w", attempt=1, **fields):
    now = utcnow()
    return Outcome(call_id, "s", status, worker=worker, attempt=attempt, started_at=now,
                   finished_at=now, **fields)


def test_insert_twice_is_an_integrity_error(store):
    call_id = new_call(store)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        new_call(store, call_id)


def test_start_happens_once(store):
    call_id = new_call(store)
    assert store.start(call_id, "w1", utcnow())
    assert not store.start(call_id, "w2", utcnow())
    assert store.get(call_id).worker == "w1"


def test_finish_needs_running_unless_a_worker_reports_it(store):
    call_id = new_call(store)
    outcome = finish(call_id, result={"k": [1]})
    assert not store.finish(call_id, outcome)
    assert store.get(call_id).status is Status.PENDING
    assert store.finish_reported(call_id, outcome)
    record = store.get(call_id)
    assert record.status is Status.SUCCEEDED and record.result == {"k": [1]}
    assert record.started_at is not None and record.finished_at.tzinfo is not None
    assert not store.finish_reported(call_id, outcome)  # one completion only


def test_reports_apply_in_one_transaction_and_name_the_finished_calls(store):
    a, b, c = new_call(store), new_call(store), new_call(store)
    now = utcnow()
    finished = store.apply_reports([
        (a, StartReport("w", now)),
        (a, finish(a, Status.FAILED, error=ErrorRecord("E", "m"))),
        (a, finish(a, worker="w2")),
        (b, StartReport("w", now)),
        (c, StartReport("w", now, RunMode.INLINE)),
    ])
    assert [call.id for call in finished] == [a] and finished[0] == store.get(a)
    assert store.get(a).status is Status.FAILED and store.get(b).status is Status.RUNNING
    assert (store.get(c).status, store.get(c).run_mode) == (Status.RUNNING, RunMode.INLINE)


def test_tree_and_list(store):
    root = new_call(store)
    kids = [new_call(store, parent_stage_run_id=root, root_stage_run_id=root, position=i)
            for i in range(3)]
    assert [c.id for c in store.tree(root)] == [root, *kids]
    calls, total = store.list(CallQuery(parent_stage_run_id=root), offset=1, limit=1)
    assert total == 3 and calls[0].id == kids[1]


def test_a_report_that_cannot_be_recorded_does_not_stop_the_others_and_still_ends_its_call(store):
    import fakeredis

    from sdk.records import to_json
    from sdk.transport import Transport

    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    transport.events.ensure_group()
    good, bad, garbled = new_call(store), new_call(store), new_call(store)
    recorder_of(store, transport, 30).record([
        # "pending" is a status, but no outcome of a running call: the store refuses it.
        ("1-0", {"kind": "finish", "id": bad, "body": to_json(finish(bad, Status.PENDING))}),
        ("2-0", {"kind": "finish", "id": garbled, "body": '{"status": "no-such-status"}'}),
        ("3-0", {"kind": "finish", "id": good, "body": to_json(finish(good))}),
    ])
    assert store.get(good).status is Status.SUCCEEDED
    assert store.get(garbled).status is Status.PENDING  # not callplane's: dropped, and logged
    # The refused finish still ends its call, with the reason.
    refused = store.get(bad)
    assert refused.status is Status.FAILED
    assert refused.error.type == "callplane.UnrecordableOutcome"
    assert "refused this call's outcome" in refused.error.message


def test_reports_count_only_for_the_current_attempt_of_its_worker(store):
    call_id = new_call(store)
    now = utcnow()
    assert not store.start(call_id, "w1", now, attempt=2)  # not the current attempt
    assert store.start(call_id, "w1", now, attempt=1, lease_until=now + timedelta(seconds=5))
    assert not store.finish_reported(call_id, finish(call_id, worker="w2"))  # another worker's
    assert not store.finish_reported(call_id, finish(call_id, worker="w1", attempt=2))
    later = now + timedelta(seconds=60)
    store.apply_reports([("w2", Heartbeat("w2", [(call_id, 1)]))], later)
    assert store.get(call_id).lease_expires_at < later  # only its holder renews a lease
    store.apply_reports([("w1", Heartbeat("w1", [(call_id, 1)]))], later)
    assert store.get(call_id).lease_expires_at == later
    assert store.finish_reported(call_id, finish(call_id, worker="w1"))
    assert store.get(call_id).lease_expires_at is None


def test_an_attempt_is_given_up_once_and_the_last_one_fails_the_call(store):
    call_id = new_call(store)
    for attempt in (1, 2):
        now = utcnow()
        assert store.start(call_id, f"w{attempt}", now, attempt=attempt, lease_until=now)
        assert store.end_attempt(call_id, attempt, "w9", LOST, 2) is None  # not its worker
        assert store.end_attempt(call_id, attempt, None, LOST, 2,
                                 expired_before=now - timedelta(seconds=1)) is None  # lease not over
        record = store.end_attempt(call_id, attempt, f"w{attempt}", LOST, 2)
        assert store.end_attempt(call_id, attempt, f"w{attempt}", LOST, 2) is None  # once
    assert (record.status, record.attempt, record.error) == (Status.FAILED, 2, LOST)
    assert [(a.attempt, a.worker, a.status) for a in store.attempts(call_id)] == [(1, "w1", "lost")]


def test_reports_a_dead_recorder_left_are_recorded_by_another(store, redis_url):
    import time

    from sdk.records import to_json
    from sdk.transport import Transport
    from sdk.transport.keys import EVENTS_STREAM

    # A real redis-server (fakeredis lacks XAUTOCLAIM), in a database of its own.
    transport = Transport.from_url(redis_url.rsplit("/", 1)[0] + "/8")
    transport.redis.flushdb()
    transport.events.ensure_group()
    call_id = new_call(store)
    transport.redis.xadd(EVENTS_STREAM, {"kind": "finish", "id": call_id,
                                         "body": to_json(finish(call_id))})
    assert transport.events.read("dead", 10, 100)  # handed to a recorder that then died
    recorder = recorder_of(store, transport, 0.1)
    time.sleep(0.2)
    assert recorder.take_over_stale() == 1
    assert store.get(call_id).status is Status.SUCCEEDED
    assert recorder.take_over_stale() == 0  # acknowledged once recorded


def test_a_stale_finish_in_a_batch_does_not_hide_the_current_attempts_reports(store):
    call_id = new_call(store)
    assert store.start(call_id, "w1", utcnow(), attempt=1, lease_until=utcnow())
    assert store.end_attempt(call_id, 1, "w1", LOST, 3).attempt == 2
    finished = store.apply_reports([
        (call_id, finish(call_id, worker="w1", attempt=1, result="stale")),
        (call_id, StartReport("w2", utcnow(), attempt=2)),
        (call_id, finish(call_id, worker="w2", attempt=2, result="current")),
    ])
    record = store.get(call_id)
    assert [call.id for call in finished] == [call_id]
    assert (record.attempt, record.worker, record.result) == (2, "w2", "current")


def test_an_attempt_finished_in_redis_but_never_recorded_is_recorded_from_its_job(store):
    import fakeredis

    from controlplane.recovery import Recovery
    from sdk.records import CallMessage
    from sdk.transport import FinishReport, Transport

    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    call_id = new_call(store)
    long_ago = utcnow() - timedelta(seconds=120)
    message = CallMessage(id=call_id, stage="s")
    transport.queues.enqueue([message], long_ago)
    transport.queues.claim(message.queue, call_id, StartReport("w1", long_ago))
    assert store.start(call_id, "w1", long_ago, lease_until=long_ago + timedelta(seconds=30))
    outcome = Outcome(call_id, "s", Status.SUCCEEDED, result=7, worker="w1", started_at=long_ago,
                      finished_at=long_ago)
    # The worker finished in Redis; its report never reached the table.
    assert transport.queues.finish(FinishReport.of(message.queue, outcome)) == 1
    Recovery(store, transport, lost_attempts=3, lease_seconds=30).give_up_expired()
    record = store.get(call_id)
    assert (record.status, record.result, record.attempt) == (Status.SUCCEEDED, 7, 1)


def recorder_of(store, transport, lease_seconds: float, waiters=None):
    from controlplane.recorder import Recorder
    from controlplane.recovery import Recovery
    from sdk.waiters import Waiters

    waiters = waiters or Waiters(transport, "callplane:test-done", recheck_seconds=1)
    return Recorder(store, transport, waiters, Recovery(store, transport, 3, lease_seconds),
                    lease_seconds)


def test_the_recorder_hands_a_finished_call_to_its_processs_waiters(store, redis_url):
    from sdk.records import to_json
    from sdk.transport import Transport
    from sdk.waiters import Waiters
    from tests.conftest import redis_database

    # A real redis-server, in a database of its own.
    transport = Transport.from_url(redis_database(redis_url, 9))
    transport.redis.flushdb()
    transport.events.ensure_group()
    waiters = Waiters(transport, "callplane:test-done", recheck_seconds=1)
    recorder = recorder_of(store, transport, 30, waiters)
    call_id, other = new_call(store), new_call(store)
    with waiters.watching([call_id]) as watch:
        recorder.record([("1-0", {"kind": "finish", "id": call_id,
                                  "body": to_json(finish(call_id, result=7))})])
        assert watch.next() == {call_id}
        # What the waiter answers with needs no read: it is the row as recorded.
        assert watch.delivered == {call_id: store.get(call_id)}
        assert watch.delivered[call_id].result == 7
    assert store.get(other).status is Status.PENDING


def in_place(parent: str, root: str) -> CallRecord:
    """A call a worker created running in place under `parent`."""
    now = utcnow()
    return CallRecord(uuid.uuid4().hex, "s", Status.RUNNING, parent_stage_run_id=parent,
                      root_stage_run_id=root, position=0, parent_attempt=1, queue="any.s",
                      worker="w", run_mode=RunMode.INLINE, created_at=now, started_at=now,
                      lease_expires_at=now + timedelta(seconds=30))


def test_calls_created_in_place_are_written_once_whichever_report_comes_first(store):
    from sdk.reports import CreatedReport

    root = new_call(store)
    parent = in_place(root, root)
    child = in_place(parent.id, root)
    # The child's finish, carrying the creation of it and of its in-place parent,
    # is recorded before either creation report (a recorder died holding those).
    finished = store.apply_reports([
        (child.id, CreatedReport([parent, child])),
        (child.id, finish(child.id, result="done")),
    ])
    assert [call.id for call in finished] == [child.id]
    # The creation reports come late, and twice: they change nothing.
    store.apply_reports([(parent.id, CreatedReport([parent])),
                         (child.id, CreatedReport([parent, child])),
                         (child.id, CreatedReport([parent, child]))])
    assert store.get(child.id).status is Status.SUCCEEDED and store.get(child.id).result == "done"
    assert store.get(parent.id).status is Status.RUNNING
    assert store.get(child.id).parent_stage_run_id == parent.id


def test_calls_created_in_place_under_a_cancelled_call_are_recorded_cancelled(store):
    from sdk.reports import CreatedReport

    root = new_call(store)
    assert store.start(root, "w", utcnow())
    parent = in_place(root, root)
    child = in_place(parent.id, root)
    store.cancel([root], ErrorRecord("callplane.CallCancelled", "cancelled"))
    # Their creations come after the cancel, the child's finish with them.
    store.apply_reports([(child.id, CreatedReport([parent, child])),
                         (child.id, finish(child.id, result="too late"))])
    for call_id in (parent.id, child.id):
        record = store.get(call_id)
        assert record.status is Status.CANCELLED and record.error.type == "callplane.CallCancelled"
    assert store.get(child.id).result is None


def test_a_report_the_recorder_cannot_read_is_set_aside_and_the_rest_are_recorded(
    store, redis_url, monkeypatch
):
    from click.testing import CliRunner

    from controlplane.cli import main
    from sdk.records import to_json
    from sdk.transport import Transport
    from sdk.transport.keys import EVENTS_STREAM

    url = redis_url.rsplit("/", 1)[0] + "/8"
    transport = Transport.from_url(url)
    transport.redis.flushdb()
    transport.events.ensure_group()
    poisoned, fine = new_call(store), new_call(store)
    deep = "[" * 5000 + "]" * 5000  # a poison report: no finish, and deep enough to hurt
    transport.redis.xadd(EVENTS_STREAM, {"kind": "finish", "id": poisoned, "body": deep})
    transport.redis.xadd(EVENTS_STREAM, {"kind": "finish", "id": fine,
                                         "body": to_json(finish(fine, result=1))})
    recorder = recorder_of(store, transport, 30)
    recorder.record(transport.events.read(recorder.consumer, 10, 100))
    assert store.get(fine).status is Status.SUCCEEDED
    assert store.get(poisoned).status is Status.PENDING
    assert transport.events.read(recorder.consumer, 10, 0, own_pending=True) == []  # acknowledged
    total, (letter,) = transport.events.dead_letters(5)
    assert total == 1 and letter[1]["id"] == poisoned
    assert letter[1]["reason"].startswith("finish report is not")
    monkeypatch.setenv("REDIS_URL", url)
    shown = CliRunner().invoke(main, ["recorder", "dead-letters"])
    assert shown.exit_code == 0, shown.output
    assert "1 report(s) set aside" in shown.output
    assert f"finish {poisoned}: finish report is not" in shown.output


def _two_control_planes(redis_url: str, tmp_path, lease: float):
    """A table of its own (the session's control plane sweeps the shared one), a
    call running on w1 whose lease ended, and two control planes' recoveries."""
    from controlplane.migrate import upgrade
    from controlplane.recovery import Recovery
    from controlplane.store import Store, make_engine
    from sdk.transport import Transport

    url = f"sqlite:///{tmp_path / 'callplane.db'}"
    upgrade(url)
    store = Store(make_engine(url))
    transport = Transport.from_url(redis_url.rsplit("/", 1)[0] + "/8")
    transport.redis.flushdb()
    call_id = new_call(store)
    assert store.start(call_id, "w1", utcnow(), lease_until=utcnow() - timedelta(seconds=5))
    return store, transport, call_id, *(Recovery(store, transport, 3, lease) for _ in range(2))


def test_no_lease_is_given_up_within_a_lease_of_the_database_or_redis_being_away(
    redis_url, tmp_path
):
    from controlplane.errors import StoreUnavailable

    lease = 0.5
    store, _, call_id, here, elsewhere = _two_control_planes(redis_url, tmp_path, lease)
    here.part_away(StoreUnavailable("the audit database is unavailable"))
    # Neither this control plane nor another gives the expired lease up meanwhile:
    # the worker's heartbeats may be waiting in Redis to be recorded.
    assert here.give_up_expired() == 0 and elsewhere.give_up_expired() == 0
    assert store.get(call_id).status is Status.RUNNING
    time.sleep(lease + 0.2)
    assert elsewhere.give_up_expired() == 1  # a lease after, a lease that ended is lost
    assert store.get(call_id).attempt == 2
    store.engine.dispose()


def test_one_control_plane_at_a_time_sweeps_and_another_takes_over(redis_url, tmp_path):
    from controlplane.recovery import DUTY

    lease = 0.6
    store, transport, call_id, here, elsewhere = _two_control_planes(redis_url, tmp_path, lease)
    here.sweep()
    assert transport.duties.holder(DUTY) == here.holder
    assert store.get(call_id).attempt == 2  # the holder gave the ended lease up
    assert store.start(call_id, "w2", utcnow(), attempt=2,
                       lease_until=utcnow() - timedelta(seconds=5))
    elsewhere.sweep()  # not the holder: it does nothing
    assert store.get(call_id).attempt == 2
    time.sleep(lease * 1.5 + 0.1)  # the holder stopped sweeping: its duty lapses
    elsewhere.sweep()
    assert transport.duties.holder(DUTY) == elsewhere.holder
    assert store.get(call_id).attempt == 3
    store.engine.dispose()



def test_a_large_result_comes_in_chunks_of_the_size_asked_then_the_rest(store):
    """controlplane.store.streaming: PostgreSQL streams the rows as it makes them,
    SQLite hands them over in parts; both by the chunk, with bound values."""
    import sqlalchemy as sa

    from controlplane.store.streaming import chunks
    from controlplane.tables import stage_runs

    root = new_call(store)
    children = [uuid.uuid4().hex for _ in range(449)]
    store.insert([CallRecord(child, "s", Status.PENDING, root_stage_run_id=root,
                             parent_stage_run_id=root, queue="any.s", created_at=utcnow())
                  for child in children])
    query = sa.select(stage_runs.c.id).where(stage_runs.c.root_stage_run_id == root)
    with store.engine.connect() as conn:
        parts = [[row[0] for row in chunk] for chunk in chunks(conn, query, 200)]
        # The connection is still good for the next query.
        assert conn.execute(sa.select(sa.func.count()).where(
            stage_runs.c.root_stage_run_id == root)).scalar() == 450
    assert [len(part) for part in parts] == [200, 200, 50]
    assert sorted(call_id for part in parts for call_id in part) == sorted([root, *children])


def test_a_tree_shows_arguments_written_with_the_call_or_cut_from_older_rows(store):
    """Rows written before migration 0012 have no stored preview: the tree cuts
    one from their arguments' stored text (nested values as the database keeps
    them); a sleep's arguments are read for what it waits for."""
    from controlplane.tables import stage_runs
    from sdk.records import Arguments
    from sdk.waits import SLEEP_STAGE

    root = new_call(store, arguments=Arguments([1, "x"], {"key": [2]}))
    older, sleep = uuid.uuid4().hex, uuid.uuid4().hex
    store.insert([CallRecord(older, "s", Status.PENDING, Arguments([None], {"k": {"a": 1}}),
                             root_stage_run_id=root, parent_stage_run_id=root, position=0,
                             queue="any.s", created_at=utcnow()),
                  CallRecord(sleep, SLEEP_STAGE, Status.RUNNING, Arguments([5.0]),
                             root_stage_run_id=root, parent_stage_run_id=root, position=1,
                             queue="any.s", created_at=utcnow())])
    with store.engine.begin() as conn:
        conn.execute(stage_runs.update().where(stage_runs.c.id == older).values(arguments_preview=None))
    for _ in range(2):  # read whole, then (on PostgreSQL) from the nodes kept
        subtree = store.subtree(root)
        shown = {node.id: node.arguments for node in subtree.calls}
        assert shown == {root: '(1, "x", key=[2])', older: '(null, k={"a": 1})', sleep: "(5.0)"}
        assert subtree.steps == {sleep: Arguments([5.0])}


@pytest.mark.parametrize(("microsecond", "took"), [
    (123_457, timedelta(microseconds=1)), (0, timedelta(seconds=1, microseconds=1)),
    (120_000, timedelta(days=2, microseconds=999_999)), (999_999, timedelta(microseconds=1))])
def test_a_tree_reads_times_and_durations_as_python_writes_them(store, microsecond, took):
    """The database renders a tree's times and durations (controlplane.store.sqltime):
    the same text and milliseconds as isoformat() and round(ms, 3) in Python, with
    or without microseconds, and with trailing zeros."""
    started = utcnow().replace(microsecond=microsecond)
    call_id = new_call(store, started_at=started, finished_at=started + took)
    (node,) = store.subtree(call_id).calls
    assert (node.started_at, node.finished_at) == (started.isoformat(), (started + took).isoformat())
    assert node.duration_ms == round(took.total_seconds() * 1000, 3)
