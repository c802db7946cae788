"""Every Redis key and command callplane uses, in one module.

The control plane and the workers both import this; nothing else talks to Redis.
Queues, job hashes and registries follow RQ's layout (so `rq info` and
rq-dashboard see callplane's work); callplane's own keys start with `callplane:`.

The hot path of one call costs these round trips: enqueue (1, one script for a
whole batch), pop and claim (2 for an idle worker: a blocking pop, then a
script that claims the call, records the start event and hands back the job),
finish (1, a script that also records the finish event, tells waiting workers
and, for a busy worker, pops and claims its next call), and the recorder's
acknowledgement with the completion broadcast (1 script per recorded batch).

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
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from sdk.errors import RedisUnavailable
from sdk.wire import CallMessage, dumps

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
#: Set once the control plane has checked that Redis holds every pending call.
EPOCH_KEY = "callplane:epoch"
RECORDERS_GROUP = "recorders"
DONE_CHANNEL = "callplane:done"
#: Where workers hear that calls they may be running were cancelled.
CANCEL_CHANNEL = "callplane:cancel"
FINISHED_CHANNEL = "callplane:finished"
#: What finish answers when the job is gone from Redis (it lost its keys).
JOB_GONE = -1
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


def canceled_registry(queue: str) -> str:
    return f"{RQ_PREFIX}:canceled:{queue}"


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
#
# claim_next pops and claims in one step, from the first of the queues (in
# priority order) that holds a claimable call, so a popped call is never left
# unclaimed. Its KEYS from index k on are (queue, started registry) pairs; its
# ARGV from index a on are worker, timestamp, registry score, start body and the
# job key prefix (a job's key is known only once its id is popped).
_CLAIM_FUNCTIONS = """
local function claim(job, started, stream, id, worker, at, score, body)
  if redis.call('HGET', job, 'status') ~= 'queued' then return false end
  redis.call('HSET', job, 'status', 'started', 'started_at', at,
             'worker_name', worker, 'last_heartbeat', at)
  redis.call('ZADD', started, score, id)
  redis.call('XADD', stream, '*', 'kind', 'start', 'id', id, 'body', body,
             'attempt', redis.call('HGET', job, 'cp_attempt'))
  return redis.call('HGET', job, 'data')
end
local function claim_next(stream, k, a)
  for i = k, #KEYS, 2 do
    local id = redis.call('LPOP', KEYS[i])
    while id do
      local data = claim(ARGV[a + 4] .. id, KEYS[i + 1], stream, id,
                         ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
      if data then return {KEYS[i], id, data} end
      id = redis.call('LPOP', KEYS[i])
    end
  end
  return false
end
"""
# KEYS: job, started registry, events stream. ARGV: worker, timestamp, score, id, body.
_CLAIM = _CLAIM_FUNCTIONS + """
return claim(KEYS[1], KEYS[2], KEYS[3], ARGV[4], ARGV[1], ARGV[2], ARGV[3], ARGV[5])
"""
# KEYS: events stream, then (queue, started registry) pairs.
_CLAIM_NEXT = _CLAIM_FUNCTIONS + """
return claim_next(KEYS[1], 2, 1)
"""

# Only the worker that started this attempt of a job can finish it; the result
# lands in the job hash (for waiters and rq-dashboard) and in the event stream
# (for the recorder). Returns 1 (also for a repeated report), or 0 if the
# attempt is no longer the worker's, or -1 if the job is gone (Redis lost it):
# the worker then reports another way.
# KEYS: job, started registry, finished or failed registry, events stream.
# ARGV: worker, outcome, status, timestamp, registry score, id, exc_info, the
# channel that hears a child's completion ('' for a call without parent), attempt.
_FINISH_FUNCTION = """
local function finish()
  local job = redis.call('HMGET', KEYS[1], 'status', 'worker_name', 'cp_attempt')
  if not job[1] then return -1 end
  if job[2] ~= ARGV[1] or job[3] ~= ARGV[9] then return 0 end
  if job[1] == 'finished' or job[1] == 'failed' then return 1 end  -- a repeated report
  if job[1] ~= 'started' then return 0 end
  redis.call('HSET', KEYS[1], 'status', ARGV[3], 'ended_at', ARGV[4], 'cp_outcome', ARGV[2])
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'exc_info', ARGV[7]) end
  redis.call('ZREM', KEYS[2], ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
  redis.call('XADD', KEYS[4], '*', 'kind', 'finish', 'id', ARGV[6], 'body', ARGV[2])
  if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[6]) end
  return 1
