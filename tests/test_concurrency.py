"""`--concurrency N`: one worker process runs up to N calls at once, each in a
thread of its own, and on SIGTERM finishes every one of them before it exits."""

from __future__ import annotations

import signal
import time

from controlplane.local_cluster import start_worker, stop, wait_until
from sdk.decorators import WorkflowRunner
from tests.conftest import SAMPLE, TEST_COMMIT

#: A code version only this module's workers serve.
VERSION = "concurrency-test"


def runner_of_the_version(server_url: str):
    runner = WorkflowRunner(server_url, repo_name=VERSION, commit_hash=TEST_COMMIT)
    return runner.stage(name="sleep_then_add")(lambda seconds, a, b: a + b)


def test_one_worker_process_runs_n_calls_at_once(server_url, redis_url, env):
    worker = start_worker(server_url, redis_url, SAMPLE, VERSION, TEST_COMMIT, env,
                          ("--concurrency", "32"))
    try:
        nap = runner_of_the_version(server_url)
        started = time.monotonic()
        handles = [nap.submit(0.5, i, 1) for i in range(64)]
        assert [handle.result(timeout=60) for handle in handles] == [i + 1 for i in range(64)]
        took = time.monotonic() - started
    finally:
        stop(worker)
    assert took < 16, f"64 calls of 0.5 s took {took:.1f} s on 32 slots (one at a time: 32 s)"


def test_sigterm_finishes_every_running_call_before_the_worker_exits(server_url, redis_url, env,
                                                                     api):
    worker = start_worker(server_url, redis_url, SAMPLE, VERSION, TEST_COMMIT, env,
                          ("--concurrency", "8"))
    nap = runner_of_the_version(server_url)
    handles = [nap.submit(2, i, 0) for i in range(8)]

    def all_running() -> bool:
        return all(api("GET", f"/api/call/{h.id}").json()["status"] == "running" for h in handles)

    wait_until(all_running, "all 8 calls running at once", worker, timeout=30)
    worker.send_signal(signal.SIGTERM)
    assert [handle.result(timeout=60) for handle in handles] == list(range(8))
    assert worker.wait(timeout=30) == 0


def test_isolated_calls_run_n_at_once_each_in_a_process_of_its_own(server_url, redis_url, env):
    worker = start_worker(server_url, redis_url, SAMPLE, VERSION, TEST_COMMIT, env,
                          ("--concurrency", "4", "--isolate"))
    try:
        nap = runner_of_the_version(server_url)
        started = time.monotonic()
        handles = [nap.submit(1, i, 0) for i in range(8)]
        assert [handle.result(timeout=60) for handle in handles] == list(range(8))
        took = time.monotonic() - started
    finally:
        stop(worker)
    assert took < 6, f"8 isolated calls of 1 s took {took:.1f} s on 4 slots (one at a time: 8 s)"
