"""sdk.transport against a real redis-server, where fakeredis differs."""

from __future__ import annotations

from sdk.transport import Transport
from sdk.transport.keys import EVENTS_STREAM


def test_the_event_stream_is_started_anew_after_redis_lost_it(redis_url):
    # fakeredis words this error differently; a database of its own on the session's Redis.
    transport = Transport.from_url(redis_url.rsplit("/", 1)[0] + "/7")
    events = transport.events
    events.ensure_group()
    transport.redis.flushdb()  # what a restart of a Redis without persistence leaves
    assert events.read("c", 10, 10) == []
    transport.redis.xadd(EVENTS_STREAM, {"kind": "finish", "id": "x", "body": "{}"})
    assert [fields["id"] for _, fields in events.read("c", 10, 10)] == ["x"]


def _fresh(redis_url: str, number: int) -> Transport:
    transport = Transport.from_url(redis_url.rsplit("/", 1)[0] + f"/{number}")
    transport.redis.flushdb()
    transport.jobs.mark_epoch()  # as a control plane leaves it, once it checked Redis
    return transport


def _enqueue(transport: Transport, call_id: str, priority: int = 0, gate: str | None = None) -> str:
    from datetime import datetime, timezone

    from sdk.records import CallMessage

    message = CallMessage(id=call_id, stage="ranked", gate=gate)
    transport.queues.enqueue([message], datetime.now(timezone.utc), priorities={call_id: priority})
    return message.queue


def test_a_queue_keeps_priority_order_and_arrival_within_a_priority(redis_url):
    from sdk.transport.keys import queue_key

    transport = _fresh(redis_url, 12)
    arrivals = [("a0", 0), ("b0", 0), ("c5", 5), ("d-1", -1), ("e5", 5), ("f2", 2), ("g0", 0),
                ("h-1", -1), ("i9", 9)]
    for call_id, priority in arrivals:
        queue = _enqueue(transport, call_id, priority)
    assert transport.redis.lrange(queue_key(queue), 0, -1) == [
        "i9", "c5", "e5", "f2", "a0", "b0", "g0", "d-1", "h-1"]
    # Popped to empty, the queue starts plain again.
    transport.redis.delete(queue_key(queue))
    _enqueue(transport, "j0")
    _enqueue(transport, "k1", 1)
    assert transport.redis.lrange(queue_key(queue), 0, -1) == ["k1", "j0"]


def test_a_gate_lets_calls_in_by_priority_as_slots_come_free(redis_url):
    from sdk.limits import StageLimit
    from sdk.transport.keys import GATES_KEY, job_key, queue_key

    transport = _fresh(redis_url, 12)
    limit = StageLimit("ranked", concurrency=2)
    for call_id, priority in [("a", 0), ("b", 0), ("c", 3), ("d", 0), ("e", 3)]:
        queue = _enqueue(transport, call_id, priority, gate="ranked")
    assert transport.redis.llen(queue_key(queue)) == 0  # all held at the gate
    assert transport.redis.hget(job_key("a"), "status") == "deferred"
    assert transport.gates.admit("ranked", limit) == 2
    assert transport.redis.lrange(queue_key(queue), 0, -1) == ["c", "e"]
    assert transport.gates.admit("ranked", limit) == 0  # both slots held (queued)
    transport.redis.lpop(queue_key(queue))  # a worker took c...
    transport.redis.hset(job_key("c"), "status", "finished")  # ...and it ended
    assert transport.gates.admit("ranked", limit) == 1
    assert transport.redis.lrange(queue_key(queue), 0, -1) == ["e", "a"]
    (standing,) = transport.gates.standing(["ranked"])
    assert (standing.holders, standing.held) == (["a", "e"], 2)
    assert transport.redis.zscore(GATES_KEY, "ranked") is not None  # looked at again later


def test_a_rate_spreads_its_calls_over_its_period_and_says_when_next(redis_url):
    import time

    from sdk.limits import StageLimit
    from sdk.transport.keys import GATES_KEY

    transport = _fresh(redis_url, 12)
    limit = StageLimit("ranked", rate_count=2, rate_seconds=60)  # one each 30 s
    for call_id in "abc":
        _enqueue(transport, call_id, gate="ranked")
    assert transport.gates.admit("ranked", limit) == 1
    assert transport.gates.admit("ranked", limit) == 0
    next_look = transport.redis.zscore(GATES_KEY, "ranked")
    assert 29 < next_look - time.time() <= 30  # when the pace lets the next one in
    (standing,) = transport.gates.standing(["ranked"], limit.rate_seconds)
    assert (standing.starts, standing.held) == (1, 2)
    fast = StageLimit("ranked", rate_count=100, rate_seconds=1)  # looked at late: a few at once
    transport.redis.delete("callplane:gate:ranked:pace")
    assert transport.gates.admit("ranked", fast) == 2


def test_a_call_taken_off_the_middle_keeps_its_priority_in_order(redis_url):
    from sdk.transport.keys import queue_key

    transport = _fresh(redis_url, 12)
    for call_id, priority in [("a0", 0), ("b5", 5), ("c5", 5), ("d0", 0)]:
        queue = _enqueue(transport, call_id, priority)
    # A waiting caller takes c5, the last of priority 5, off the queue.
    assert transport.queues.take_any([(queue, "c5")]) == "c5"
    _enqueue(transport, "e5", 5)  # after b5, the last of its priority now
    _enqueue(transport, "f0", 0)
    assert transport.redis.lrange(queue_key(queue), 0, -1) == ["b5", "e5", "a0", "d0", "f0"]


def test_a_gate_lets_nothing_in_before_the_running_calls_slots_are_restored(redis_url):
    from sdk.limits import StageLimit
    from sdk.transport.keys import EPOCH_KEY, job_key

    transport = _fresh(redis_url, 12)
    _enqueue(transport, "a", gate="ranked")
    transport.redis.delete(EPOCH_KEY)  # Redis lost its data: recovery has not checked it yet
    assert transport.gates.admit("ranked", StageLimit("ranked", concurrency=1)) == 0
    assert transport.gates.restore([("ranked", "running", "q", "w", 1)]) == 1
    transport.jobs.mark_epoch()
    assert transport.gates.admit("ranked", StageLimit("ranked", concurrency=1)) == 0  # held by it
    transport.redis.hset(job_key("running"), "status", "finished")
    assert transport.gates.admit("ranked", StageLimit("ranked", concurrency=1)) == 1


def test_cancelled_calls_held_at_a_gate_do_not_hold_up_the_rest(redis_url):
    from datetime import datetime, timezone

    from sdk.limits import StageLimit
    from sdk.records import Outcome
    from sdk.transport.keys import queue_key
    from sdk.wire import Status

    transport = _fresh(redis_url, 12)
    for i in range(50):
        queue = _enqueue(transport, f"gone{i}", gate="ranked")
    _enqueue(transport, "wanted", gate="ranked")
    now = datetime.now(timezone.utc)
    transport.jobs.cancel([(queue, Outcome(f"gone{i}", "ranked", Status.CANCELLED, finished_at=now))
                           for i in range(50)], now)
    assert transport.gates.admit("ranked", StageLimit("ranked", concurrency=1)) == 1
    assert transport.redis.lrange(queue_key(queue), 0, -1) == ["wanted"]
