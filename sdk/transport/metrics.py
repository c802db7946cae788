"""The figures operators scale by, kept in Redis so that every control plane
(every process, every host) counts into, and answers from, the same totals.

- Totals: one hash per metric, a field per label set (a JSON list of label
  values), added to by each control plane's flush (controlplane.metrics).
- The last hour: one hash per minute (calls finished and how long they took),
  expiring after two hours, for the web view's throughput chart.
- What is true now, read when asked: each queue's depth and the age of the
  call at its head, workers alive, calls delayed or held back by limits, the
  recorder's unread reports.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone

import redis

from sdk.transport.connection import translating
from sdk.transport.keys import (
    DELAYED_KEY,
    EVENTS_STREAM,
    GATES_KEY,
    QUEUES_SET,
    RECORDERS_GROUP,
    WORKERS_SET,
    gate_held,
    job_key,
    queue_key,
    queue_of_key,
)

METRIC_PREFIX = "callplane:metric:"
MINUTE_PREFIX = "callplane:minute:"
#: How long a minute's figures stay (the web view shows the last hour).
MINUTE_TTL_SECONDS = 2 * 3600

#: Additions to totals: metric -> label set (JSON) -> amount.
Additions = Mapping[str, Mapping[str, float]]


@translating
class Figures:
    def __init__(self, client: redis.Redis):
        self._redis = client

    def add(self, totals: Additions, minutes: Mapping[int, Mapping[str, float]]) -> None:
        """Add to the totals and to the minutes (by epoch minute), in one round trip."""
        with self._redis.pipeline(transaction=False) as pipe:
            for metric, fields in totals.items():
                for labels, amount in fields.items():
                    pipe.hincrbyfloat(METRIC_PREFIX + metric, labels, amount)
            for minute, fields in minutes.items():
                key = f"{MINUTE_PREFIX}{minute}"
                for field, amount in fields.items():
                    pipe.hincrbyfloat(key, field, amount)
                pipe.expire(key, MINUTE_TTL_SECONDS)
            pipe.execute()

    def totals(self, metrics: list[str]) -> dict[str, dict[str, float]]:
        """Each metric's totals by label set."""
        with self._redis.pipeline(transaction=False) as pipe:
            for metric in metrics:
                pipe.hgetall(METRIC_PREFIX + metric)
            answers = pipe.execute()
        return {metric: {labels: float(value) for labels, value in answer.items()}
                for metric, answer in zip(metrics, answers)}

    def minutes(self, first: int, last: int) -> dict[int, dict[str, float]]:
        """The figures of each epoch minute from `first` to `last` that has any."""
        span = range(first, last + 1)
        with self._redis.pipeline(transaction=False) as pipe:
            for minute in span:
                pipe.hgetall(f"{MINUTE_PREFIX}{minute}")
            answers = pipe.execute()
        return {minute: {field: float(value) for field, value in answer.items()}
                for minute, answer in zip(span, answers) if answer}

    def backlog(self) -> dict[str, tuple[int, float | None]]:
        """Each queue's depth, and how long the call at its head (the next to
        start) has been queued, in seconds (None when empty)."""
        queues = sorted(queue_of_key(key) for key in self._redis.smembers(QUEUES_SET))
        with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue_key(queue))
                pipe.lindex(queue_key(queue), 0)
            answers = pipe.execute()
        heads = answers[1::2]
        with self._redis.pipeline(transaction=False) as pipe:
            for head in heads:
                pipe.hget(job_key(head or ""), "enqueued_at")
            enqueued = pipe.execute()
        now = time.time()
        return {queue: (int(depth), _age(at, now))
                for queue, depth, at in zip(queues, answers[0::2], enqueued)}

    def waiting_elsewhere(self) -> tuple[int, int]:
        """Calls not on a queue yet: delayed (or asleep), and held back by limits."""
        gates = self._redis.zrange(GATES_KEY, 0, -1)
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(DELAYED_KEY)
            for gate in gates:
                pipe.zcard(gate_held(gate))
            answers = pipe.execute()
        return int(answers[0]), sum(int(held) for held in answers[1:])

    def workers_alive(self) -> int:
        """Workers whose RQ record has not expired (a worker renews it every heartbeat)."""
        names = list(self._redis.smembers(WORKERS_SET))
        if not names:
            return 0
        return int(self._redis.exists(*names))

    def recorder_lag(self) -> tuple[int, int]:
        """Workers' reports the recorders have not read yet, and read but not yet
        recorded."""
        try:
            groups = self._redis.xinfo_groups(EVENTS_STREAM)
        except redis.ResponseError:  # no stream yet: nothing was ever reported
            return 0, 0
        group = next((g for g in groups if g["name"] == RECORDERS_GROUP), None)
        if group is None:
            return int(self._redis.xlen(EVENTS_STREAM)), 0
        return int(group.get("lag") or 0), int(group["pending"])


def _age(enqueued_at: str | None, now: float) -> float | None:
    if not enqueued_at:
        return None
    at = datetime.strptime(enqueued_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    return max(0.0, now - at.replace(tzinfo=timezone.utc).timestamp())
