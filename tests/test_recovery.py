"""Never lose a call, never record one twice: workers killed mid-call, a process
that dies, a worker that dies right after claiming, a worker stopped past its
lease. Each test runs on a cluster of its own module (a private redis-server,
database and control plane) with a 2-second lease, so recovery takes seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from controlplane.local_cluster import (
    free_port,
    start_redis_server,
    start_server,
    start_worker,
    stop,
    wait_until,
)
from sdk.errors import StageFailed
from tests.conftest import ROOT, TEST_COMMIT, fresh_database
from tests.workflows import recovery

WORKFLOW = ROOT / "tests" / "workflows" / "recovery.py"
LEASE_SECONDS = 2


class Cluster:
    """A redis-server, a control plane and workers of the recovery workflow, each
    of which a test may kill and start again on the same port."""

    def __init__(self, directory: Path, env: dict[str, str]):
        self.logs, self.env = directory, env
        self.redis_port, self.server_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        self.env.update(REDIS_URL=self.redis_url)
        self.started: list[subprocess.Popen] = []
        self.redis_server = start_redis_server(self.redis_port, directory)
        self.server = self._start_server()

    def _start_server(self) -> subprocess.Popen:
        log = open(self.logs / "controlplane.log", "a")  # noqa: SIM115 - the server's lifetime
        # A session of its own, so that killing it kills its gunicorn workers too.
        return start_server(self.server_port, self.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def kill_server(self) -> None:
        os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait()

    def restart_server(self) -> None:
        self.server = self._start_server()

    def kill_redis(self) -> None:
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
        stop(self.redis_server)

    def worker(self, *options: str) -> subprocess.Popen:
        log = open(self.logs / f"worker-{len(self.started)}.log", "w")  # noqa: SIM115 - the worker's lifetime
        process = start_worker(self.server_url, self.redis_url, WORKFLOW, "tests", TEST_COMMIT,
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


@pytest.fixture(scope="module")
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
    from sdk.calling import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext

    client = ControlPlaneClient(cluster.server_url)
    recovery.runner.attach(client, RemoteCaller(client), CallContext())
    yield cluster
    cluster.stop_workers()


@pytest.fixture(scope="module")
def store_of(cluster):
    from controlplane.store import Store, make_engine

    store = Store(make_engine(cluster.env["DATABASE_URL"]))
    yield store
    store.engine.dispose()


def executions(log: Path) -> list[int]:
    return [int(pid) for pid in log.read_text().split()] if log.exists() else []


def test_a_call_whose_worker_is_killed_finishes_on_another_worker(run, store_of, tmp_path):
    first, second = run.worker(), run.worker()
    log = tmp_path / "executions"
    handle = recovery.slow_the_first_time.submit(str(log), 60)
    wait_until(lambda: executions(log), "the first execution")
    victim = first if executions(log) == [first.pid] else second
    victim.send_signal(signal.SIGKILL)
    assert handle.result(timeout=30) == 2
    record = store_of.get(handle.id)
    survivor = second if victim is first else first
    assert (record["status"], record["attempt"]) == ("succeeded", 2)
    assert record["worker"] == survivor.worker_name and executions(log)[1] == survivor.pid
    (lost,) = store_of.attempts(handle.id)
    assert (lost["attempt"], lost["status"], lost["worker"]) == (1, "lost", victim.worker_name)
    assert lost["error"]["type"] == "callplane.WorkerLost"


def test_a_call_whose_own_process_is_killed_runs_again(run, store_of, tmp_path):
    run.worker()
    log = tmp_path / "executions"
    handle = recovery.die_the_first_time.submit(str(log))
    assert handle.result(timeout=30) == 2
    record = store_of.get(handle.id)
    assert (record["status"], record["attempt"], record["run_mode"]) == ("succeeded", 2, "isolated")
    (lost,) = store_of.attempts(handle.id)
    assert lost["error"]["type"] == "callplane.ProcessDied"
    assert "killed by SIGKILL" in lost["error"]["message"]


def test_a_call_claimed_by_a_worker_that_then_dies_is_not_lost(run, store_of):
    from sdk.transport import StartReport, Transport

    handle = recovery.echo.submit("still here")
    # A worker claims the call (the claim is also its start report) and dies at once.
    ghost = Transport.from_url(run.redis_url)
    claimed = ghost.claim_next([handle.call["queue"]], StartReport.now("ghost", "dispatched"))
    assert claimed is not None and claimed.call_id == handle.id
    run.worker()
    assert handle.result(timeout=30) == "still here"
    record = store_of.get(handle.id)
    assert (record["attempt"], record["status"]) == (2, "succeeded")
    assert [a["worker"] for a in store_of.attempts(handle.id)] == ["ghost"]


def test_a_worker_stopped_past_its_lease_cannot_record_its_late_finish(run, store_of, tmp_path):
    stopped = run.worker()
    log = tmp_path / "executions"
    handle = recovery.slow_the_first_time.submit(str(log), LEASE_SECONDS * 3)
    wait_until(lambda: executions(log), "the first execution")
    stopped.send_signal(signal.SIGSTOP)
    other = run.worker()
    assert handle.result(timeout=30) == 2
    stopped.send_signal(signal.SIGCONT)
    wait_until(lambda: "no longer holds it" in stopped.log_path.read_text(),
               "the stopped worker's late finish", timeout=LEASE_SECONDS * 6)
    record = store_of.get(handle.id)
    assert (record["status"], record["attempt"], record["worker"]) == (
        "succeeded", 2, other.worker_name)
    assert record["result"] == 2  # the late finish (result 1) was refused
    assert executions(log) == [stopped.pid, other.pid]


def test_a_call_that_kills_its_process_every_time_fails_after_its_attempts(run, store_of, tmp_path):
    worker = run.worker()
    log = tmp_path / "executions"
    poison = recovery.always_die.submit(str(log))
    healthy = recovery.echo.submit("fine")
    with pytest.raises(StageFailed) as failure:
        poison.result(timeout=30)
    assert failure.value.remote_type == "callplane.ProcessDied"
    assert len(executions(log)) == 3
    record = store_of.get(poison.id)
    assert (record["status"], record["attempt"]) == ("failed", 3)
    assert [a["attempt"] for a in store_of.attempts(poison.id)] == [1, 2, 3]
    assert healthy.result(timeout=30) == "fine"
    assert worker.poll() is None


def _nap_run(log: Path, calls: int) -> list:
    return [recovery.logged_nap.submit(str(log), 0.05, i) for i in range(calls)]


def _check_run(handles: list, store_of) -> None:
    assert recovery.runner.gather(*handles) == list(range(len(handles)))
    rows = store_of.get_many(h.id for h in handles)
    assert {row["status"] for row in rows.values()} == {"succeeded"}
    assert [rows[h.id]["result"] for h in handles] == list(range(len(handles)))


def test_a_run_survives_redis_restarted_empty(run, store_of, tmp_path):
    run.worker(), run.worker()
    log = tmp_path / "executions"
    handles = _nap_run(log, 60)
    wait_until(lambda: len(executions(log)) >= 10, "the first executions")
    run.restart_redis_empty()
    _check_run(handles, store_of)
    # Calls queued before the restart were queued again from the table; a call
    # whose finish report Redis lost ran again: never fewer executions than calls.
    assert len(executions(log)) >= len(handles)


def test_a_run_survives_the_control_plane_killed_and_restarted(run, store_of, tmp_path):
    run.worker(), run.worker()
    log = tmp_path / "executions"
    handles = _nap_run(log, 60)
    wait_until(lambda: len(executions(log)) >= 10, "the first executions")
    run.kill_server()
    time.sleep(LEASE_SECONDS * 1.5)  # workers go on: their reports wait in Redis
    run.restart_server()
    _check_run(handles, store_of)
    # No report was lost: no call had to run twice.
    assert len(executions(log)) == len(handles)
    assert {row["attempt"] for row in store_of.get_many(h.id for h in handles).values()} == {1}


def test_a_call_created_while_redis_is_away_runs_once_it_is_back(run, store_of):
    run.kill_redis()
    try:
        handle = recovery.echo.submit("accepted")
        assert store_of.get(handle.id)["status"] == "pending"
    finally:
        run.start_redis()
    run.worker()
    assert handle.result(timeout=30) == "accepted"


def test_a_parent_that_runs_again_resumes_after_its_finished_children(run, store_of, tmp_path):
    first, second = run.worker(), run.worker()
    steps, parents = tmp_path / "steps", tmp_path / "parents"
    handle = recovery.six_steps.submit(str(steps), str(parents), 60)
    wait_until(lambda: len(steps.read_text().split()) == 3 if steps.exists() else False,
               "the first three children")
    victim = first if executions(parents) == [first.pid] else second
    victim.send_signal(signal.SIGKILL)
    assert handle.result(timeout=30) == 15
    assert steps.read_text().split() == ["0", "1", "2", "3", "4", "5"]  # each child ran once
    assert store_of.get(handle.id)["attempt"] == 2
    children = store_of.tree(handle.id)[1:]
    assert [(c["position"], c["status"], c["attempt"]) for c in children] == [
        (i, "succeeded", 1) for i in range(6)]
    assert {c["parent_attempt"] for c in children[:3]} == {1}
    assert {c["parent_attempt"] for c in children[3:]} == {2}
