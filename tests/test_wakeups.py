"""Waiting that cannot miss: 10,000 instant calls, awaited through a control
plane whose periodic re-read is an hour apart, so every waiter is woken by a
completion broadcast or not at all. Each wait ends within a second (the client
asks so), and at its deadline the control plane reads the table once more and
logs any finished call whose broadcast never came: there must be none."""

from __future__ import annotations

import subprocess

import pytest

from controlplane.local_cluster import free_port, start_server, stop
from tests.conftest import start_parallel_workers
from tests.workflows import parallel

CALLS = 10_000


@pytest.fixture()
def deaf_to_rereads(env, tmp_path):
    """A second control plane on the session's Redis and database, re-reading
    waited-on calls only once an hour."""
    port = free_port()
    log_path = tmp_path / "controlplane.log"
    with open(log_path, "w") as log:
        server = start_server(port, {**env, "CALLPLANE_RECHECK_SECONDS": "3600"},
                              stdout=log, stderr=subprocess.STDOUT)
        try:
            yield f"http://127.0.0.1:{port}", log_path
        finally:
            stop(server)


def test_no_waiter_misses_a_completion(deaf_to_rereads, server_url, redis_url, env):
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext

    url, log_path = deaf_to_rereads
    workers = start_parallel_workers(server_url, redis_url, env, 2)
    try:
        client = ControlPlaneClient(url)
        parallel.runner.attach(client, RemoteCaller(client, wait_seconds=1), CallContext())
        handles = parallel.runner.submit(parallel.square, [((i,), {}) for i in range(CALLS)])
        assert parallel.runner.gather(*handles) == [i * i for i in range(CALLS)]
    finally:
        for worker in workers:
            stop(worker)
    log = log_path.read_text()
    assert "missed wake-up" not in log, log[-2000:]
