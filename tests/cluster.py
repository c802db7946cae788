"""A cluster of its own for the tests that kill and restart its parts: a private
redis-server, database and control plane with a 2-second lease (so recovery
takes seconds), and workers of tests/workflows/recovery.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.local_cluster import (
    free_port,
    start_redis_server,
    start_server,
    start_worker,
    stop,
)
from tests.conftest import ROOT, TEST_COMMIT, fresh_database
from tests.workflows import recovery

WORKFLOW = ROOT / "tests" / "workflows" / "recovery.py"
LEASE_SECONDS = 2


class Cluster:
    """A redis-server, a control plane and workers of the recovery workflow, each
    of which a test may kill and start again on the same port."""

    def __init__(self, directory: Path, env: dict[str, str], server_options: tuple[str, ...] = (),
                 workflow: Path = WORKFLOW, redis_url: str | None = None):
        """`redis_url`: a Redis someone else started (and stops); by default the
        cluster starts its own."""
        self.logs, self.env, self.workflow = directory, env, workflow
        self.server_options = server_options
        self.redis_port, self.server_port = free_port(), free_port()
        self.redis_server: subprocess.Popen | None = None
        if redis_url is None:
            redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
            self.redis_server = start_redis_server(self.redis_port, directory)
        self.redis_url = redis_url
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        self.env.update(REDIS_URL=self.redis_url)
        self.started: list[subprocess.Popen] = []
        self.server = self._start_server()

    def _start_server(self) -> subprocess.Popen:
        log = open(self.logs / "controlplane.log", "a")  # noqa: SIM115 - the server's lifetime
        # A session of its own, so that killing it kills its server processes too.
        return start_server(self.server_port, self.env, *self.server_options, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def kill_server(self) -> None:
        os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait()

    def restart_server(self) -> None:
        self.server = self._start_server()

    def kill_redis(self) -> None:
        assert self.redis_server is not None, "this cluster's Redis is not its own"
        self.redis_server.kill()
        self.redis_server.wait()

    def start_redis(self) -> None:
        """A new redis-server on the same port, with nothing in it."""
        self.redis_server = start_redis_server(self.redis_port, self.logs)

    def restart_redis_empty(self) -> None:
        self.kill_redis()
        self.start_redis()

    def close(self) -> None:
        self.stop_workers()
        stop(self.server)
        if self.redis_server is not None:
            stop(self.redis_server)

    def worker(self, *options: str) -> subprocess.Popen:
        log = open(self.logs / f"worker-{len(self.started)}.log", "w")  # noqa: SIM115 - the worker's lifetime
        process = start_worker(self.server_url, self.redis_url, self.workflow, "tests", TEST_COMMIT,
                               self.env, options, stdout=log, stderr=subprocess.STDOUT)
        process.log_path = Path(log.name)
        self.started.append(process)
        return process

    def stop_workers(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
            stop(process)
        self.started.clear()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("recovery")
    with fresh_database(directory) as database_url:
        cluster = Cluster(directory, {
            "DATABASE_URL": database_url,
            "CALLPLANE_LEASE_SECONDS": str(LEASE_SECONDS),
            "CALLPLANE_LOST_ATTEMPTS": "3",
        })
        try:
            yield cluster
        finally:
            cluster.close()


@pytest.fixture()
def run(cluster, store_of):
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext

    client = ControlPlaneClient(cluster.server_url)
    recovery.runner.attach(client, RemoteCaller(client), CallContext())
    yield cluster
    cluster.stop_workers()


@pytest.fixture(scope="session")
def store_of(cluster):
    with store_on(cluster) as store:
        yield store


@contextlib.contextmanager
def store_on(cluster: Cluster) -> Iterator:
    """The store of a cluster's database, as the tests read it."""
    from controlplane.store import Store, make_engine

    store = Store(make_engine(cluster.env["DATABASE_URL"]))
    try:
        yield store
    finally:
        store.engine.dispose()


@contextlib.contextmanager
def cluster_of(directory: Path, runner, workflow: Path = WORKFLOW,
               redis_url: str | None = None, env: dict[str, str] | None = None,
               server_options: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """A cluster no other test's calls are in (a database of its own, a 2-second
    lease, more of `env`), whose control plane `runner` sends its calls to; on
    `redis_url` when given, else on a redis-server of its own."""
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext

    with fresh_database(directory) as database_url:
        cluster = Cluster(directory, {"DATABASE_URL": database_url,
                                      "CALLPLANE_LEASE_SECONDS": str(LEASE_SECONDS), **(env or {})},
                          server_options, workflow=workflow, redis_url=redis_url)
        client = ControlPlaneClient(cluster.server_url)
        runner.attach(client, RemoteCaller(client), CallContext())
        try:
            yield cluster
        finally:
            cluster.close()


def executions(log: Path) -> list[int]:
    """The pids a recovery stage logged, one per execution."""
    return [int(pid) for pid in log.read_text().split()] if log.exists() else []


#: Lines of each log a failed test's report shows.
LOG_TAIL_LINES = 40


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test on a Cluster shows the tail of its control plane's and workers'
    logs (what recovery, the recorder and the clock did), so that a failure on a
    machine nobody can log in to can still be read."""
    report = yield
    if report.failed and call.when == "call":
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Cluster):
                for log in sorted(value.logs.glob("*.log")):
                    lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
                    report.sections.append((f"log {log.name}", "\n".join(lines)))
    return report
