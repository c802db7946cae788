"""Dispatch: putting calls on their queues, taking them off, claiming and finishing them.

The hot path of one call costs these round trips: enqueue (1, one script for a
whole batch), pop and claim (2 for an idle worker: a blocking pop, then a
script that claims the call, records the start event and hands back the job),
finish (1, a script that also records the finish event, tells waiting workers
and, for a busy worker, pops and claims its next call).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone

import msgspec
import redis

from sdk.records import CallMessage, Outcome, to_json
from sdk.reports import StartReport
from sdk.signing import JobSigner
from sdk.transport import rq_compat
from sdk.transport.connection import translating
from sdk.transport.keys import (
    DELAYED_KEY,
    EVENTS_STREAM,
    FAILURE_TTL_SECONDS,
    FINISHED_CHANNEL,
    GATE_SEQUENCE_KEY,
    GATES_KEY,
    QUEUES_SET,
    REJECTED_JOBS_KEY,
    RESULT_TTL_SECONDS,
    STARTED_SCORE,
    WAITING_TTL_SECONDS,
    canceled_registry,
    failed_registry,
    finished_registry,
    gate_held,
    job_key,
    queue_key,
    queue_of_key,
    queue_tails,
    scheduled_registry,
    started_registry,
    waiting_key,
)
from sdk.transport.scripts import Scripts

log = logging.getLogger(__name__)

#: What finish answers when the job is gone from Redis (it lost its keys).
JOB_GONE = -1
#: How often claim_next asks again with fresh hints when other workers took the
#: calls it expected (then the worker's blocking pop takes over).
CLAIM_TRIES = 3
#: How many of the ids expected at a queue's head a claim names (their job keys
#: are its declared keys); the script sends fresh ones when fewer than 4 are left.
HINTS_SENT = 8


class Claimed(msgspec.Struct, frozen=True):
    """A call this worker has just claimed: where it came from, its job data, its start."""

    queue: str
    call_id: str
    data: str
    start: StartReport


class FinishReport(msgspec.Struct, frozen=True):
    """A claimed call's outcome, as its worker reports it. A child's completion is
    also broadcast to waiting workers (`is_child`)."""

    queue: str
    outcome: Outcome
    outcome_json: str
    is_child: bool = True

    @classmethod
    def of(cls, queue: str, outcome: Outcome, is_child: bool = True) -> FinishReport:
        return cls(queue, outcome, to_json(outcome), is_child)


@translating
class Queues:
    def __init__(self, client: redis.Redis, scripts: Scripts, signer: JobSigner | None = None):
        """`signer`: signs the jobs this process queues and checks those it claims
        (sdk.signing); without one, jobs are neither signed nor checked."""
        self._redis = client
        self._scripts = scripts
        self._signer = signer
        #: The ids last seen at each queue's head: the calls (and so the job keys)
        #: claim_next may take (see claim_functions.lua).
        self._hints: dict[str, list[str]] = {}

    def enqueue(self, messages: list[CallMessage], created_at: datetime,
                due: Mapping[str, datetime] | None = None,
                priorities: Mapping[str, int] | None = None) -> None:
        """Write each call's RQ job hash and put it on its queue (by its priority in
        `priorities`, by id; default 0), in one round trip. A call in `due` (by id)
        waits until that time among the delayed calls; one with a gate, at its gate
        (see sdk.transport.gates)."""
        keys = [QUEUES_SET, DELAYED_KEY, GATES_KEY, GATE_SEQUENCE_KEY]
        args = [rq_compat.rq_timestamp(created_at), RESULT_TTL_SECONDS, created_at.timestamp()]
        due, priorities = due or {}, priorities or {}
        for message in messages:
            data = message.encode()
            signature = self._signer.sign(message.id, message.attempt, data) if self._signer else ""
            queue, gate = message.queue, message.gate
            keys += (job_key(message.id), queue_key(queue), failed_registry(queue),
                     canceled_registry(queue), scheduled_registry(queue), queue_tails(queue),
                     gate_held(gate) if gate else "",
                     job_key(message.parent_id) if gate and message.parent_id else "")
            when = due.get(message.id)
            args += (message.id, data, message.attempt, queue, rq_compat.job_description(message.stage),
                     signature, when.timestamp() if when is not None else "",
                     priorities.get(message.id, 0), gate or "")
        self._scripts.enqueue(keys=keys, args=args)

    def due(self, now: datetime, limit: int) -> list[str]:
        """The delayed calls due by `now`, earliest first, `limit` at most."""
        return self._redis.zrangebyscore(DELAYED_KEY, "-inf", now.timestamp(), start=0, num=limit)

    def next_due(self) -> float | None:
        """When the earliest delayed call is due (epoch seconds), if any is."""
        earliest = self._redis.zrange(DELAYED_KEY, 0, 0, withscores=True)
        return earliest[0][1] if earliest else None

    def promote(self, call_ids: list[str], now: datetime) -> int:
        """Move these due calls from the delayed ones to their queues; how many moved
        (each once, however many control planes move it at the same time)."""
        if not call_ids:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hmget(job_key(call_id), "origin", "cp_gate", "cp_parent_job")
        keys = [DELAYED_KEY, QUEUES_SET, GATES_KEY, GATE_SEQUENCE_KEY]
        for call_id, (queue, gate, parent_job) in zip(call_ids, pipe.execute()):
            queue = queue or ""  # a job Redis lost: it only leaves the delayed calls
            keys += (job_key(call_id), queue_key(queue), scheduled_registry(queue),
                     queue_tails(queue), gate_held(gate) if gate else "", parent_job or "")
        return self._scripts.promote(keys=keys, args=[rq_compat.rq_timestamp(now), now.timestamp(),
                                                      *call_ids])

    def gates_of(self, call_ids: list[str]) -> set[str]:
        """The gates these calls go through (those of limited stages)."""
        pipe = self._redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hget(job_key(call_id), "cp_gate")
        return {gate for gate in pipe.execute() if gate}

    def pop(self, queues: list[str], timeout: float) -> tuple[str, str] | None:
        """Block until a call is at the head of one of `queues` (in order of priority).

        Returns (queue, call id), or None when `timeout` seconds passed.
        """
        item = self._redis.blpop([queue_key(q) for q in queues], timeout=timeout)
        if not item:
            return None
        return queue_of_key(item[0]), item[1]

    def take(self, queue: str, call_id: str) -> bool:
        """Remove a still-queued call from its queue; True if this caller now owns it."""
        return self._redis.lrem(queue_key(queue), 1, call_id) == 1

    def take_any(
        self, candidates: list[tuple[str, str]], waiter: str | None = None, waiting_on: str = ""
    ) -> str | None:
        """Take the first of `candidates` [(queue, call id)] still queued; its id, or None.

        When none is, record `waiting_on` as what the call `waiter` waits on.
        """
        if not candidates and not (waiter and waiting_on):
            return None
        keys = [waiting_key(waiter) if waiter else ""]
        for queue, call_id in candidates:
            keys += (queue_key(queue), queue_tails(queue), job_key(call_id))
        return self._scripts.take_any(
            keys=keys, args=[waiting_on, WAITING_TTL_SECONDS] + [call_id for _, call_id in candidates])

    def claim(self, queue: str, call_id: str, start: StartReport) -> Claimed | None:
        """Atomically move a queued job to started; None if it is not claimable."""
        at = start.started_at
        answer = self._scripts.claim(
            keys=[job_key(call_id), started_registry(queue), EVENTS_STREAM, queue_key(queue)],
            args=[start.worker, rq_compat.rq_timestamp(at), STARTED_SCORE,
                  call_id, start.body],
        )
        if answer is None:
            return None
        if answer[0] == "claimed":
            self._hints[queue] = answer.pop()
        return self._genuine(queue, call_id, answer, start)

    def claim_next(self, queues: list[str], start: StartReport) -> Claimed | None:
        """Pop and claim the first claimable call of `queues`, without blocking;
        None when there is none, or other workers keep taking the ones expected."""
        for _ in range(CLAIM_TRIES):
            keys, args = self._claim_next_call(queues, start)
            reply = self._scripts.claim_next(keys=keys, args=args)
            if not self._missed(reply):
                return self._claimed(reply, start)
        return None

    def finish(self, report: FinishReport) -> int:
        """Record a started job's outcome: 1, or 0 if this worker no longer holds
        the attempt, or JOB_GONE if the job is gone (Redis lost it)."""
        keys, args = self._finish_call(report)
        return self._scripts.finish(keys=keys, args=args)

    def finish_and_claim_next(
        self, report: FinishReport, queues: list[str], start: StartReport
    ) -> tuple[int, Claimed | None]:
        """`finish`, then `claim_next`, in one round trip: a busy worker's loop."""
        finish_keys, finish_args = self._finish_call(report)
        claim_keys, claim_args = self._claim_next_call(queues, start)
        accepted, claimed = self._scripts.finish_and_claim_next(
            keys=finish_keys + claim_keys[1:], args=finish_args + claim_args
        )
        if self._missed(claimed):
            return accepted, self.claim_next(queues, start)
        return accepted, self._claimed(claimed, start)

    def _claim_next_call(self, queues: list[str], start: StartReport) -> tuple[list, list]:
        keys = [EVENTS_STREAM]
        at = start.started_at
        args = [start.worker, rq_compat.rq_timestamp(at), STARTED_SCORE, start.body, len(queues)]
        for queue in queues:
            hints = self._hints.get(queue, [])[:HINTS_SENT]
            keys += (queue_key(queue), started_registry(queue), *map(job_key, hints))
            args += (len(hints), *hints)
        return keys, args

    def _missed(self, reply) -> bool:
        """Whether claim_next found a call it did not expect at a queue's head;
        its hints are then the queue's head as it is now."""
        if not reply or reply[0] != "missed":
            return False
        self._hints[queue_of_key(reply[1])] = reply[2]
        return True

    def _claimed(self, reply, start: StartReport) -> Claimed | None:
        if not reply:
            return None
        key, call_id, hints, *answer = reply
        queue = queue_of_key(key)
        if not hints:  # the ones after the call it got are still the next in line
            known = self._hints.get(queue, [])
            hints = known[known.index(call_id) + 1:] if call_id in known else []
        self._hints[queue] = hints
        return self._genuine(queue, call_id, answer, start)

    def _genuine(self, queue: str, call_id: str, answer: list[str], start: StartReport
                 ) -> Claimed | None:
        """A claim's answer (see claim_functions.lua) as the call to run; None, the
        job set aside, when the control plane did not write it as it is."""
        if answer[0] == "refused":
            return self._set_aside(queue, call_id, answer[1])
        _, data, attempt, signature = answer
        if self._signer is not None and not self._signer.genuine(call_id, attempt, data, signature):
            why = "its signature is not the control plane's" if signature else "it is not signed"
            return self._set_aside(queue, call_id, why + " (the control plane did not create it)")
        return Claimed(queue, call_id, data, start)

    def _set_aside(self, queue: str, call_id: str, why: str) -> None:
        """Never run a job the control plane did not write: into the failed
        registry with the reason, counted, logged; the worker goes on."""
        now = datetime.now(timezone.utc)
        reason = f"callplane refused to run job {call_id!r}: {why}"
        count = self._scripts.set_aside(
            keys=[job_key(call_id), started_registry(queue), failed_registry(queue), REJECTED_JOBS_KEY],
            args=[call_id, reason, rq_compat.rq_timestamp(now), now.timestamp() + FAILURE_TTL_SECONDS],
        )
        log.error("%s; set aside in %s (%d so far)", reason, failed_registry(queue), count)

    def rejected(self) -> int:
        """How many jobs workers have refused to run."""
        return int(self._redis.get(REJECTED_JOBS_KEY) or 0)

    @staticmethod
    def _finish_call(report: FinishReport) -> tuple[list, list]:
        outcome = report.outcome
        if outcome.succeeded:
            status, registry, ttl = rq_compat.FINISHED, finished_registry(report.queue), RESULT_TTL_SECONDS
        else:
            status, registry, ttl = rq_compat.FAILED, failed_registry(report.queue), FAILURE_TTL_SECONDS
        error = outcome.error
        finished_at = outcome.finished_at
        keys = [job_key(outcome.id), started_registry(report.queue), registry, EVENTS_STREAM]
        args = [
            outcome.worker,
            report.outcome_json,
            status,
            rq_compat.rq_timestamp(finished_at),
            finished_at.timestamp() + ttl,
            outcome.id,
            (error.traceback or error.message) if error else "",
            FINISHED_CHANNEL if report.is_child else "",
            outcome.attempt,
        ]
        return keys, args
