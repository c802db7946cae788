"""Every Redis key and command callplane uses, in one module.

The control plane and the workers both import this; nothing else talks to Redis.
Queues, job hashes and registries follow RQ's layout (so `rq info` and
rq-dashboard see callplane's work); callplane's own keys start with `callplane:`.

The hot path of one call costs these round trips: enqueue (1, pipelined), pop (1),
claim (1, a script that also returns the job and records the start event),
finish (1, a script that also records the finish event and tells waiting
workers), and the recorder's acknowledgement with the completion broadcast (1,
pipelined, batched).

Two broadcasts: FINISHED_CHANNEL as soon as a worker finished a child call
(workers waiting on children listen here: the child's outcome is in its job,
and its finish event is in the stream ahead of anything the parent reports
later; a call without a parent is not announced there, so workers do not hear
every root call of the system), and DONE_CHANNEL once the audit table has
recorded a completion (the control plane listens here, so whatever it answers
is already in the table).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

import redis

from sdk.errors import RedisUnavailable
from sdk.wire import CallMessage

RQ_PREFIX = "rq"
QUEUES_SET = f"{RQ_PREFIX}:queues"
#: How long a finished job's hash stays in Redis after its completion was recorded
#: (RQ's own default result_ttl); the audit table keeps it for good.
RESULT_TTL_SECONDS = 500
#: How long a failed job stays in RQ's failed registry (RQ's default failure_ttl).
FAILURE_TTL_SECONDS = 365 * 24 * 3600
#: A started call's score in RQ's started registry: when RQ would consider it stale.
STARTED_TTL_SECONDS = 3600

EVENTS_STREAM = "callplane:events"
RECORDERS_GROUP = "recorders"
DONE_CHANNEL = "callplane:done"
FINISHED_CHANNEL = "callplane:finished"
#: How long what a call waits on stays readable without being renewed.
WAITING_TTL_SECONDS = 24 * 3600


def job_key(call_id: str) -> str:
    return f"{RQ_PREFIX}:job:{call_id}"


def queue_key(queue: str) -> str:
    return f"{RQ_PREFIX}:queue:{queue}"


def started_registry(queue: str) -> str:
    return f"{RQ_PREFIX}:wip:{queue}"


def finished_registry(queue: str) -> str:
    return f"{RQ_PREFIX}:finished:{queue}"


def failed_registry(queue: str) -> str:
    return f"{RQ_PREFIX}:failed:{queue}"


def waiting_key(call_id: str) -> str:
    return f"callplane:waiting:{call_id}"


def rq_timestamp(at: datetime) -> str:
    """RQ's timestamp format (`rq.utils.utcformat`)."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def connect(url: str) -> redis.Redis:
    """A client whose blocking pops and pub/sub reads may wait as long as they like.

    redis-py 8 defaults to a 5 s socket timeout, which would cut an idle worker's
    blocking pop; callplane's waits carry their own timeouts instead.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=None,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
    )


def translate_errors(method):
    """Turn redis-py's connection errors into RedisUnavailable at this boundary."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisUnavailable(f"Redis is unreachable: {exc}") from None

    return wrapper


