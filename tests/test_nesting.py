"""No nested deadlock (DESIGN.md invariant 4): deep recursion and a wide map both
complete on ONE worker process with one slot, and each child's audit row says
which worker ran it and how."""

from __future__ import annotations

import pytest

from controlplane.local_cluster import stop
from tests.conftest import start_parallel_workers
from tests.workflows import parallel


@pytest.fixture(scope="module")
def solo(server_url, redis_url, env):
    (worker,) = start_parallel_workers(server_url, redis_url, env, 1)
    yield worker
    stop(worker)


def test_recursion_100_deep_completes_on_one_slot(solo, parallel_runner, store):
    handle = parallel.recurse.submit(100)
    assert handle.result(timeout=120) == 100
    rows = store.tree(handle.id)
    assert len(rows) == 101
    assert {row.status for row in rows} == {"succeeded"}
    assert {row.worker for row in rows} == {solo.worker_name}
    modes = [row.run_mode for row in rows]
    assert modes[0] == "dispatched" and set(modes[1:]) == {"inline"}


def test_map_of_1000_completes_on_one_slot(solo, parallel_runner, store):
    handle = parallel.map_squares.submit(1000)
    assert handle.result(timeout=120) == sum(i * i for i in range(1000))
    children = [row for row in store.tree(handle.id) if row.id != handle.id]
    assert len(children) == 1000
    assert sorted(row.position for row in children) == list(range(1000))
    assert {row.worker for row in children} == {solo.worker_name}
    assert {row.run_mode for row in children} == {"inline"}
    assert {row.status for row in children} == {"succeeded"}
