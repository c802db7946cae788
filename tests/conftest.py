"""Real parts, really started: a private redis-server, a database (SQLite, or a
fresh PostgreSQL database when CALLPLANE_TEST_POSTGRES names a server), a real
control plane (granian) and real worker processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from controlplane.local_cluster import (
    free_port,
    start_redis_server,
    start_server,
    start_worker,
    stop,
)
from controlplane.migrate import upgrade

#: The fixtures of the cluster that tests kill and restart parts of.
pytest_plugins = ["tests.cluster"]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "workflows" / "sample.py"
PARALLEL = ROOT / "tests" / "workflows" / "parallel.py"
#: A commit hash for test workers, so tests do not depend on the checkout's git state.
TEST_COMMIT = "0" * 40


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    port = free_port()
    process = start_redis_server(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    stop(process)


@contextlib.contextmanager
def fresh_database(directory: Path):
    """A database of its own, migrated: a SQLite file in `directory`, or a new
    PostgreSQL database when CALLPLANE_TEST_POSTGRES names a server."""
    server = os.environ.get("CALLPLANE_TEST_POSTGRES")
    if not server:
        url = f"sqlite:///{directory / 'callplane.db'}"
        upgrade(url)
        yield url
        return
    import psycopg

    name = f"callplane_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{server}/{name}"
    upgrade(url)
    try:
        yield url
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def env(redis_url, database_url):
    return {"REDIS_URL": redis_url, "DATABASE_URL": database_url}


@pytest.fixture(scope="session")
def server_url(env, tmp_path_factory):
    port = free_port()
    with open(tmp_path_factory.mktemp("logs") / "controlplane.log", "w") as log:
        process = start_server(port, env, stdout=log, stderr=subprocess.STDOUT)
        yield f"http://127.0.0.1:{port}"
        stop(process)


@contextlib.contextmanager
def control_plane_with_token(env: dict[str, str], token: str | None, directory: Path,
                             **more: str):
    """A second control plane on the session's Redis and database, requiring
    `token` (when given), with `more` of the environment."""
    port = free_port()
    with open(directory / "controlplane.log", "w") as log:
        server = start_server(port, {**env, "CALLPLANE_TOKEN": token or "", **more}, stdout=log,
                              stderr=subprocess.STDOUT)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(server)


def redis_database(redis_url: str, number: int) -> str:
    """Another database of the session's Redis: for a control plane with a database
    of its own (two on one Redis database would take each other's worker reports)."""
    return f"{redis_url.rsplit('/', 1)[0]}/{number}"


@pytest.fixture(scope="session")
def workers(server_url, redis_url, env):
    """Two workers of the sample workflow, shared by the tests that only run calls."""
    started = [start_worker(server_url, redis_url, SAMPLE, "tests", TEST_COMMIT, env) for _ in range(2)]
    yield started
    for process in started:
        stop(process)


@pytest.fixture()
def runner(server_url, workers):
    """The sample workflow's runner, pointed at the test control plane, in this process."""
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext
    from tests.workflows import sample

    client = ControlPlaneClient(server_url)
    sample.runner.attach(client, RemoteCaller(client), CallContext())
    return sample.runner


@pytest.fixture()
def api(server_url):
    session = requests.Session()

    def call(method, path, **kwargs):
        return session.request(method, server_url + path, timeout=60, **kwargs)

    return call


@pytest.fixture(scope="session")
def store(database_url):
    """The audit table, read directly: tests check what was recorded."""
    from controlplane.store import Store, make_engine

    store = Store(make_engine(database_url))
    yield store
    store.engine.dispose()


@pytest.fixture
def parallel_runner(server_url):
    """The parallel workflow's runner, pointed at the test control plane, in this process."""
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext
    from tests.workflows import parallel

    client = ControlPlaneClient(server_url)
    parallel.runner.attach(client, RemoteCaller(client), CallContext())
    return parallel.runner


def start_parallel_workers(server_url, redis_url, env, count, options=()):
    return [
        start_worker(server_url, redis_url, PARALLEL, "tests", TEST_COMMIT, env, options)
        for _ in range(count)
    ]


#: Figures that tests measured (a failover's time to recover, ...), shown at the end.
FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture()
def report_figure(request):
    """`report_figure(text)`: show `text`, with the test's name, in the run's summary."""
    figures = request.config.stash.setdefault(FIGURES, [])
    return lambda text: figures.append(f"{request.node.name}: {text}")


def pytest_terminal_summary(terminalreporter, config):
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("figures measured")
        for line in figures:
            terminalreporter.write_line(line)
