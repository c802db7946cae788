"""The workloads, written once for every peer against a small driver interface.

A peer module only says how to start its workers, submit a job and wait for a result; the
timing, warm-up, deadlock deadline and clean-up live here, so all peers are measured alike.
"""

from __future__ import annotations

import math
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

from bench.common import REDIS_URL_ENV, Processes, blocking_client, wait_until

READY_TIMEOUT = 60.0  # seconds for workers to come up (Celery's start-up takes a few)
CALL_TIMEOUT = 60.0  # seconds for one no-op call; far above any healthy latency
WARM_UP_CALLS = 5  # calls before timing, so imports and connections are made


class PeerSystem(ABC):
    """One peer on a private Redis: `w1_round_trip`, `w2_nested`, `w3_fanout`, `close`."""

    name: str

    def __init__(self, redis_url: str, workdir: Path) -> None:
        self.redis_url = redis_url
        self.workdir = workdir
        self._redis = blocking_client(redis_url)

    # -- what a peer provides --------------------------------------------------------------

    @abstractmethod
    def worker_commands(self, slots: int) -> list[list[str]]:
        """The commands that start workers with `slots` job slots in all."""

    def is_ready(self, slots: int) -> bool:
        """Whether all workers listen; the default trusts the warm-up calls instead."""
        return True

    @abstractmethod
    def submit_noop(self) -> Any:
        """Submit one no-op job; return its handle."""

    @abstractmethod
    def submit_parent(self, children: int) -> Any:
        """Submit a job that runs `children` no-op children in turn; it returns its seconds."""

    @abstractmethod
    def wait(self, handle: Any, timeout: float) -> Any:
        """The job's return value; raise TimeoutError after `timeout` seconds."""

    @abstractmethod
    def count_finished(self, handles: Sequence[Any]) -> int:
        """How many of these jobs have a stored result (a few Redis commands at most)."""

    # -- the workloads ---------------------------------------------------------------------

    def w1_round_trip(self, calls: int) -> list[float]:
        """Seconds per submit-and-wait of one no-op job, `calls` times in turn, one worker."""
        latencies = []
        with self._workers(slots=1):
            for _ in range(calls):
                started = perf_counter()
                self.wait(self.submit_noop(), CALL_TIMEOUT)
                latencies.append(perf_counter() - started)
        return latencies

    def w2_nested(self, children: int, slots: int, deadline: float) -> float | None:
        """Seconds per child, as the parent measures it; None if it missed `deadline`."""
        with self._workers(slots) as workers:
            if slots > 1:
                self.wait(self.submit_parent(WARM_UP_CALLS), CALL_TIMEOUT)
            try:
                seconds = self.wait(self.submit_parent(children), deadline)
            except TimeoutError:
                workers.kill()
                return None
        return seconds / children

    def w3_fanout(self, calls: int, slots: int) -> tuple[float, float]:
        """(completed calls/s from first submit to last result, creations/s of the submit loop)."""
        with self._workers(slots):
            started = perf_counter()
            handles = [self.submit_noop() for _ in range(calls)]
            submitted = perf_counter()
            # Block on the last job, then confirm the rest with one cheap count: polling
            # all results meanwhile would steal CPU from the two workers.
            self.wait(handles[-1], CALL_TIMEOUT + calls / 50)
            wait_until(lambda: self.count_finished(handles[:-1]) >= calls - 1, CALL_TIMEOUT,
                       f"{self.name}: {calls} results")
            finished = perf_counter()
        return calls / (finished - started), calls / (submitted - started)

    def w3_one_by_one(self, calls: int, slots: int) -> tuple[float, float]:
        """W3 as a peer's user submits: one job per enqueue (which is how w3_fanout submits)."""
        return self.w3_fanout(calls, slots)

    def close(self) -> None:
        """Drop the client connections."""
        self._redis.close()

    # -- shared machinery ------------------------------------------------------------------

    @contextmanager
    def _workers(self, slots: int) -> Iterator[Processes]:
        """Workers up, ready and warmed; afterwards stopped and Redis emptied for the next run."""
        log_dir = self.workdir / "logs"
        shutil.rmtree(log_dir, ignore_errors=True)
        log_dir.mkdir(parents=True)
        workers = Processes(self.worker_commands(slots), log_dir, {REDIS_URL_ENV: self.redis_url})
        try:
            with workers:
                self._await_ready(workers, slots)
                yield workers
        finally:
            self._redis.flushall()

    def _await_ready(self, workers: Processes, slots: int) -> None:
        def ready() -> bool:
            workers.check_alive()
            return self.is_ready(slots)

        try:
            wait_until(ready, READY_TIMEOUT, f"{self.name} workers ready", interval=0.05)
            for handle in [self.submit_noop() for _ in range(max(WARM_UP_CALLS, 2 * slots))]:
                self.wait(handle, READY_TIMEOUT)
        except TimeoutError as error:
            raise RuntimeError(f"{error}; worker logs: {workers.logs()}") from error


def whole_seconds(timeout: float) -> int:
    """A timeout for APIs that take whole seconds, never rounded down to 'forever' (0)."""
    return max(1, math.ceil(timeout))
