"""`--concurrency N`: one worker process runs up to N calls at once, each in a
thread of its own, and on SIGTERM finishes every one of them before it exits."""

from __future__ import annotations

import signal
from datetime import datetime

from controlplane.local_cluster import start_worker, stop, wait_until
from sdk.decorators import WorkflowRunner
from tests.conftest import SAMPLE, TEST_COMMIT

#: A code version only this module's workers serve.
VERSION = "concurrency-test"


def runner_of_the_version(server_url: str):
    runner = WorkflowRunner(server_url, repo_name=VERSION, commit_hash=TEST_COMMIT)
    return runner.stage(name="sleep_then_add")(lambda seconds, a, b: a + b)


def most_at_once(api, handles) -> int:
    """The most of these calls that were running at one moment, by their recorded
    start and finish (a slot stamps its next start after its last finish)."""
    moments = []
    for handle in handles:
        call = api("GET", f"/api/call/{handle.id}").json()
        moments += [(datetime.fromisoformat(call["started_at"]), 1),
                    (datetime.fromisoformat(call["finished_at"]), -1)]
    running = most = 0
    for _moment, step in sorted(moments, key=lambda moment: (moment[0], moment[1])):
        running += step
        most = max(most, running)
    return most


def test_one_worker_process_runs_n_calls_at_once(server_url, redis_url, env, api):
    worker = start_worker(server_url, redis_url, SAMPLE, VERSION, TEST_COMMIT, env,
                          ("--concurrency", "32"))
    try:
        nap = runner_of_the_version(server_url)
        handles = [nap.submit(0.5, i, 1) for i in range(64)]
        assert [handle.result(timeout=60) for handle in handles] == [i + 1 for i in range(64)]
    finally:
        stop(worker)
    assert 16 <= most_at_once(api, handles) <= 32


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


def test_isolated_calls_run_n_at_once_each_in_a_process_of_its_own(server_url, redis_url, env,
                                                                   api):
    worker = start_worker(server_url, redis_url, SAMPLE, VERSION, TEST_COMMIT, env,
                          ("--concurrency", "4", "--isolate"))
    try:
        nap = runner_of_the_version(server_url)
        handles = [nap.submit(1, i, 0) for i in range(8)]
        assert [handle.result(timeout=60) for handle in handles] == list(range(8))
    finally:
        stop(worker)
    assert 2 <= most_at_once(api, handles) <= 4
