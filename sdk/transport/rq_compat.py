"""What keeps callplane's work readable by RQ's tools (`rq info`, rq-dashboard): the
layout of its job hashes and the records of its workers.

A job is RQ's hash at `rq:job:<call id>` with RQ's fields (`data` in RQ's JSON
serializer layout, `status`, `origin`, `description`, timestamps) plus
callplane's own: `cp_attempt` (the attempt the job runs) and `cp_outcome` (the
attempt's Outcome, once finished). Statuses are RQ's, plus `stopped` for an
attempt taken away from a worker that will never report it.
"""

from __future__ import annotations

from datetime import datetime, timezone

import redis

from sdk.transport.connection import CONNECT_TIMEOUT_SECONDS, connect, translating
from sdk.transport.keys import worker_key

#: RQ's job statuses, as callplane's scripts set them.
QUEUED, STARTED, FINISHED, FAILED, CANCELED = "queued", "started", "finished", "failed", "canceled"


def rq_timestamp(at: datetime) -> str:
    """RQ's timestamp format (`rq.utils.utcformat`)."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job_description(stage: str) -> str:
    """What rq-dashboard shows as a job's description."""
    return f"callplane stage {stage}"


def serializer() -> type:
    """The serializer RQ's tools must read callplane's jobs with (RQ's default is pickle)."""
    from rq.serializers import JSONSerializer

    return JSONSerializer


def outcome_fields(status: str, outcome_json: str, ended_at: datetime) -> dict[str, str]:
    """A job hash's fields once its attempt ended that way."""
    return {"status": status, "ended_at": rq_timestamp(ended_at), "cp_outcome": outcome_json}


@translating
class RqWorkerRecord:
    """A worker as RQ sees it, written by RQ's own Worker class.

    Only birth, heartbeats and death go through it; callplane's own loop takes
    the calls, so RQ's per-job bookkeeping stays off the hot path.
    """

    def __init__(self, redis_url: str, name: str, queues: list[str]):
        from rq import Queue, Worker

        connection = connect(redis_url, decode=False, timeout=CONNECT_TIMEOUT_SECONDS)
        self._worker = Worker(
            [Queue(q, connection=connection, serializer=serializer()) for q in queues],
            connection=connection,
            name=name,
            serializer=serializer(),
        )

    def birth(self, ttl_seconds: int) -> None:
        """Listed, for `ttl_seconds` unless a heartbeat renews it (RQ's own birth
        lists a worker for its worker_ttl plus a minute)."""
        self._worker.register_birth()
        self._worker.heartbeat(ttl_seconds)
        self._worker.set_state("idle")

    def heartbeat(self, ttl_seconds: int) -> None:
        self._worker.heartbeat(ttl_seconds)

    def death(self) -> None:
        self._worker.register_death()


@translating
class RqWorkers:
    """Which workers RQ knows of (a worker that started is listed at once)."""

    def __init__(self, client: redis.Redis):
        self._redis = client

    def registered(self, name: str) -> bool:
        return self._redis.exists(worker_key(name)) == 1
