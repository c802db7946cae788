"""sdk.transport: the scripts' logic on fakeredis (a real redis-server is in
tests/test_transport_redis.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import fakeredis
import pytest

from sdk.records import CallMessage, ErrorRecord, Outcome
from sdk.reports import StartReport
from sdk.transport import JOB_GONE, Claimed, FinishReport, Transport
from sdk.transport.keys import DELAYED_KEY, job_key, queue_key, scheduled_registry
from sdk.transport.scripts import LUA, source
from sdk.wire import RunMode, Status

pytestmark = pytest.mark.unit


@pytest.fixture
def transport():
    return Transport(fakeredis.FakeRedis(decode_responses=True))


def finished(queue, call_id, worker, attempt=1, result=None):
    at = datetime.now(timezone.utc)
    outcome = Outcome(call_id, "s", Status.SUCCEEDED, result=result, worker=worker,
                      attempt=attempt, finished_at=at)
    return FinishReport.of(queue, outcome)


def test_every_script_is_a_lua_file_of_the_package():
    files = {path.name[:-len(".lua")] for path in LUA.iterdir() if path.name.endswith(".lua")}
    assert {"enqueue", "claim", "claim_next", "finish", "finish_and_claim_next", "take_any",
            "retry", "abandon", "untracked", "announce", "promote", "hold_duty"} <= files
    assert "local function claim(" in source("claim", "claim_functions")


def test_claim_is_atomic_and_only_the_holder_can_finish(transport):
    now = datetime.now(timezone.utc)
    message = CallMessage(id="c1", stage="s")
    queues = transport.queues
    queues.enqueue([message], now)
    assert queues.pop([message.queue], 1) == (message.queue, "c1")
    first = StartReport("w1", now)
    assert queues.claim(message.queue, "c1", first) == Claimed(message.queue, "c1", message.encode(), first)
    assert queues.claim(message.queue, "c1", StartReport("w2", now)) is None
    assert queues.finish(finished(message.queue, "c1", "w2")) == 0
    assert queues.finish(finished(message.queue, "c1", "w1", attempt=2)) == 0
    assert queues.finish(finished(message.queue, "c1", "w1", result=7)) == 1
    outcomes = transport.jobs.outcomes(["c1", "gone"])
    assert list(outcomes) == ["c1"] and outcomes["c1"].result == 7
    assert queues.finish(finished(message.queue, "gone", "w1")) == JOB_GONE


def test_finishing_a_call_claims_the_next_of_the_first_queue_that_has_one(transport):
    now = datetime.now(timezone.utc)
    high, low = CallMessage(id="h1", stage="high"), CallMessage(id="l1", stage="low")
    queues = transport.queues
    queues.enqueue([low, high, CallMessage(id="h2", stage="high")], now)
    order = [high.queue, low.queue]
    start = StartReport("w1", now, RunMode.DISPATCHED)
    first = queues.claim_next(order, start)
    assert (first.queue, first.call_id) == (high.queue, "h1")
    queues.claim(high.queue, "h2", StartReport("w2", now))  # another worker got h2 first
    accepted, after = queues.finish_and_claim_next(finished(high.queue, "h1", "w1"), order, start)
    assert accepted and (after.queue, after.call_id, after.data) == (low.queue, "l1", low.encode())
    assert transport.redis.hget(job_key("l1"), "worker_name") == "w1"
    assert queues.claim_next(order, start) is None


def test_claim_next_pops_only_the_calls_it_expected_and_asks_again_when_others_took_them():
    server = fakeredis.FakeServer()
    mine, theirs = (Transport(fakeredis.FakeRedis(server=server, decode_responses=True))
                    for _ in range(2))
    now = datetime.now(timezone.utc)
    messages = [CallMessage(id=f"c{i}", stage="s") for i in range(40)]
    mine.queues.enqueue(messages, now)
    queue = messages[0].queue
    start = StartReport("w1", now)
    assert mine.queues.claim_next([queue], start).call_id == "c0"  # a miss, then its hints
    for i in range(1, 21):  # another worker takes more calls than the hints hold
        assert theirs.queues.claim_next([queue], StartReport("w2", now)).call_id == f"c{i}"
    assert mine.queues.claim_next([queue], start).call_id == "c21"
    assert mine.redis.lrange(queue_key(queue), 0, 0) == ["c22"]


def test_no_script_makes_a_key_from_its_arguments():
    """Every key a script touches is one of its KEYS (Redis Cluster routes by them):
    no script builds a key from ARGV, nor passes ARGV where a key goes."""
    for path in LUA.iterdir():
        if path.name.endswith(".lua"):
            text = path.read_text()
            assert not re.search(r"ARGV\[[^\]]+\]\s*\.\.|\.\.\s*ARGV\[", text), path.name
            # (a channel is not a key: PUBLISH names one from ARGV)
            assert not re.search(r"redis\.call\('(?!PUBLISH)\w+',\s*ARGV", text), path.name


def test_take_removes_a_queued_call_once(transport):
    message = CallMessage(id="c2", stage="s")
    transport.queues.enqueue([message], datetime.now(timezone.utc))
    assert transport.queues.take(message.queue, "c2") is True
    assert transport.queues.take(message.queue, "c2") is False


def test_pending_calls_redis_lost_track_of_are_found(transport):
    now = datetime.now(timezone.utc)
    queued, popped, started, stopped, stale = (CallMessage(id=i, stage="s") for i in "qpxyz")
    transport.queues.enqueue([queued, popped, started, stopped, stale], now)
    transport.redis.lrem(queue_key(popped.queue), 1, "p")  # popped by a worker that died
    for message in (started, stopped):
        transport.queues.claim(message.queue, message.id, StartReport("w", now))
    assert transport.jobs.abandon(stopped.queue, "y", "w", 1) is None
    pending = [(m.queue, m.id, 1) for m in (queued, popped, started, stopped)]
    pending += [(stale.queue, "z", 2), (queued.queue, "never-queued", 1)]
    assert sorted(transport.jobs.untracked(pending)) == ["never-queued", "p", "y", "z"]


def test_queueing_a_call_again_never_resets_a_job_a_worker_holds(transport):
    now = datetime.now(timezone.utc)
    message = CallMessage(id="c", stage="s")
    transport.queues.enqueue([message], now)
    assert transport.queues.claim_next([message.queue], StartReport("w1", now)).call_id == "c"
    transport.queues.enqueue([message], now)  # e.g. a rebuild that raced the claim
    assert transport.redis.hget(job_key("c"), "status") == "started"
    assert transport.redis.llen(queue_key(message.queue)) == 0
    transport.queues.enqueue([CallMessage(id="c", stage="s", attempt=2)], now)  # its next attempt
    assert transport.redis.hmget(job_key("c"), ["status", "cp_attempt"]) == ["queued", "2"]


def test_cancelled_jobs_leave_their_queue_and_say_how_they_ended(transport):
    now = datetime.now(timezone.utc)
    message = CallMessage(id="c", stage="s")
    transport.queues.enqueue([message], now)
    error = ErrorRecord("callplane.CallCancelled", "cancelled with call c")
    transport.jobs.cancel([(message.queue, Outcome("c", "s", Status.CANCELLED, error=error))], now)
    assert transport.redis.llen(queue_key(message.queue)) == 0
    assert transport.redis.hget(job_key("c"), "status") == "canceled"
    assert transport.jobs.outcomes(["c"])["c"].error == error


def test_an_unreadable_outcome_sends_the_reader_to_the_table(transport):
    transport.redis.hset(job_key("c"), mapping={"status": "finished", "cp_outcome": "{not json"})
    assert transport.jobs.outcomes(["c"]) == {}


def test_a_delayed_call_waits_until_it_is_moved_once_and_is_tracked_meanwhile(transport):
    now = datetime.now(timezone.utc)
    queues, jobs = transport.queues, transport.jobs
    soon, later = CallMessage(id="soon", stage="s"), CallMessage(id="later", stage="s")
    queues.enqueue([soon, later], now, {"soon": now, "later": now + timedelta(hours=1)})
    assert transport.redis.llen(queue_key(soon.queue)) == 0
    assert transport.redis.hget(job_key("soon"), "status") == "scheduled"
    assert jobs.untracked([(soon.queue, "soon", 1), (later.queue, "later", 1)]) == []
    assert queues.due(now, 10) == ["soon"]
    # Two clock holders overlapping (a paused one whose lease ran out) move it once.
    assert (queues.promote(["soon"], now), queues.promote(["soon"], now)) == (1, 0)
    assert transport.redis.lrange(queue_key(soon.queue), 0, -1) == ["soon"]
    assert transport.redis.zcard(scheduled_registry(soon.queue)) == 1  # "later" still waits
    transport.redis.zrem(DELAYED_KEY, "later")  # as if Redis lost it: recovery queues it again
    assert jobs.untracked([(later.queue, "later", 1)]) == ["later"]


def test_a_duty_has_one_holder_until_its_lease_ends(transport):
    duties = transport.duties
    assert duties.hold("clock", "a", 30) and duties.hold("clock", "a", 30)  # taken, renewed
    assert not duties.hold("clock", "b", 30)
    assert duties.holder("clock") == "a"
    transport.redis.delete("callplane:duty:clock")  # its lease ran out
    assert duties.hold("clock", "b", 30) and not duties.hold("clock", "a", 30)