# Claiming is one atomic step: only a queued job can be started, so two workers
# can never both start the same attempt. The same step records the start event
# and hands back the job, saving the worker a round trip.
_CLAIM = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return false end
redis.call('HSET', KEYS[1], 'status', 'started', 'started_at', ARGV[2],
           'worker_name', ARGV[1], 'last_heartbeat', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('XADD', KEYS[3], '*', 'kind', 'start', 'id', ARGV[4], 'body', ARGV[5])
return redis.call('HGET', KEYS[1], 'data')
"""

# Only the worker that started a job can finish it; the result lands in the job
# hash (for waiters and rq-dashboard) and in the event stream (for the recorder).
_FINISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'started'
   or redis.call('HGET', KEYS[1], 'worker_name') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'ended_at', ARGV[4], 'cp_outcome', ARGV[2])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'exc_info', ARGV[7]) end
redis.call('ZREM', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
redis.call('XADD', KEYS[4], '*', 'kind', 'finish', 'id', ARGV[6], 'body', ARGV[2])
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[6]) end
return 1
"""

# A waiting caller takes one of its still-queued calls to run itself (newest
# first: idle workers pop from the other end). If none is left in a queue, it
# notes what it now waits on, for the API to show.
_TAKE_ANY = """
for i = 2, #KEYS do
  if redis.call('LREM', KEYS[i], 1, ARGV[i + 1]) == 1 then return ARGV[i + 1] end
end
if KEYS[1] ~= '' and ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return false
"""


class Transport:
    """callplane's view of one Redis: queues, claims, events and completion broadcasts."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._take_any = client.register_script(_TAKE_ANY)

    @classmethod
    def from_url(cls, url: str) -> Transport:
        return cls(connect(url))

    @translate_errors
    def ping(self) -> bool:
        return bool(self.redis.ping())

    # -- dispatch ---------------------------------------------------------------

    @translate_errors
    def enqueue(self, messages: list[CallMessage], created_at: datetime) -> None:
        """Write each call's RQ job hash and append it to its queue, in one round trip."""
        now = rq_timestamp(created_at)
        pipe = self.redis.pipeline(transaction=False)
        for message in messages:
            queue = message.queue
            pipe.hset(
                job_key(message.id),
                mapping={
                    "data": message.encode(),
                    "origin": queue,
                    "description": f"callplane stage {message.stage}",
                    "created_at": now,
                    "enqueued_at": now,
                    "status": "queued",
                    "timeout": -1,
                    "result_ttl": RESULT_TTL_SECONDS,
                    "cp_attempt": message.attempt,
                },
            )
        for queue in {message.queue for message in messages}:
            pipe.sadd(QUEUES_SET, queue_key(queue))
            pipe.rpush(queue_key(queue), *[m.id for m in messages if m.queue == queue])
        pipe.execute()

    @translate_errors
    def pop(self, queues: list[str], timeout: float) -> tuple[str, str] | None:
        """Block until a call is at the head of one of `queues` (in order of priority).

        Returns (queue, call id), or None when `timeout` seconds passed.
        """
        item = self.redis.blpop([queue_key(q) for q in queues], timeout=timeout)
        if not item:
            return None
        return item[0][len(queue_key("")):], item[1]

    @translate_errors
    def take(self, queue: str, call_id: str) -> bool:
        """Remove a still-queued call from its queue; True if this caller now owns it."""
        return self.redis.lrem(queue_key(queue), 1, call_id) == 1

    @translate_errors
    def take_any(
        self, candidates: list[tuple[str, str]], waiter: str | None = None, waiting_on: str = ""
    ) -> str | None:
        """Take the first of `candidates` [(queue, call id)] still queued; its id, or None.

        When none is, record `waiting_on` as what the call `waiter` waits on.
        """
        if not candidates and not (waiter and waiting_on):
            return None
        return self._take_any(
            keys=[waiting_key(waiter) if waiter else ""]
            + [queue_key(queue) for queue, _ in candidates],
            args=[waiting_on, WAITING_TTL_SECONDS] + [call_id for _, call_id in candidates],
        )

    @translate_errors
    def waiting_on(self, call_id: str) -> str | None:
        """What a running call last said it waits on (JSON), if anything."""
        return self.redis.get(waiting_key(call_id))

    @translate_errors
    def claim(
        self, queue: str, call_id: str, worker: str, started_at: datetime, body: str
    ) -> str | None:
        """Atomically move a queued job to started; returns its data, or None if not claimable."""
        return self._claim(
            keys=[job_key(call_id), started_registry(queue), EVENTS_STREAM],
            args=[
                worker,
                rq_timestamp(started_at),
                started_at.timestamp() + STARTED_TTL_SECONDS,
                call_id,
                body,
            ],
        )

    @translate_errors
    def finish(
        self,
        queue: str,
        call_id: str,
        worker: str,
        outcome_json: str,
        succeeded: bool,
        finished_at: datetime,
        exc_info: str = "",
        is_child: bool = True,
    ) -> bool:
        """Record a started job's outcome; False if this worker no longer holds the job.

        A child's completion is also broadcast to waiting workers (`is_child`)."""
        registry = finished_registry(queue) if succeeded else failed_registry(queue)
        ttl = RESULT_TTL_SECONDS if succeeded else FAILURE_TTL_SECONDS
        return bool(
            self._finish(
                keys=[job_key(call_id), started_registry(queue), registry, EVENTS_STREAM],
                args=[
                    worker,
                    outcome_json,
                    "finished" if succeeded else "failed",
                    rq_timestamp(finished_at),
                    finished_at.timestamp() + ttl,
                    call_id,
                    exc_info,
                    FINISHED_CHANNEL if is_child else "",
                ],
            )
        )

    @translate_errors
    def report_finish(self, call_id: str, outcome_json: str) -> None:
        """Report the outcome of a call that was never queued (its caller ran it in
        place): only the recorder needs to hear of it."""
        self.redis.xadd(
            EVENTS_STREAM, {"kind": "finish", "id": call_id, "body": outcome_json, "in_place": "1"}
        )

    @translate_errors
    def settle(
        self, queue: str, call_id: str, outcome_json: str, succeeded: bool, finished_at: datetime
    ) -> None:
        """Mirror an outcome that the table recorded first (a finish over HTTP); wake waiters."""
        registry = finished_registry(queue) if succeeded else failed_registry(queue)
        ttl = RESULT_TTL_SECONDS if succeeded else FAILURE_TTL_SECONDS
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(job_key(call_id), mapping={
            "status": "finished" if succeeded else "failed",
            "ended_at": rq_timestamp(finished_at),
            "cp_outcome": outcome_json,
        })
        pipe.zrem(started_registry(queue), call_id)
        pipe.zadd(registry, {call_id: finished_at.timestamp() + ttl})
        pipe.expire(job_key(call_id), RESULT_TTL_SECONDS)
        pipe.publish(DONE_CHANNEL, call_id)
        pipe.publish(FINISHED_CHANNEL, call_id)
        pipe.execute()

    # -- outcomes ---------------------------------------------------------------

    @translate_errors
    def outcomes(self, call_ids: list[str]) -> dict[str, str | None]:
        """For each call whose job still exists: its outcome JSON once a worker
        finished it, else None. Calls whose job is gone are left out."""
        pipe = self.redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hmget(job_key(call_id), ["status", "cp_outcome"])
        return {
            call_id: outcome
            for call_id, (status, outcome) in zip(call_ids, pipe.execute())
            if status is not None
        }

    @translate_errors
    def announce_recorded(self, call_ids: Iterable[str], event_ids: list[str] = ()) -> None:
        """After the table has recorded them: let finished jobs expire, wake their
        waiters and forget the events, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.expire(job_key(call_id), RESULT_TTL_SECONDS)
            pipe.publish(DONE_CHANNEL, call_id)
        if event_ids:
            pipe.xack(EVENTS_STREAM, RECORDERS_GROUP, *event_ids)
            pipe.xdel(EVENTS_STREAM, *event_ids)
        pipe.execute()

    def listen_done(
        self,
        channel: str,
        on_done: Callable[[str], None],
        on_subscribed: Callable[[], None],
        stopping: threading.Event,
        poll_seconds: float = 1.0,
    ) -> None:
        """Deliver every broadcast on `channel` to `on_done` until `stopping` is set.

        Calls `on_subscribed` each time the subscription is confirmed, including
        after a lost connection: broadcasts sent while away are gone, so waiters
        must re-read state then.
        """
        while not stopping.is_set():
            pubsub = self.redis.pubsub()
            try:
                pubsub.subscribe(channel)
                while not stopping.is_set():
                    message = pubsub.get_message(timeout=poll_seconds)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        on_done(message["data"])
                    elif message["type"] == "subscribe":
                        on_subscribed()
            except (redis.ConnectionError, redis.TimeoutError):
                stopping.wait(poll_seconds)
            finally:
                pubsub.close()

    # -- the recorder's event stream -------------------------------------------

    @translate_errors
    def ensure_recorder_group(self) -> None:
        try:
            self.redis.xgroup_create(EVENTS_STREAM, RECORDERS_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @translate_errors
    def read_events(
        self, consumer: str, count: int, block_ms: int, own_pending: bool = False
    ) -> list[tuple[str, dict]]:
        """Workers' reports: [(event id, {kind, id, body})].

        New ones by default; with `own_pending`, those this consumer was handed
        before but never acknowledged (it failed to record them).
        """
        try:
            reply = self.redis.xreadgroup(
                RECORDERS_GROUP,
                consumer,
                {EVENTS_STREAM: "0" if own_pending else ">"},
                count=count,
                block=None if own_pending else block_ms,
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_recorder_group()  # Redis restarted empty: start the stream anew
            return []
        return [event for _stream, events in reply for event in events] if reply else []


class RqWorkerRecord:
    """A worker as RQ sees it (`rq info`, rq-dashboard), written by RQ's own Worker class.

    Only birth, heartbeats and death go through it; callplane's own loop takes
    the calls, so RQ's per-job bookkeeping stays off the hot path.
    """

    def __init__(self, redis_url: str, name: str, queues: list[str]):
        from rq import Queue, Worker
        from rq.serializers import JSONSerializer

        connection = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
        self._worker = Worker(
            [Queue(q, connection=connection, serializer=JSONSerializer) for q in queues],
            connection=connection,
            name=name,
            serializer=JSONSerializer,
        )

    @translate_errors
    def birth(self) -> None:
        self._worker.register_birth()
        self._worker.set_state("idle")

    @translate_errors
    def heartbeat(self, ttl_seconds: int) -> None:
        self._worker.heartbeat(ttl_seconds)

    @translate_errors
    def death(self) -> None:
        self._worker.register_death()
