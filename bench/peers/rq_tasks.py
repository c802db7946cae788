"""Jobs the RQ workers run, and the one way both client and parent wait for a result."""

from __future__ import annotations

from time import perf_counter, sleep
from typing import Any

from rq import Queue, get_current_job
from rq.job import Job
from rq.results import Result

from bench.peers.base import CALL_TIMEOUT, whole_seconds


def noop() -> None:
    """Do nothing: the benchmark measures the system, not the job."""


def nap(seconds: float) -> None:
    """Sleep: a job that holds its slot without using the CPU (the concurrency workload)."""
    sleep(seconds)


def parent(children: int) -> float:
    """Run `children` no-op children in turn, each awaited; return the seconds it took."""
    job = get_current_job()
    queue = Queue(job.origin, connection=job.connection)
    started = perf_counter()
    for _ in range(children):
        result_of(queue.enqueue(noop), CALL_TIMEOUT)
    return perf_counter() - started


def result_of(job: Job, timeout: float) -> Any:
    """The job's return value, blocking on its result stream (XREAD), the fastest RQ 3 wait.

    The connection must allow a blocking read of `timeout` s: RQ's worker raises its own
    socket timeout past its dequeue timeout, and the benchmark client sets none.
    """
    result = job.latest_result(timeout=whole_seconds(timeout))
    if result is None:
        raise TimeoutError(f"RQ job {job.id}: no result after {timeout:.0f} s")
    if result.type != Result.Type.SUCCESSFUL:
        raise RuntimeError(f"RQ job {job.id} failed: {result.exc_string}")
    return result.return_value
