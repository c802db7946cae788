"""The audit database away for longer than a lease, on a PostgreSQL of the test's
own: the call running meanwhile is not taken for lost (its side effect happens
once), the API answers 503 with Retry-After (never 500), and the caller waiting
on it gets its result once the database is back."""

from __future__ import annotations

import threading
import time

import requests

from controlplane.migrate import upgrade
from sdk.caller import RemoteCaller
from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from tests.cluster import Cluster, executions
from tests.private_postgres import private_postgres
from tests.workflows import recovery

LEASE_SECONDS = 3


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {seconds} s"
        time.sleep(0.1)


def test_the_database_away_longer_than_a_lease_loses_nothing_and_runs_nothing_twice(tmp_path):
    with private_postgres() as postgres:
        upgrade(postgres.url)
        # Two server processes, as the Procfile runs: each has a recorder, and the
        # reports that wait out the outage are spread over both.
        cluster = Cluster(tmp_path, {"DATABASE_URL": postgres.url,
                                     "CALLPLANE_LEASE_SECONDS": str(LEASE_SECONDS)},
                          server_options=("--workers", "2"))
        try:
            cluster.worker()
            # Each request gives up on an outage after 1 s: waiting through a longer
            # one is the caller's part, up to its own timeout.
            client = ControlPlaneClient(cluster.server_url, outage_seconds=1)
            recovery.runner.attach(client, RemoteCaller(client), CallContext())
            log = tmp_path / "executions.log"
            handle = recovery.logged_nap.submit(str(log), 4 * LEASE_SECONDS, "done")
            wait_for(lambda: executions(log), 30, "started")
            results: list[object] = []
            waiter = threading.Thread(target=lambda: results.append(handle.result(timeout=120)))
            waiter.start()

            postgres.stop()
            read = requests.get(f"{cluster.server_url}/api/call/{handle.id}", timeout=10)
            create = requests.post(f"{cluster.server_url}/api/call", timeout=10,
                                   json={"stage": "echo", "arguments": {"args": [1]}})
            for answer in (read, create):
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] and "unavailable" in answer.json()["message"]
            time.sleep(3 * LEASE_SECONDS)  # the lease ends meanwhile; heartbeats wait in Redis
            postgres.start()

            waiter.join(timeout=120)
            assert results == ["done"]
            assert len(executions(log)) == 1  # never given up, never run again
            row = requests.get(f"{cluster.server_url}/api/call/{handle.id}", timeout=10).json()
            assert (row["status"], row["attempt"]) == ("succeeded", 1)
            assert "Exception on" not in (tmp_path / "controlplane.log").read_text()  # no 500
        finally:
            cluster.close()
