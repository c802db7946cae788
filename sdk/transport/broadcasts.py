"""Broadcasts: who hears that calls finished or were cancelled.

Pub/sub is at-most-once: a listener that was away misses what was sent, so it is
told each time its subscription is confirmed (again) and re-reads state then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import redis

from sdk.transport.connection import translating
from sdk.transport.keys import (
    DONE_CHANNEL,
    EVENTS_STREAM,
    RECORDERS_GROUP,
    RESULT_TTL_SECONDS,
    job_key,
)
from sdk.transport.scripts import Scripts

#: How long a listener's read waits before it checks whether it should stop.
POLL_SECONDS = 1.0


@translating
class Broadcasts:
    def __init__(self, client: redis.Redis, scripts: Scripts):
        self._redis = client
        self._scripts = scripts

    def announce_recorded(self, call_ids: Iterable[str], event_ids: Iterable[str] = ()) -> None:
        """After the table has recorded them: let finished jobs expire, wake their
        waiters (one broadcast for all) and forget the events, in one round trip."""
        call_ids, event_ids = list(call_ids), list(event_ids)
        if not call_ids and not event_ids:
            return
        self._scripts.announce(
            keys=[EVENTS_STREAM, *(job_key(call_id) for call_id in call_ids)],
            args=[RESULT_TTL_SECONDS, DONE_CHANNEL, RECORDERS_GROUP, " ".join(call_ids), *event_ids],
        )

    def _listen(
        self,
        channel: str,
        on_message: Callable[[list[str]], None],
        on_subscribed: Callable[[], None],
        stopping: threading.Event,
    ) -> None:
        """Deliver the ids of every broadcast on `channel` to `on_message` (a
        broadcast names one or more calls, space-separated) until `stopping` is set.

        Calls `on_subscribed` each time the subscription is confirmed, including
        after a lost connection: broadcasts sent while away are gone, so waiters
        must re-read state then. Never raises for Redis being away: it retries.
        """
        while not stopping.is_set():
            pubsub = self._redis.pubsub()
            try:
                pubsub.subscribe(channel)
                while not stopping.is_set():
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        on_message(message["data"].split())
                    elif message["type"] == "subscribe":
                        on_subscribed()
            except (redis.ConnectionError, redis.TimeoutError):
                stopping.wait(POLL_SECONDS)
            finally:
                pubsub.close()

    def listener(
        self,
        channel: str,
        on_message: Callable[[list[str]], None],
        stopping: threading.Event,
        on_subscribed: Callable[[], None] = lambda: None,
    ) -> threading.Thread:
        """A daemon thread (not started) that listens on `channel` until `stopping`."""
        return threading.Thread(
            target=self._listen, args=(channel, on_message, on_subscribed, stopping),
            name=f"callplane-listen-{channel.rsplit(':', 1)[-1]}", daemon=True,
        )
