"""Retries with backoff, the errors that retry, and timeouts, with every attempt
and its error in the audit record. On the cluster of tests/cluster.py."""

from __future__ import annotations

import pytest
import requests

from sdk.errors import StageFailed
from tests.workflows import recovery


def test_a_failing_call_runs_again_until_it_succeeds(run, store_of, tmp_path):
    run.worker()
    handle = recovery.flaky.submit(str(tmp_path / "log"), 2)
    assert handle.result(timeout=30) == 3
    record = store_of.get(handle.id)
    assert (record.status, record.attempt, record.max_attempts) == ("succeeded", 3, 4)
    shown = requests.get(f"{run.server_url}/api/call/{handle.id}", timeout=10).json()
    assert [(a["attempt"], a["status"], a["error"]["message"]) for a in shown["attempts"]] == [
        (1, "failed", "execution 1 fails"), (2, "failed", "execution 2 fails")]
    assert all(a["worker"] == record.worker for a in shown["attempts"])
    # The tree carries every attempt for the timeline, each with its own times.
    (node,) = requests.get(f"{run.server_url}/api/call/{handle.id}/tree", timeout=10).json()["calls"]
    bars = node["earlier_attempts"]
    assert [(bar["attempt"], bar["status"]) for bar in bars] == [(1, "failed"), (2, "failed")]
    assert bars[0]["finished_at"] <= bars[1]["started_at"] <= bars[1]["finished_at"]
    assert bars[1]["finished_at"] <= node["started_at"]


def test_a_call_fails_once_its_retries_are_used_up(run, store_of, tmp_path):
    run.worker()
    log = tmp_path / "log"
    with pytest.raises(StageFailed, match="execution 4 fails"):
        recovery.flaky(str(log), 10)
    assert len(log.read_text().split()) == 4


def test_an_error_the_stage_does_not_list_is_not_retried(run, store_of, tmp_path):
    run.worker()
    log = tmp_path / "log"
    handle = recovery.raises_unlisted.submit(str(log))
    with pytest.raises(StageFailed) as failure:
        handle.result(timeout=30)
    assert failure.value.remote_type == "KeyError"
    assert len(log.read_text().split()) == 1 and store_of.get(handle.id).attempt == 1


def test_a_child_run_in_place_retries_in_its_parents_slot(run, store_of, tmp_path):
    run.worker()
    handle = recovery.calls_flaky.submit(str(tmp_path / "log"), 1)
    assert handle.result(timeout=30) == 2
    (child,) = store_of.tree(handle.id)[1:]
    assert (child.run_mode, child.attempt, child.status) == ("inline", 2, "succeeded")
    assert [a.status for a in store_of.attempts(child.id)] == ["failed"]


def test_a_call_past_its_timeout_is_stopped_and_its_waiter_told(run, store_of):
    worker = run.worker()
    handle = recovery.overrun.submit(600)
    with pytest.raises(StageFailed) as failure:
        handle.result(timeout=60)
    assert failure.value.remote_type == "callplane.StageTimeout"
    assert "after 1 s" in failure.value.remote_message
    record = store_of.get(handle.id)
    assert (record.status, record.run_mode) == ("failed", "isolated")
    assert worker.poll() is None and recovery.overrun(0) == "done"
