"""callplane on the benchmark's workloads, with its whole audit trail on.

A control plane (granian, a SQLite file: the defaults) runs for the whole
system; each workload starts its own workers, as for the peers. W1 also runs
with `--isolate` workers (a fresh process per call). W2 runs in two modes:
`dispatched` (workers started with --no-inline, so each child is queued for any
worker, as the peers do it) and `inline` (the default: a child its parent only
waits on runs in the parent's slot). W3 creates its calls a batch per request,
as `stage.map` does; the peers submit one job at a time. A variant
(bench/callplane_variants.py) changes one lever: `server_options` or
`database_url`.
"""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import psutil

from bench import callplane_tasks
from bench.common import Processes, free_port, most_at_once, python_command, wait_until
from bench.peers.base import PeerSystem
from bench.workloads import W1_MODES, W3ONE_MODES
from controlplane.store import Store, make_engine
from sdk.caller import RemoteCaller
from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from sdk.handles import CallHandle

#: Calls per batch in the memory run, and calls before its first reading.
MEMORY_BATCH = 5_000
MEMORY_WARM_UP = 5_000


class CallplaneSystem(PeerSystem):
    name = "callplane"
    w1_modes: tuple[str, ...] = W1_MODES
    w3one_modes: tuple[str, ...] = W3ONE_MODES
    #: Options the control plane's command line gets besides its port.
    server_options: tuple[str, ...] = ()

    def __init__(self, redis_url: str, workdir: Path) -> None:
        super().__init__(redis_url, workdir)
        port = free_port()
        self.server_url = f"http://127.0.0.1:{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        env = {"REDIS_URL": redis_url, "DATABASE_URL": self.database_url()}
        command = python_command("-m", "controlplane", "--port", str(port), *self.server_options)
        self._server = Processes([command], workdir, env).__enter__()
        try:
            wait_until(self._server_answers, 30, f"{self.name} control plane", interval=0.05)
        except BaseException:
            self._server.stop()
            raise
        self._client = ControlPlaneClient(self.server_url)
        self._caller, self._context = RemoteCaller(self._client), CallContext()
        self._worker_options: tuple[str, ...] = ()

    def database_url(self) -> str:
        """The audit database: the embedded default, a SQLite file of this system's own."""
        return f"sqlite:///{self.workdir / 'callplane.db'}"

    def _server_answers(self) -> bool:
        self._server.check_alive()
        try:
            with urllib.request.urlopen(f"{self.server_url}/api/openapi.json", timeout=1):
                return True
        except OSError:
            return False

    # -- what PeerSystem asks of a system ------------------------------------------

    def worker_commands(self, slots: int) -> list[list[str]]:
        return [
            python_command("-m", "sdk.worker", "--server-url", self.server_url,
                           "--redis-url", self.redis_url,
                           "--repo-name", "bench", "--commit-hash", "bench",
                           "--workflow-file", callplane_tasks.__file__, *self._worker_options)
            for _ in range(slots)
        ]

    def is_ready(self, slots: int) -> bool:
        return self._redis.scard("rq:workers") >= slots

    def submit_noop(self) -> CallHandle:
        return callplane_tasks.noop.submit()

    def submit_parent(self, children: int) -> CallHandle:
        return callplane_tasks.parent.submit(children)

    def submit_nap(self, seconds: float) -> CallHandle:
        return callplane_tasks.nap.submit(seconds)

    def call_nap(self, seconds: float) -> None:
        """A plain call of the stage: one request that creates the call and waits."""
        callplane_tasks.nap(seconds)

    def server_cpu_seconds(self) -> float:
        """User + system CPU of the control plane's process and its children (the HTTP
        server's worker processes)."""
        root = psutil.Process(self._server.pids[0])
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def wait(self, handle: CallHandle, timeout: float) -> Any:
        return handle.result(timeout)

    def count_finished(self, handles: Sequence[CallHandle]) -> int:
        return len(self._client.finished_calls([h.id for h in handles], 0))

    # -- callplane's own variants ---------------------------------------------------

    def w1_round_trip(self, calls: int, mode: str = "default") -> list[float]:
        """A plain call of the stage, as a user writes it (`noop()`: one request that
        creates the call and waits for it). `isolated`: the worker runs with
        --isolate (a fresh process per call)."""
        latencies = []
        with self._options("--isolate" if mode == "isolated" else None), self._workers(1):
            for _ in range(calls):
                started = time.perf_counter()
                callplane_tasks.noop()
                latencies.append(time.perf_counter() - started)
        return latencies

    def slots(self, calls: int, seconds: float, concurrency: int) -> float:
        """Seconds for `calls` calls of a stage that sleeps `seconds`, all submitted
        at once, on one worker process with --concurrency."""
        with self._options(f"--concurrency={concurrency}"), self._workers(1):
            callplane_tasks.nap(0)  # the worker is up
            started = time.perf_counter()
            handles = callplane_tasks.runner.submit(callplane_tasks.nap, [((seconds,), {})] * calls)
            callplane_tasks.runner.gather(*handles)
            return time.perf_counter() - started

    def w2_nested(self, children: int, slots: int, deadline: float,
                  mode: str = "inline") -> float | None:
        with self._options("--no-inline" if mode == "dispatched" else None):
            return super().w2_nested(children, slots, deadline)

    @contextmanager
    def _workers(self, slots: int) -> Iterator[Processes]:
        """Every workload's entry: the tasks module's runner is shared by the callplane
        systems of a run, so point it at this one's control plane first."""
        callplane_tasks.runner.attach(self._client, self._caller, self._context)
        with super()._workers(slots) as workers:
            yield workers

    @contextmanager
    def _options(self, option: str | None) -> Iterator[None]:
        self._worker_options = (option,) if option else ()
        try:
            yield
        finally:
            self._worker_options = ()

    def w3_fanout(self, calls: int, slots: int) -> tuple[float, float]:
        """As a user makes many calls: created a batch per request (what `map` does)."""
        return self._fan_out(slots, lambda: self._submit_many(calls), calls)

    def w3_one_by_one(self, calls: int, slots: int, mode: str = "default") -> tuple[float, float]:
        """As a web handler makes calls: one `submit()` each, from one thread, each
        returning once its call exists. `batched`: the same loop in `runner.batch()`,
        so the calls are created together (all of them by the end of the block)."""
        def submit() -> list[CallHandle]:
            block = callplane_tasks.runner.batch() if mode == "batched" else nullcontext()
            with block:
                return [callplane_tasks.noop.submit() for _ in range(calls)]

        return self._fan_out(slots, submit, calls)

    def _fan_out(self, slots: int, submit: Callable[[], list[CallHandle]], calls: int
                 ) -> tuple[float, float]:
        """(completed calls/s from first submit to last result, creations/s of `submit`)."""
        with self._workers(slots):
            started = time.perf_counter()
            handles = submit()
            submitted = time.perf_counter()
            callplane_tasks.runner.gather(*handles)
            finished = time.perf_counter()
        return calls / (finished - started), calls / (submitted - started)

    def w5_limited(self, calls: int, keys: int, seconds: float, slots: int) -> tuple[float, int]:
        """(completed calls/s, the most calls of one key that ran at once, from the
        recorded times) for `calls` calls of a stage limited to two at once per key,
        spread over `keys` keys."""
        with self._workers(slots):
            wait_until(lambda: any(limit["stage"] == "keyed" for limit in
                                   self._client.request("GET", "/api/limits")), 30, "the limit")
            started = time.perf_counter()
            handles = callplane_tasks.runner.submit(
                callplane_tasks.keyed, [((f"customer-{i % keys}", seconds), {}) for i in range(calls)])
            callplane_tasks.runner.gather(*handles)
            finished = time.perf_counter()
        store = Store(make_engine(self.database_url()))
        try:
            records = store.get_many(handle.id for handle in handles).values()
        finally:
            store.engine.dispose()
        by_key: dict[str, list[tuple[float, float]]] = {}
        for record in records:
            if record.started_at is not None and record.finished_at is not None:
                by_key.setdefault(record.arguments.args[0], []).append(
                    (record.started_at.timestamp(), record.finished_at.timestamp()))
        return calls / (finished - started), max(most_at_once(spans) for spans in by_key.values())

    def memory(self, calls: int) -> tuple[float, float]:
        """(worker RSS in MB after warm-up, its growth in MB over `calls` more calls)."""
        with self._workers(1):
            worker = psutil.Process(self._redis_worker_pid())
            self._run_batches(MEMORY_WARM_UP)
            before = worker.memory_info().rss
            self._run_batches(calls)
            after = worker.memory_info().rss
        return before / 2**20, (after - before) / 2**20

    def close(self) -> None:
        self._server.stop()
        super().close()

    def _submit_many(self, calls: int) -> list[CallHandle]:
        return callplane_tasks.runner.submit(callplane_tasks.noop, [((), {})] * calls)

    def _run_batches(self, calls: int) -> None:
        for start in range(0, calls, MEMORY_BATCH):
            handles = self._submit_many(min(MEMORY_BATCH, calls - start))
            callplane_tasks.runner.gather(*handles)

    def _redis_worker_pid(self) -> int:
        """The one worker's pid, from its RQ record (its name ends in .pid.random)."""
        (key,) = self._redis.smembers("rq:workers")
        return int(key.decode().rsplit(".", 2)[-2])

