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


def test_a_rate_lets_in_so_many_per_period_and_says_when_next(redis_url):
    import time

    from sdk.limits import StageLimit
    from sdk.transport.keys import GATES_KEY

    transport = _fresh(redis_url, 12)
    limit = StageLimit("ranked", rate_count=2, rate_seconds=60)
    for call_id in "abc":
        _enqueue(transport, call_id, gate="ranked")
    assert transport.gates.admit("ranked", limit) == 2
    assert transport.gates.admit("ranked", limit) == 0
    next_look = transport.redis.zscore(GATES_KEY, "ranked")
    assert 58 < next_look - time.time() <= 60  # when the first start leaves the period
    (standing,) = transport.gates.standing(["ranked"], limit.rate_seconds)
    assert (standing.starts, standing.held) == (2, 1)
