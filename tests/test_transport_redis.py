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
