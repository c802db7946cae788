"""Per-call isolation: a stage marked isolate=True, or every call on a worker
started with --isolate, runs in a fresh process; a call that kills its process
fails alone, and the worker goes on."""

from __future__ import annotations

import pytest

from controlplane.local_cluster import stop
from sdk.errors import StageFailed
from tests.conftest import start_parallel_workers
from tests.workflows import parallel


def test_an_isolated_stage_on_an_ordinary_worker(server_url, redis_url, env, parallel_runner, store):
    (worker,) = start_parallel_workers(server_url, redis_url, env, 1)
    try:
        isolated = parallel.isolated_pid.submit()
        shared = parallel.worker_pid.submit()
        assert isolated.result(timeout=30) != worker.pid
        assert shared.result(timeout=30) == worker.pid
        assert (_mode(store, isolated), _mode(store, shared)) == ("isolated", "dispatched")
    finally:
        stop(worker)


# The tests below share one worker started with --isolate (the test above runs
# first, so its worker is the only one listening then).
@pytest.fixture(scope="module")
def isolating(server_url, redis_url, env):
    (worker,) = start_parallel_workers(server_url, redis_url, env, 1, ("--isolate",))
    yield worker
    stop(worker)


def _mode(store, handle):
    return store.get(handle.id).run_mode


def test_every_call_gets_its_own_process(isolating, parallel_runner, store):
    handles = [parallel.worker_pid.submit() for _ in range(3)]
    pids = parallel_runner.gather(*handles)
    assert len(set(pids)) == 3 and isolating.pid not in pids
    assert {_mode(store, h) for h in handles} == {"isolated"}


def test_children_of_an_isolated_call_run_in_its_process(isolating, parallel_runner, store):
    handle = parallel.map_squares.submit(20)
    assert handle.result(timeout=60) == sum(i * i for i in range(20))
    rows = store.tree(handle.id)
    assert rows[0].run_mode == "isolated"
    assert {row.run_mode for row in rows[1:]} == {"inline"}


def test_a_call_that_kills_its_process_fails_alone(isolating, parallel_runner, store):
    with pytest.raises(StageFailed) as failure:
        parallel.kill_own_process()
    assert failure.value.remote_type == "callplane.ProcessDied"
    assert "killed by SIGKILL" in failure.value.remote_message
    assert isolating.poll() is None
    assert parallel.square(7) == 49
