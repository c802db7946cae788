"""Local mode: runner.run(main, local=True) runs every stage in this process, with
no worker and no Redis; the tree is still recorded when the control plane answers,
and the run is purely in memory when it does not."""

from __future__ import annotations

import time

import pytest

from controlplane.local_cluster import free_port
from controlplane.store.reads import CallQuery, RunQuery
from sdk.decorators import WorkflowRunner
from sdk.errors import StageFailed, StageTimeout
from tests.workflows import parallel


def test_a_local_run_is_recorded_as_the_same_tree(parallel_runner, store):
    # No worker of the parallel workflow runs during this module: only local mode can do it.
    assert parallel_runner.run(parallel.map_squares, 10, local=True) == 285
    (root,) = [
        row for row in store.list(CallQuery(stage="map_squares"), limit=1000)[0]
        if row.run_mode == "local" and row.arguments.args == [10]
    ]
    rows = store.tree(root.id)
    assert len(rows) == 11
    assert {row.status for row in rows} == {"succeeded"}
    assert {row.run_mode for row in rows} == {"local"}
    assert all(row.worker.startswith("local:") for row in rows)
    children = rows[1:]
    assert {row.parent_stage_run_id for row in children} == {root.id}
    results = store.get_many(row.id for row in children)
    assert sorted(call.result for call in results.values()) == sorted(i * i for i in range(10))


def test_a_local_failure_keeps_the_original_exception(parallel_runner, store):
    with pytest.raises(StageFailed) as failure:
        parallel_runner.run(parallel.fail_on, 3, 3, local=True)
    assert isinstance(failure.value.__cause__, ValueError)
    row = store.get(failure.value.call_id)
    assert row.status == "failed" and row.error.message == "3 is bad"


def test_a_delayed_local_call_waits_for_its_time_and_is_recorded(parallel_runner, store):
    began = time.monotonic()
    assert parallel_runner.run(parallel.square.options(delay=0.4), 4321, local=True) == 4321 * 4321
    assert time.monotonic() - began >= 0.4
    (row,) = [row for row in store.runs(RunQuery(stage="square"), limit=20)[0]  # newest first
              if row.run_mode == "local" and row.arguments.args == [4321]]
    assert row.status == "succeeded" and row.not_before is None  # recorded when it ran


def test_without_a_control_plane_a_local_run_is_in_memory(capsys):
    runner = WorkflowRunner(f"http://127.0.0.1:{free_port()}")  # nothing listens there

    @runner.stage
    def double(x):
        print(f"double {x}")
        return 2 * x

    @runner.stage
    def main(n):
        handles = [double.submit(i) for i in range(n)]
        first = next(iter(runner.as_completed(handles)))
        return {"first": first.result(), "all": runner.gather(*handles), "map": double.map([5])}

    assert runner.run(main, 3, local=True) == {"first": 0, "all": [0, 2, 4], "map": [10]}
    assert "double 2" in capsys.readouterr().out
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        runner.run(double, {1, 2}, local=True)


def test_local_mode_retries_reuses_finished_children_and_judges_timeouts_as_workers_do():
    runner = WorkflowRunner(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    runs: dict[str, int] = {}

    def ran(name: str) -> int:
        runs[name] = runs.get(name, 0) + 1
        return runs[name]

    @runner.stage(retries=2, backoff=0)
    def flaky(name):
        if ran(name) < 3:
            raise ConnectionError("not yet")
        return "third time"

    @runner.stage(retries=3, backoff=0, retry_on=KeyError)
    def not_listed():
        ran("not_listed")
        raise ValueError("never retried")

    @runner.stage
    def child():
        return ran("child")

    @runner.stage(retries=1, backoff=0)
    def parent():
        value = child()
        if ran("parent") == 1:
            raise ConnectionError("after its child")
        return value

    @runner.stage(timeout=0.05)
    def slow():
        time.sleep(0.2)
        return "late"

    flaky_once = runner.stage(retries=1, backoff=0, name="flaky_once")(flaky.fn)
    assert runner.run(flaky, "a", local=True) == "third time" and runs["a"] == 3
    with pytest.raises(StageFailed, match="not yet"):  # its one retry used up
        runner.run(flaky_once, "b", local=True)
    assert runs["b"] == 2
    with pytest.raises(StageFailed, match="never retried"):
        runner.run(not_listed, local=True)
    assert runs["not_listed"] == 1
    # The parent's second attempt gets its child's result from the first: no second run.
    assert runner.run(parent, local=True) == 1 and (runs["child"], runs["parent"]) == (1, 2)
    with pytest.raises(StageTimeout, match="past its stage's timeout of 0.05 s"):
        runner.run(slow, local=True)
