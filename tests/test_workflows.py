"""Workflows run end to end: real control plane, real workers, real Redis and database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback

import pytest

from sdk.decorators import WorkflowRunner
from sdk.errors import StageFailed, UnrecordableOutcome
from sdk.wire import JSON_DEPTH_LIMIT
from tests.conftest import ROOT
from tests.workflows import sample

SEED_OUTPUT = """\
Starting distributed workflow execution...
Main: Starting data pipeline...
Extract: Fetching data from source...
Extract: Found 5 records
Main: Extracted 5 items
Transform: Processing 5 records...
Transform: Transformed 5 records
Main: Transformed data
Load: Saving 5 records...
Load: Successfully saved 5 records
Main: Loaded 5 records
Workflow completed!
Result: {'status': 'success', 'records_processed': 5, 'pipeline': 'ETL complete'}
"""


@pytest.fixture(scope="module")
def example_workers(server_url, redis_url, env):
    from controlplane.local_cluster import start_worker, stop
    from tests.conftest import TEST_COMMIT

    started = [
        start_worker(server_url, redis_url, ROOT / "examples" / name, "examples", TEST_COMMIT, env)
        for name in ("example_workflow.py", "distributed_workflow.py")
    ]
    yield
    for process in started:
        stop(process)


def run_example(name, server_url):
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        env={**os.environ, "CALLPLANE_SERVER_URL": server_url},
        capture_output=True, text=True, check=False, timeout=120,
    )


def test_seed_example_prints_the_seed_output(server_url, example_workers):
    completed = run_example("example_workflow.py", server_url)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == SEED_OUTPUT


def test_nested_tree_is_recorded_with_parents_and_statuses(server_url, example_workers, api):
    completed = run_example("distributed_workflow.py", server_url)
    assert completed.returncode == 0, completed.stderr
    assert "'grand_total': 315" in completed.stdout
    roots = api("GET", "/api/calls", params={"stage": "report", "page_size": 100}).json()
    root = roots[-1]
    regions = api("GET", "/api/calls", params={"parent_stage_run_id": root["id"]}).json()
    assert [r["stage"] for r in regions] == ["region_total", "region_total"]
    assert [r["position"] for r in regions] == [0, 1]
    stores = api("GET", "/api/calls", params={"parent_stage_run_id": regions[1]["id"]}).json()
    assert [s["arguments"]["args"][0] for s in stores] == ["s1", "s2", "s3"]
    scores = api("GET", "/api/calls", params={"parent_stage_run_id": stores[0]["id"]}).json()
    assert len(scores) == 3
    for call in [root, *regions, *stores, *scores]:
        assert call["status"] == "succeeded"
        assert call["root_stage_run_id"] == root["id"]
        assert call["worker"] and call["started_at"] and call["finished_at"]
    # children inherit the code version of the worker that ran their parent
    assert {s["repo_name"] for s in stores} == {"examples"}


def test_result_comes_back(runner):
    assert sample.add(2, 3) == 5
    assert runner.run(sample.fan_in, 4) == [0, 2, 4, 6]


def test_failing_stage_raises_remote_error_at_call_site(runner):
    with pytest.raises(StageFailed) as caught:
        sample.fail("bad input")  # the call site
    error = caught.value
    assert error.remote_type == "ValueError"
    assert error.remote_message == "bad input"
    assert "raise ValueError(message)" in error.remote_traceback
    assert "Remote traceback" in str(error)
    local = "".join(traceback.format_tb(error.__traceback__))
    assert 'sample.fail("bad input")  # the call site' in local


def test_a_failure_three_calls_deep_prints_its_cause_once_then_a_line_per_call(runner, api):
    with pytest.raises(StageFailed) as caught:
        sample.raise_deep(2)
    error = caught.value
    assert (error.remote_type, error.remote_message) == ("ValueError", "deep down")
    text = str(error)
    assert text.count("Traceback (most recent call last)") == 1
    assert text.count('raise ValueError("deep down")') == 1
    via = [line.strip() for line in text.splitlines() if line.strip().startswith("via stage")]
    assert len(via) == 2 and all("'raise_deep' (call " in line and ", worker " in line for line in via)
    assert len(text.splitlines()) < 30, text


def test_a_workflows_own_exception_comes_back_as_itself_when_its_caller_allows_it(
    runner, server_url
):
    with pytest.raises(StageFailed) as plain:  # not allowed: StageFailed, naming the type
        sample.refuse("card expired")
    assert not isinstance(plain.value, sample.Declined)
    assert plain.value.remote_type.endswith(".Declined")
    allowing = WorkflowRunner(server_url, exceptions=[sample.Declined])
    refuse = allowing.stage(sample.refuse.fn)  # the same stage, called through that runner
    with pytest.raises(sample.Declined) as own:
        refuse("card expired")
    assert isinstance(own.value, StageFailed) and own.value.remote_message == "card expired"
    with pytest.raises(sample.Declined):
        refuse.submit("no funds").result(timeout=30)


def test_failure_of_a_child_reaches_its_parent(runner, api):
    assert sample.survives_child_failure() == {"type": "ValueError", "message": "child broke"}
    failed = api("GET", "/api/calls", params={"stage": "fail", "status": "failed"}).json()
    assert failed[-1]["error"]["type"] == "ValueError"
    assert failed[-1]["parent_stage_run_id"] is not None


def test_values_that_are_json_as_their_base_type_travel_as_it(runner):
    # numpy's float64 is such a float: json.dumps takes it, so callplane must too.
    assert sample.measured([1.5, 2.0]) == {"total": 3.5, "child": 1.5}


def test_non_json_result_fails_the_call_with_a_clear_error(runner):
    with pytest.raises(StageFailed, match="not JSON-serialisable"):
        sample.returns_set()


def nested_list(depth: int):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def test_a_result_too_deep_to_keep_fails_its_call_and_nothing_else(runner):
    """A poison result (2,000 levels would exhaust the recorder's stack) fails its own
    call with the limit in the message; one at the limit is kept, and recording goes on."""
    assert sample.returns_nested(JSON_DEPTH_LIMIT) == nested_list(JSON_DEPTH_LIMIT)
    for depth in (JSON_DEPTH_LIMIT + 1, 2000):
        with pytest.raises(UnrecordableOutcome, match=f"nested more than {JSON_DEPTH_LIMIT} levels deep"):
            sample.returns_nested(depth)
    assert sample.add(1, 2) == 3


def test_arguments_too_deep_to_keep_raise_type_error_before_sending(runner, api):
    before = api("GET", "/api/calls").headers["X-Pagination"]
    with pytest.raises(TypeError, match=f"nested more than {JSON_DEPTH_LIMIT} levels deep"):
        sample.add(nested_list(2000), 1)
    assert api("GET", "/api/calls").headers["X-Pagination"] == before


def test_a_nul_in_arguments_raises_type_error_before_sending_and_the_api_refuses_it(runner, api):
    before = api("GET", "/api/calls").headers["X-Pagination"]
    with pytest.raises(TypeError, match=r"add\(\): in its arguments, a string contains NUL"):
        sample.add("a\x00b", "c")
    batch = {"calls": [{"stage": "add", "arguments": {"args": ["ok", "fine"]}},
                       {"stage": "add", "arguments": {"kwargs": {"a": "x", "b": "\x00"}}}]}
    refused = api("POST", "/api/calls", json=batch)
    assert refused.status_code == 400 and "NUL" in refused.text
    assert api("GET", "/api/calls").headers["X-Pagination"] == before


def test_non_json_argument_raises_type_error_before_sending(runner, api):
    before = api("GET", "/api/calls").headers["X-Pagination"]
    with pytest.raises(TypeError, match=r"add\(\): argument 'b' is not JSON-serialisable"):
        sample.add(1, object())
    with pytest.raises(TypeError, match="missing a required argument"):
        sample.add(1)
    assert api("GET", "/api/calls").headers["X-Pagination"] == before


def test_deep_nesting_and_output_travels_to_the_caller(runner, capsys):
    assert sample.nested(5) == 5
    out = capsys.readouterr().out
    assert out.splitlines() == [f"nested {d}" for d in range(5, -1, -1)]


def test_printed_nul_is_recorded_and_the_call_settles(runner, api, capsys):
    """The table takes what stages print as text: a NUL (refused by PostgreSQL)
    is kept as U+FFFD, instead of a report the database refuses for good."""
    handle = sample.prints_nul.submit()
    assert handle.result(timeout=30) == "kept\x00as given"
    assert api("GET", f"/api/call/{handle.id}").json()["output"] == "before\ufffdafter\n"


def test_stages_called_from_threads_of_a_stage_get_the_right_parent(runner, api):
    assert sample.threaded(4) == [1, 2, 3, 4]
    parent = api("GET", "/api/calls", params={"stage": "threaded"}).json()[-1]
    children = api("GET", "/api/calls", params={"parent_stage_run_id": parent["id"]}).json()
    assert len(children) == 4 and {c["stage"] for c in children} == {"add"}
    assert sorted(c["position"] for c in children) == [0, 1, 2, 3]


def test_caller_threads_each_make_their_own_root_calls(runner):
    results = {}

    def call(i):
        results[i] = sample.add(i, i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: 2 * i for i in range(8)}


def test_two_workers_both_take_calls(runner, api, workers):
    threads = [threading.Thread(target=sample.sleep_then_add, args=(0.3, i, i)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = api("GET", "/api/calls", params={"stage": "sleep_then_add", "page_size": 100}).json()
    assert {c["worker"] for c in calls[-6:]} == {w.worker_name for w in workers}


def test_two_runners_with_different_urls_in_one_process(runner, server_url):
    other = WorkflowRunner("http://127.0.0.1:9", outage_seconds=0.5)  # nothing listens there

    @other.stage
    def add(a, b):
        return a + b

    from sdk.errors import ControlPlaneUnavailable

    with pytest.raises(ControlPlaneUnavailable):
        add(1, 2)
    assert sample.add(1, 2) == 3  # the first runner is untouched


def test_idle_worker_outlives_redis_client_socket_timeout(runner):
    time.sleep(6.5)  # redis-py 8 would cut a blocking pop after 5 s by default
    assert sample.add(20, 22) == 42
