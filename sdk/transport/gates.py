"""Gates: where calls of a limited stage (sdk.limits) wait in Redis until their
limits let them in, then go to their queues (see lua/admit.lua).

A gate is looked at whenever a slot may have come free: by the worker that
ended one of its calls, by the control plane after it queues, cancels or gives
up calls, and by the clock duty when its rate allows the next start (or, as a
safety net, a few seconds after it was last looked at). No worker ever pops a
call over its limit.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import cast

import msgspec
import redis

from sdk.limits import StageLimit
from sdk.transport import rq_compat
from sdk.transport.connection import translating
from sdk.transport.keys import (
    EPOCH_KEY,
    GATES_KEY,
    QUEUES_SET,
    gate_held,
    gate_pace,
    gate_slots,
    gate_starts,
    job_key,
    queue_key,
    queue_tails,
)
from sdk.transport.scripts import Scripts

#: Held calls offered to a gate per round trip, at most, and at least (cancelled
#: ones are dropped on the way).
PAGE = 100
MIN_PAGE = 10
#: Round trips one look at a gate makes, at most (it is looked at again later).
ROUNDS = 20
#: Seconds after which a gate with held calls is looked at again, whatever else happens.
RECHECK_SECONDS = 2.0
#: How late the clock may look at a gate its rate holds back (its tick, and some):
#: a rate lets that many seconds' worth of calls in at once.
LATE_SECONDS = 0.25


class GateStanding(msgspec.Struct, frozen=True):
    """A gate as it stands: the calls holding its slots, how many it holds back,
    and its starts within its rate's period."""

    gate: str
    holders: list[str]
    held: int
    starts: int
    #: When the gate is next looked at (epoch seconds), while it holds calls.
    next_look: float | None = None


@translating
class Gates:
    def __init__(self, client: redis.Redis, scripts: Scripts):
        self._redis = client
        self._scripts = scripts

    def admit(self, gate: str, limit: StageLimit) -> int:
        """Let in as many of the gate's held calls as its limits allow; how many."""
        admitted = 0
        page = min(PAGE, max(MIN_PAGE, limit.concurrency or PAGE, limit.rate_count or 0))
        for _ in range(ROUNDS):
            pipe = self._redis.pipeline(transaction=False)
            pipe.smembers(gate_slots(gate))
            pipe.zrange(gate_held(gate), 0, page - 1)
            holders, members = pipe.execute()
            keys = [gate_slots(gate), gate_held(gate), gate_starts(gate), GATES_KEY, QUEUES_SET,
                    EPOCH_KEY, gate_pace(gate)]
            keys += [job_key(holder) for holder in holders]
            for member in members:
                _, queue, call_id = member.split(" ")
                keys += (job_key(call_id), queue_key(queue), queue_tails(queue))
            let_in, left, dropped = self._scripts.admit(keys=keys, args=[
                gate, _number(limit.concurrency), _number(limit.rate_count),
                _number(limit.rate_seconds), RECHECK_SECONDS,
                rq_compat.rq_timestamp(datetime.now(timezone.utc)), LATE_SECONDS, len(holders),
                *holders, *members])
            admitted += let_in
            if not left or not (let_in or dropped):
                break
        return admitted

    def due(self, now: datetime, limit: int) -> list[str]:
        """The gates due to be looked at by `now`, `limit` at most."""
        return cast(list[str], self._redis.zrangebyscore(GATES_KEY, "-inf", now.timestamp(),
                                                          start=0, num=limit))

    def standing(self, gates: list[str], rate_seconds: float | None = None) -> list[GateStanding]:
        """How each of `gates` stands (starts counted over the last `rate_seconds`)."""
        since = datetime.now(timezone.utc).timestamp() - (rate_seconds or 0)
        pipe = self._redis.pipeline(transaction=False)
        for gate in gates:
            pipe.smembers(gate_slots(gate))
            pipe.zcard(gate_held(gate))
            pipe.zcount(gate_starts(gate), since, "+inf")
            pipe.zscore(GATES_KEY, gate)
        answers = pipe.execute()
        return [GateStanding(gate, sorted(answers[4 * i]), *answers[4 * i + 1:4 * i + 4])
                for i, gate in enumerate(gates)]

    def restore(self, running: list[tuple[str, str, str, str | None, int]]) -> int:
        """After Redis lost its data: the running calls of limited stages
        [(gate, id, queue, worker, attempt)] hold their slots again, with a job
        that says so (which their workers then finish as usual); how many."""
        if not running:
            return 0
        keys: list[str] = []
        args: list[str | int] = []
        for gate, call_id, queue, worker, attempt in running:
            keys += (job_key(call_id), gate_slots(gate))
            args += (call_id, queue, worker or "", attempt, gate)
        return self._scripts.restore_slots(keys=keys, args=args)


    def drop_stubs(self, call_ids: list[str]) -> None:
        """Restored jobs of calls that ended while being restored give their slots up."""
        if call_ids:
            self._scripts.drop_stubs(keys=[job_key(call_id) for call_id in call_ids], args=[])


def _number(value: float | None) -> float | str:
    return "" if value is None else value
