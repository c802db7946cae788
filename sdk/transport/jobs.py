"""Jobs beyond dispatch: reading their outcomes, mirroring what the audit table decided
(a finish over HTTP, a cancellation, an attempt given up), and finding the
pending calls Redis has lost track of."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import redis

from sdk.errors import DecodeError
from sdk.records import Outcome, from_json, to_json
from sdk.transport import rq_compat
from sdk.transport.connection import translating
from sdk.transport.keys import (
    CANCEL_CHANNEL,
    DELAYED_KEY,
    DONE_CHANNEL,
    EPOCH_KEY,
    FAILURE_TTL_SECONDS,
    FINISHED_CHANNEL,
    PART_AWAY_KEY,
    RESULT_TTL_SECONDS,
    canceled_registry,
    failed_registry,
    finished_registry,
    job_key,
    queue_key,
    queue_tails,
    scheduled_registry,
    started_registry,
    waiting_key,
)
from sdk.transport.scripts import Scripts

log = logging.getLogger(__name__)


def _outcome(call_id: str, raw: str | None) -> Outcome | None:
    """A job's outcome field as an Outcome; None if it has none or it is unreadable
    (then the table is asked instead)."""
    if not raw:
        return None
    try:
        return from_json(raw, Outcome, f"outcome of job {call_id}")
    except DecodeError as exc:  # e.g. written by another version: the table has it too
        log.warning("%s; reading the table instead", exc)
        return None


@translating
class Jobs:
    def __init__(self, client: redis.Redis, scripts: Scripts):
        self._redis = client
        self._scripts = scripts

    def outcomes(self, call_ids: list[str]) -> dict[str, Outcome | None]:
        """For each call whose job still exists: its outcome once a worker finished
        it, else None. Calls whose job is gone (or unreadable) are left out."""
        pipe = self._redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hmget(job_key(call_id), ["status", "cp_outcome"])
        found: dict[str, Outcome | None] = {}
        for call_id, (status, raw) in zip(call_ids, pipe.execute()):
            if status is None:
                continue
            outcome = _outcome(call_id, raw)
            if outcome is not None or not raw:
                found[call_id] = outcome
        return found

    def waiting_on(self, call_id: str) -> str | None:
        """What a running call last said it waits on (JSON), if anything."""
        return self._redis.get(waiting_key(call_id))

    def standing(self, queue: str, call_id: str) -> tuple[str | None, int | None]:
        """A call's job status (None: no job) and, while it is on its queue, how many
        calls are ahead of it there."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(job_key(call_id), "status")
        pipe.lpos(queue_key(queue), call_id)
        status, ahead = pipe.execute()
        return status, ahead

    def abandon(self, queue: str, call_id: str, worker: str | None, attempt: int) -> Outcome | None:
        """Take an attempt away from a worker that will never report it; None, or
        the attempt's outcome if it has finished after all."""
        raw = self._scripts.abandon(
            keys=[job_key(call_id), started_registry(queue)], args=[worker or "", attempt, call_id]
        )
        return _outcome(call_id, raw)

    def untracked(self, calls: list[tuple[str, str, int]]) -> list[str]:
        """Of these pending calls [(queue, id, attempt)], those Redis has lost track
        of (see untracked.lua): they must be queued again."""
        if not calls:
            return []
        keys, args = [DELAYED_KEY], []
        for queue, call_id, attempt in calls:
            keys += (job_key(call_id), queue_key(queue))
            args += (call_id, attempt)
        return self._scripts.untracked(keys=keys, args=args)

    def settle(self, queue: str, outcome: Outcome) -> None:
        """Mirror an outcome that the table recorded first (a finish over HTTP, an
        attempt given up for good); wake its waiters."""
        call_id, finished_at = outcome.id, outcome.finished_at or datetime.now(timezone.utc)
        if outcome.succeeded:
            status, registry, ttl = rq_compat.FINISHED, finished_registry(queue), RESULT_TTL_SECONDS
        else:
            status, registry, ttl = rq_compat.FAILED, failed_registry(queue), FAILURE_TTL_SECONDS
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(job_key(call_id), mapping=rq_compat.outcome_fields(status, to_json(outcome),
                                                                      finished_at))
        pipe.zrem(started_registry(queue), call_id)
        pipe.zadd(registry, {call_id: finished_at.timestamp() + ttl})
        pipe.expire(job_key(call_id), RESULT_TTL_SECONDS)
        pipe.publish(DONE_CHANNEL, call_id)
        pipe.publish(FINISHED_CHANNEL, call_id)
        pipe.execute()

    def cancel(self, cancelled: list[tuple[str, Outcome]], at: datetime) -> None:
        """Mirror cancelled calls [(queue, outcome)]: each job says so (RQ's
        'canceled', with the outcome waiting workers read), leaves its queue and
        the started registry; then one broadcast of their ids to waiting workers,
        to the control planes' waiters and to the workers that may be running them."""
        pipe = self._redis.pipeline(transaction=True)
        for queue, outcome in cancelled:
            call_id = outcome.id
            self._scripts.unlist(keys=[queue_key(queue), queue_tails(queue), job_key(call_id)],
                                 args=[call_id], client=pipe)
            pipe.hset(job_key(call_id),
                      mapping=rq_compat.outcome_fields(rq_compat.CANCELED, to_json(outcome), at))
            pipe.expire(job_key(call_id), RESULT_TTL_SECONDS)
            pipe.zrem(DELAYED_KEY, call_id)
            pipe.zrem(scheduled_registry(queue), call_id)
            pipe.zrem(started_registry(queue), call_id)
            pipe.zadd(canceled_registry(queue), {call_id: at.timestamp() + FAILURE_TTL_SECONDS})
        message = " ".join(outcome.id for _, outcome in cancelled)
        for channel in (FINISHED_CHANNEL, DONE_CHANNEL, CANCEL_CHANNEL):
            pipe.publish(channel, message)
        pipe.execute()

    def has_epoch(self) -> bool:
        """Whether this Redis still holds the mark the control plane left in it; a
        Redis restarted without its data (or flushed) does not."""
        return bool(self._redis.exists(EPOCH_KEY))

    def mark_part_away(self, reason: str, seconds: float) -> None:
        """Tell every control plane that the database or Redis was away just now,
        so none gives up a lease for the next `seconds` (see PART_AWAY_KEY)."""
        self._redis.set(PART_AWAY_KEY, reason, px=max(1, int(seconds * 1000)))

    def part_away(self) -> bool:
        """Whether a control plane found the database or Redis away within a lease."""
        return bool(self._redis.exists(PART_AWAY_KEY))

    def mark_epoch(self) -> None:
        self._redis.set(EPOCH_KEY, datetime.now(timezone.utc).isoformat())
