"""The huey tasks, bound to a RedisHuey by `build` in the client and in the consumer alike."""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter, sleep

from huey import RedisHuey
from huey.api import TaskWrapper
from redis import ConnectionPool

from bench.peers.base import CALL_TIMEOUT


@dataclass(frozen=True)
class HueyApp:
    """A huey instance and its tasks, bound to one Redis."""

    huey: RedisHuey
    noop: TaskWrapper
    parent: TaskWrapper
    nap: TaskWrapper


def noop() -> None:
    """Do nothing: the benchmark measures the system, not the job."""


def nap(seconds: float) -> None:
    """Sleep: a job that holds its slot without using the CPU (the concurrency workload)."""
    sleep(seconds)


def build(redis_url: str) -> HueyApp:
    """RedisHuey whose `result.get(blocking=True)` wakes on BLPOP (notify_result), not polling.

    The pool has no socket timeout, or redis-py 8 would cut every BLPOP at 5 s. `store_none`
    keeps the no-op's None result, so a caller can wait for it.
    """
    pool = ConnectionPool.from_url(redis_url, socket_timeout=None)
    huey = RedisHuey("bench", connection_pool=pool, notify_result=True, store_none=True)
    noop_task = huey.task(name="noop")(noop)

    def parent(children: int) -> float:
        """Run `children` no-op children in turn, each awaited; return the seconds it took."""
        started = perf_counter()
        for _ in range(children):
            noop_task().get(blocking=True, timeout=CALL_TIMEOUT)
        return perf_counter() - started

    return HueyApp(huey, noop_task, huey.task(name="parent")(parent), huey.task(name="nap")(nap))

