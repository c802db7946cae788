"""The workloads, written once for every peer against a small driver interface.

A peer module only says how to start its workers, submit a job and wait for a result; the
timing, warm-up, deadlock deadline, client threads and clean-up live here, so all peers are
measured alike.
"""

from __future__ import annotations

import math
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from bench.common import REDIS_URL_ENV, Processes, blocking_client, wait_until

READY_TIMEOUT = 60.0  # seconds for workers to come up (Celery's start-up takes a few)
CALL_TIMEOUT = 60.0  # seconds for one no-op call; far above any healthy latency
WARM_UP_CALLS = 5  # calls before timing, so imports and connections are made


@dataclass(frozen=True)
class Concurrency:
    """What many client threads saw: completed calls/s, each call's seconds, and the control
    plane's CPU seconds over the timed calls (None for a system that has no control plane)."""

    calls_per_s: float
    latencies: list[float]
    server_cpu_seconds: float | None


class PeerSystem(ABC):
    """One peer on a private Redis: `w1_round_trip`, `w2_nested`, `w3_fanout`, `concurrency`,
    `close`."""

    name: str
    #: The workload keys this system runs; None for all that apply to it.
    workloads: frozenset[str] | None = None

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
    def submit_nap(self, seconds: float) -> Any:
        """Submit one job that sleeps `seconds`; return its handle."""

    def call_nap(self, seconds: float) -> None:
        """Submit a nap and wait for it: what one client thread does per call."""
        self.wait(self.submit_nap(seconds), CALL_TIMEOUT)

    def server_cpu_seconds(self) -> float | None:
        """CPU seconds the control plane has used so far; a peer has none."""
        return None

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

    def concurrency(self, threads: int, calls: int, slots: int, seconds: float) -> Concurrency:
        """`threads` clients each make `calls` nap calls in turn, on `slots` job slots."""
        with self._workers(slots):
            return self._clients(threads, calls, seconds)

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

    def _clients(self, threads: int, calls: int, seconds: float) -> Concurrency:
        """Each thread makes one untimed call (its own connections), then all start at once;
        the first client's error is raised once every thread has stopped."""
        start, stop = threading.Barrier(threads + 1), threading.Event()
        latencies: list[list[float]] = [[] for _ in range(threads)]
        errors: list[Exception] = []

        def client(mine: list[float]) -> None:
            try:
                self.call_nap(seconds)
                start.wait()
                while len(mine) < calls and not stop.is_set():
                    began = perf_counter()
                    self.call_nap(seconds)
                    mine.append(perf_counter() - began)
            except threading.BrokenBarrierError:
                pass  # another client failed first: its error is the one reported
            except Exception as error:  # noqa: BLE001 - handed to the runner below
                errors.append(error)
                stop.set()
                start.abort()

        clients = [threading.Thread(target=client, args=(mine,), daemon=True,
                                    name=f"{self.name}-client-{i}")
                   for i, mine in enumerate(latencies)]
        try:
            for thread in clients:
                thread.start()
            start.wait(READY_TIMEOUT)
            cpu_before, began = self.server_cpu_seconds(), perf_counter()
            for thread in clients:
                thread.join()
            wall, cpu_after = perf_counter() - began, self.server_cpu_seconds()
        except threading.BrokenBarrierError:
            for thread in clients:
                thread.join()
            raise errors[0] if errors else TimeoutError(f"{self.name}: clients not ready")
        finally:
            stop.set()  # on Ctrl-C, the clients stop after their current call
        if errors:
            raise errors[0]
        spent = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        return Concurrency(threads * calls / wall, [s for mine in latencies for s in mine], spent)


def whole_seconds(timeout: float) -> int:
    """A timeout for APIs that take whole seconds, never rounded down to 'forever' (0)."""
    return max(1, math.ceil(timeout))
