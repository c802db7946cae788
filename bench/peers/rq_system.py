"""RQ 3 with `SimpleWorker` (no fork per job): one worker process per slot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rq import Queue, Worker
from rq.job import Job
from rq.results import Result

from bench.common import python_command
from bench.peers import rq_tasks
from bench.peers.base import PeerSystem

QUEUE_NAME = "bench"


class RQSystem(PeerSystem):
    """RQ's default serializer (pickle) and result TTL; jobs on one queue."""

    name = "rq"

    def __init__(self, redis_url: str, workdir: Path) -> None:
        super().__init__(redis_url, workdir)
        self._queue = Queue(QUEUE_NAME, connection=self._redis)

    def worker_commands(self, slots: int) -> list[list[str]]:
        return [python_command("-m", "rq.cli", "worker", "--worker-class", "rq.worker.SimpleWorker",
                               "--url", self.redis_url, "--name", f"bench-{slot}", QUEUE_NAME)
                for slot in range(slots)]

    def is_ready(self, slots: int) -> bool:
        return Worker.count(connection=self._redis, queue=self._queue) >= slots

    def submit_noop(self) -> Job:
        return self._queue.enqueue(rq_tasks.noop)

    def submit_parent(self, children: int) -> Job:
        return self._queue.enqueue(rq_tasks.parent, children)

    def submit_nap(self, seconds: float) -> Job:
        return self._queue.enqueue(rq_tasks.nap, seconds)

    def wait(self, handle: Job, timeout: float) -> Any:
        return rq_tasks.result_of(handle, timeout)

    def count_finished(self, handles: Sequence[Job]) -> int:
        keys = [Result.get_key(job.id) for job in handles]
        return self._redis.exists(*keys) if keys else 0