end
"""
_FINISH = _FINISH_FUNCTION + "return finish()"
# A busy worker's loop in one round trip: finish a call, claim the next.
# KEYS and ARGV: finish's, then claim_next's pairs and arguments.
_FINISH_AND_CLAIM_NEXT = _FINISH_FUNCTION + _CLAIM_FUNCTIONS + """
return {finish(), claim_next(KEYS[4], 5, 10)}
"""

# Take an attempt away from its worker, which will never report it (it died or
# hangs): a job still started by that worker at that attempt becomes 'stopped',
# so a late finish from it is refused. If that attempt has finished after all,
# returns its outcome (its report is on its way to the recorder), else false.
# KEYS: job, started registry.  ARGV: worker ('' for any), attempt, id.
_ABANDON = """
local job = redis.call('HMGET', KEYS[1], 'status', 'worker_name', 'cp_attempt', 'cp_outcome')
if job[3] ~= ARGV[2] then return false end
if job[1] == 'finished' or job[1] == 'failed' then return job[4] end
if job[1] == 'started' and (ARGV[1] == '' or job[2] == ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', 'stopped')
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return false
"""

# New calls, or new attempts of calls: each job's hash (without an earlier
# attempt's outcome), then its queue, atomically (a worker never pops an id
# whose job is not written). A job that a worker has taken at the same attempt
# (started, finished, failed or cancelled) is left alone: queueing a call again
# (after Redis lost track of it) must never hand one attempt to two workers. One command for a whole batch: a pipeline of
# commands per call cost more to build and parse than the work Redis does.
# KEYS: the queues set, then (job, queue) per call.  ARGV: timestamp, result
# ttl, then (id, data, attempt, queue name, description) per call.
_ENQUEUE = """
local queued = 0
for i = 2, #KEYS, 2 do
  local a = 3 + 5 * (i / 2 - 1)
  local job = redis.call('HMGET', KEYS[i], 'status', 'cp_attempt')
  local held = job[2] == ARGV[a + 2] and job[1] ~= 'queued' and job[1] ~= 'stopped'
  if not held then
    redis.call('HSET', KEYS[i], 'data', ARGV[a + 1], 'origin', ARGV[a + 3],
               'description', ARGV[a + 4], 'created_at', ARGV[1], 'enqueued_at', ARGV[1],
               'status', 'queued', 'timeout', -1, 'result_ttl', ARGV[2], 'cp_attempt', ARGV[a + 2])
    redis.call('HDEL', KEYS[i], 'cp_outcome', 'exc_info', 'ended_at', 'worker_name', 'started_at')
    redis.call('PERSIST', KEYS[i])
    redis.call('RPUSH', KEYS[i + 1], ARGV[a])
    redis.call('SADD', KEYS[1], KEYS[i + 1])
    queued = queued + 1
  end
end
return queued
"""

# A worker runs an attempt that raised again, in its own slot: its job (if it
# has one: a call run in place has none) moves to the next attempt, so only that
# attempt can finish it, and the recorder hears of the failed one. Returns 0 if
# the attempt is no longer this worker's.
# KEYS: job, events stream.  ARGV: worker, attempt, id, body.
_RETRY = """
local job = redis.call('HMGET', KEYS[1], 'status', 'worker_name', 'cp_attempt')
if job[1] then
  if job[1] ~= 'started' or job[2] ~= ARGV[1] or job[3] ~= ARGV[2] then return 0 end
  redis.call('HSET', KEYS[1], 'cp_attempt', tonumber(ARGV[2]) + 1)
end
redis.call('XADD', KEYS[2], '*', 'kind', 'retry', 'id', ARGV[3], 'body', ARGV[4])
return 1
"""

# Which of these pending calls Redis has lost track of: no job, a job of an
# earlier attempt, a job taken away from its worker ('stopped'), or a job that
# says queued while its id is on no queue (a worker died right after popping it,
# or someone emptied the queue). Each queue is read once.
# KEYS: (job, queue) per call.  ARGV: (id, attempt) per call.
_UNTRACKED = """
local listed, lost = {}, {}
for i = 1, #KEYS, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local job = redis.call('HMGET', KEYS[i], 'status', 'cp_attempt')
  local gone = not job[1] or job[2] ~= attempt or job[1] == 'stopped'
  if job[1] == 'queued' and not gone then
    local queue = KEYS[i + 1]
    if not listed[queue] then
      listed[queue] = {}
      for _, member in ipairs(redis.call('LRANGE', queue, 0, -1)) do listed[queue][member] = true end
    end
    gone = not listed[queue][id]
  end
  if gone then table.insert(lost, id) end
end
return lost
"""

# After the table recorded a batch of completions: let the jobs expire, tell
# every listener with one broadcast (the ids, space-separated) and forget the
# events.  KEYS: events stream, then the job keys.  ARGV: ttl, channel, group,
# the ids as one message, then the event ids.
_ANNOUNCE = """
for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[4]) end
for i = 5, #ARGV do
  redis.call('XACK', KEYS[1], ARGV[3], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return #KEYS - 1
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


@dataclass(frozen=True)
class StartReport:
    """Who starts a call, when and how (a RunMode value); `body` is the start event
    the recorder gets."""

    worker: str
    started_at: datetime
    run_mode: str | None = None

    @classmethod
    def now(cls, worker: str, run_mode: str | None = None) -> StartReport:
        return cls(worker, datetime.now(timezone.utc), run_mode)

    @property
    def body(self) -> str:
        body = {"worker": self.worker, "started_at": self.started_at.isoformat()}
        if self.run_mode is not None:
            body["run_mode"] = self.run_mode
        return dumps(body)


@dataclass(frozen=True)
class FinishReport:
    """A claimed call's outcome, as its worker reports it. A child's completion is
    also broadcast to waiting workers (`is_child`)."""

    queue: str
    call_id: str
    worker: str
    attempt: int
    outcome_json: str
    succeeded: bool
    finished_at: datetime
    exc_info: str = ""
    is_child: bool = True


@dataclass(frozen=True)
class Claimed:
    """A call this worker has just claimed: where it came from, its job data, its start."""

    queue: str
    call_id: str
    data: str
    start: StartReport


class Transport:
    """callplane's view of one Redis: queues, claims, events and completion broadcasts."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._claim_next = client.register_script(_CLAIM_NEXT)
        self._finish_and_claim_next = client.register_script(_FINISH_AND_CLAIM_NEXT)
        self._abandon = client.register_script(_ABANDON)
        self._untracked = client.register_script(_UNTRACKED)
        self._retry = client.register_script(_RETRY)
        self._finish = client.register_script(_FINISH)
        self._take_any = client.register_script(_TAKE_ANY)
        self._enqueue = client.register_script(_ENQUEUE)
        self._announce = client.register_script(_ANNOUNCE)

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
        keys, args = [QUEUES_SET], [rq_timestamp(created_at), RESULT_TTL_SECONDS]
        for message in messages:
            keys += (job_key(message.id), queue_key(message.queue))
            args += (message.id, message.encode(), message.attempt, message.queue,
                     f"callplane stage {message.stage}")
        self._enqueue(keys=keys, args=args)

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
    def claim(self, queue: str, call_id: str, start: StartReport) -> Claimed | None:
        """Atomically move a queued job to started; None if it is not claimable."""
        at = start.started_at
        data = self._claim(
            keys=[job_key(call_id), started_registry(queue), EVENTS_STREAM],
            args=[start.worker, rq_timestamp(at), at.timestamp() + STARTED_TTL_SECONDS, call_id,
                  start.body],
        )
        return None if data is None else Claimed(queue, call_id, data, start)

    @translate_errors
    def claim_next(self, queues: list[str], start: StartReport) -> Claimed | None:
        """Pop and claim the first claimable call of `queues`, without blocking."""
        return self._claimed(self._claim_next(**self._claim_next_call(queues, start)), start)

    def _claim_next_call(self, queues: list[str], start: StartReport) -> dict:
        keys = [EVENTS_STREAM]
        for queue in queues:
            keys += (queue_key(queue), started_registry(queue))
        at = start.started_at
        args = [start.worker, rq_timestamp(at), at.timestamp() + STARTED_TTL_SECONDS, start.body,
                job_key("")]
        return {"keys": keys, "args": args}

    @staticmethod
    def _claimed(reply, start: StartReport) -> Claimed | None:
        if not reply:
            return None
        key, call_id, data = reply
        return Claimed(key[len(queue_key("")):], call_id, data, start)

    @translate_errors
    def finish(self, report: FinishReport) -> int:
        """Record a started job's outcome: 1, or 0 if this worker no longer holds
        the attempt, or -1 if the job is gone (Redis lost it)."""
        return self._finish(**self._finish_call(report))

    @translate_errors
    def finish_and_claim_next(
        self, report: FinishReport, queues: list[str], start: StartReport
    ) -> tuple[int, Claimed | None]:
        """`finish`, then `claim_next`, in one round trip: a busy worker's loop."""
        finish, claim = self._finish_call(report), self._claim_next_call(queues, start)
        accepted, claimed = self._finish_and_claim_next(
            keys=finish["keys"] + claim["keys"][1:], args=finish["args"] + claim["args"]
        )
        return accepted, self._claimed(claimed, start)

    def _finish_call(self, report: FinishReport) -> dict:
        registry = finished_registry(report.queue) if report.succeeded else failed_registry(report.queue)
        ttl = RESULT_TTL_SECONDS if report.succeeded else FAILURE_TTL_SECONDS
        return {
            "keys": [job_key(report.call_id), started_registry(report.queue), registry, EVENTS_STREAM],
            "args": [
                report.worker,
                report.outcome_json,
                "finished" if report.succeeded else "failed",
                rq_timestamp(report.finished_at),
                report.finished_at.timestamp() + ttl,
                report.call_id,
                report.exc_info,
                FINISHED_CHANNEL if report.is_child else "",
                report.attempt,
            ],
        }

    @translate_errors
    def report_finish(self, call_id: str, outcome_json: str, awaited: bool = False) -> None:
        """Report an outcome straight to the recorder: for a call that was never
        queued (its caller ran it in place, and has the outcome), or whose job
        Redis lost (`awaited`: someone may be waiting for it)."""
        self.redis.xadd(
            EVENTS_STREAM,
            {"kind": "finish", "id": call_id, "body": outcome_json, "in_place": "0" if awaited else "1"},
        )

    @translate_errors
    def report_retry(self, queue: str | None, call_id: str, worker: str, attempt: int, body: str) -> bool:
        """Move a call this worker runs to its next attempt (see _RETRY); False if
        the attempt is no longer this worker's."""
        return bool(self._retry(keys=[job_key(call_id), EVENTS_STREAM],
                                args=[worker, attempt, call_id, body]))

    @translate_errors
    def report_lost(self, call_id: str, body: str) -> None:
        """Tell the recorder that an attempt will never report (its process died)."""
        self.redis.xadd(EVENTS_STREAM, {"kind": "lost", "id": call_id, "body": body})

    @translate_errors
    def heartbeat(self, worker: str, calls: list[tuple[str, int]]) -> None:
        """Renew the leases of the attempts `worker` runs ([(call id, attempt)])."""
        body = dumps({"worker": worker, "calls": calls})
        self.redis.xadd(EVENTS_STREAM, {"kind": "heartbeat", "id": worker, "body": body})

    @translate_errors
    def abandon(self, queue: str, call_id: str, worker: str | None, attempt: int) -> str | None:
        """Take an attempt away from a worker that will never report it; None, or
        the attempt's outcome (JSON) if it has finished after all."""
        return self._abandon(
            keys=[job_key(call_id), started_registry(queue)], args=[worker or "", attempt, call_id]
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

    @translate_errors
    def untracked(self, calls: list[tuple[str, str, int]]) -> list[str]:
        """Of these pending calls [(queue, id, attempt)], those Redis has lost track
        of (see _UNTRACKED): they must be queued again."""
        if not calls:
            return []
        keys, args = [], []
        for queue, call_id, attempt in calls:
            keys += (job_key(call_id), queue_key(queue))
            args += (call_id, attempt)
        return self._untracked(keys=keys, args=args)

    @translate_errors
    def has_epoch(self) -> bool:
        """Whether this Redis still holds the mark the control plane left in it; a
        Redis restarted without its data (or flushed) does not."""
        return bool(self.redis.exists(EPOCH_KEY))

    @translate_errors
    def mark_epoch(self) -> None:
        self.redis.set(EPOCH_KEY, datetime.now(timezone.utc).isoformat())

    @translate_errors
    def cancel(self, calls: list[tuple[str, str]], outcome_json: str, at: datetime) -> None:
        """Mirror cancelled calls [(queue, id)]: each job says so (RQ's 'canceled',
        with the outcome waiting workers read), leaves its queue and the started
        registry; then one broadcast of their ids to waiting workers, to the
        control planes' waiters and to the workers that may be running them."""
        pipe = self.redis.pipeline(transaction=True)
        for queue, call_id in calls:
            pipe.hset(job_key(call_id), mapping={
                "status": "canceled", "ended_at": rq_timestamp(at), "cp_outcome": outcome_json,
            })
            pipe.expire(job_key(call_id), RESULT_TTL_SECONDS)
            pipe.lrem(queue_key(queue), 0, call_id)
            pipe.zrem(started_registry(queue), call_id)
            pipe.zadd(canceled_registry(queue), {call_id: at.timestamp() + FAILURE_TTL_SECONDS})
        message = " ".join(call_id for _, call_id in calls)
        for channel in (FINISHED_CHANNEL, DONE_CHANNEL, CANCEL_CHANNEL):
            pipe.publish(channel, message)
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
        waiters (one broadcast for all) and forget the events, in one round trip."""
        call_ids = list(call_ids)
        if not call_ids and not event_ids:
            return
        self._announce(
            keys=[EVENTS_STREAM, *(job_key(call_id) for call_id in call_ids)],
            args=[RESULT_TTL_SECONDS, DONE_CHANNEL, RECORDERS_GROUP, " ".join(call_ids), *event_ids],
        )

    def listen_done(
        self,
        channel: str,
        on_done: Callable[[list[str]], None],
        on_subscribed: Callable[[], None],
        stopping: threading.Event,
        poll_seconds: float = 1.0,
    ) -> None:
        """Deliver the ids of every broadcast on `channel` to `on_done` (a broadcast
        names one or more calls, space-separated) until `stopping` is set.

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
                        on_done(message["data"].split())
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

    @translate_errors
    def claim_stale_events(self, consumer: str, min_idle_ms: int, count: int) -> list[tuple[str, dict]]:
        """Reports handed to a recorder that has not acknowledged them for
        `min_idle_ms` (its control plane died mid-batch), now this consumer's."""
        try:
            reply = self.redis.xautoclaim(
                EVENTS_STREAM, RECORDERS_GROUP, consumer, min_idle_ms, "0-0", count=count
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return []
        return [event for event in reply[1] if event[1]]  # a deleted entry comes back empty


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
