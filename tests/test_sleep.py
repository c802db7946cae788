"""Durable sleep: `runner.sleep(S)` in a stage gives its worker slot back; the call
runs again from the top after the time, its finished calls returning their
recorded results, so the code after the sleep sees the values from before it. A
worker killed during the sleep changes nothing; code that makes other calls
after a sleep than before gets an error naming the position. On the cluster of
tests/cluster.py, with one worker slot."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests
from click.testing import CliRunner

from controlplane.cli import main
from controlplane.local_cluster import wait_until
from sdk.errors import StageFailed
from tests.cluster import LEASE_SECONDS, executions
from tests.workflows import recovery


def sleeping(store, call_id: str) -> bool:
    record = store.get(call_id)
    return record.status == "pending" and record.not_before is not None


def recorded_tokens(store, run_id: str) -> list:
    """The results of the token calls in a run, in the order they were made."""
    return [store.get(node.id).result for node in store.tree(run_id) if node.stage == "token"]


def test_a_sleeping_call_gives_its_slot_back_and_resumes_with_its_values(run, store_of, tmp_path):
    run.worker()  # one slot
    log = tmp_path / "tokens"
    sleeper = recovery.sleeps_between.submit(str(log), 5)
    wait_until(lambda: sleeping(store_of, sleeper.id), "the call asleep")
    wake = store_of.get(sleeper.id).not_before
    shown = requests.get(f"{run.server_url}/api/call/{sleeper.id}", timeout=10).json()
    assert shown["waiting_for"]["kind"] == "sleep"
    assert datetime.fromisoformat(shown["waiting_for"]["until"]) == wake
    (node,) = [n for n in requests.get(f"{run.server_url}/api/call/{sleeper.id}/tree",
                                       timeout=10).json()["calls"] if n["id"] == sleeper.id]
    assert node["waiting_for"]["kind"] == "sleep"
    tree = CliRunner().invoke(main, ["calls", "--server-url", run.server_url, "tree", sleeper.id])
    assert f"sleeping until {wake.isoformat(timespec='seconds')}" in tree.output.splitlines()[0]
    others = [recovery.echo.submit(i) for i in range(20)]
    assert [handle.result(timeout=30) for handle in others] == list(range(20))
    assert all(store_of.get(h.id).finished_at < wake for h in others)  # while it slept

    before, after = sleeper.result(timeout=30)
    assert [before, after] == recorded_tokens(store_of, sleeper.id)
    assert len(executions(log)) == 2  # the first token was not made again
    nodes = store_of.tree(sleeper.id)
    assert [(n.stage, n.status) for n in nodes[1:]] == [
        ("token", "succeeded"), ("callplane.sleep", "succeeded"), ("token", "succeeded")]
    record = store_of.get(sleeper.id)
    assert record.started_at >= wake and record.attempt == 1


def test_a_worker_killed_during_the_sleep_changes_nothing(run, store_of, tmp_path):
    first = run.worker()
    log = tmp_path / "tokens"
    # Asleep for longer than two leases: recovery sweeps while its worker is dead.
    sleeper = recovery.sleeps_between.submit(str(log), LEASE_SECONDS * 2 + 1)
    wait_until(lambda: sleeping(store_of, sleeper.id), "the call asleep")
    first.kill()
    first.wait()
    run.worker()
    before, after = sleeper.result(timeout=30)
    assert [before, after] == recorded_tokens(store_of, sleeper.id)
    assert len(executions(log)) == 2
    assert store_of.get(sleeper.id).attempt == 1  # run again by its wake-up, not as lost
    assert "lost" not in [attempt.status for attempt in store_of.attempts(sleeper.id)]


def test_a_call_run_in_place_sleeps_with_the_call_it_runs_in(run, store_of, tmp_path):
    run.worker()
    log = tmp_path / "tokens"
    outer = recovery.calls_a_sleeper.submit(str(log), 1)
    before, after = outer.result(timeout=30)
    nodes = store_of.tree(outer.id)
    assert [n.stage for n in nodes] == ["calls_a_sleeper", "sleeps_between", "token",
                                        "callplane.sleep", "token"]
    assert [before, after] == recorded_tokens(store_of, outer.id)
    assert len(executions(log)) == 2


@pytest.mark.parametrize(("stage", "words"), [
    (recovery.sleeps_then_calls,
     ("position 0 of call .* was a call of 'callplane.sleep' in an earlier run, and is a call "
      "of 'echo' now")),
    (recovery.calls_then_sleeps,
     "position 0 of call .* was a call of 'echo' in an earlier run, and is a sleep now"),
])
def test_a_run_that_makes_other_calls_than_before_fails_naming_the_position(
    run, store_of, tmp_path, stage, words
):
    run.worker()
    with pytest.raises(StageFailed, match=words):
        stage(str(tmp_path / "log"))


def test_sleeping_outside_a_stage_or_for_nonsense(run):
    with pytest.raises(ValueError, match="takes 0 to"):
        recovery.runner.sleep(-1)
    recovery.runner.sleep(0.01)  # a script has no slot to give back: it just sleeps
    assert requests.post(f"{run.server_url}/api/call/nosuchcall/sleep", timeout=10, json={
        "worker": "w", "attempt": 1, "position": 0, "seconds": 1,
        "chain": [["nosuchcall", 1]]}).status_code == 404
