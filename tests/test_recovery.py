"""Never lose a call, never record one twice: workers killed mid-call, a process
that dies, a worker that dies right after claiming, a worker stopped past its
lease, Redis restarted empty, the control plane killed, a parent run again.
On the cluster of tests/cluster.py (a 2-second lease)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from controlplane.local_cluster import wait_until
from sdk.errors import StageFailed
from sdk.wire import RunMode
from tests.cluster import LEASE_SECONDS, executions
from tests.workflows import recovery


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
    assert (record.status, record.attempt) == ("succeeded", 2)
    assert record.worker == survivor.worker_name and executions(log)[1] == survivor.pid
    (lost,) = store_of.attempts(handle.id)
    assert (lost.attempt, lost.status, lost.worker) == (1, "lost", victim.worker_name)
    assert lost.error.type == "callplane.WorkerLost"


def test_a_call_whose_own_process_is_killed_runs_again(run, store_of, tmp_path):
    run.worker()
    log = tmp_path / "executions"
    handle = recovery.die_the_first_time.submit(str(log))
    assert handle.result(timeout=30) == 2
    record = store_of.get(handle.id)
    assert (record.status, record.attempt, record.run_mode) == ("succeeded", 2, "isolated")
    (lost,) = store_of.attempts(handle.id)
    assert lost.error.type == "callplane.ProcessDied"
    assert "killed by SIGKILL" in lost.error.message


def test_a_call_claimed_by_a_worker_that_then_dies_is_not_lost(run, store_of):
    from sdk.reports import StartReport
    from sdk.transport import Transport

    handle = recovery.echo.submit("still here")
    # A worker claims the call (the claim is also its start report) and dies at once.
    ghost = Transport.from_url(run.redis_url).queues
    claimed = ghost.claim_next([handle.call.queue], StartReport.now("ghost", RunMode.DISPATCHED))
    assert claimed is not None and claimed.call_id == handle.id
    run.worker()
    assert handle.result(timeout=30) == "still here"
    record = store_of.get(handle.id)
    assert (record.attempt, record.status) == (2, "succeeded")
    assert [a.worker for a in store_of.attempts(handle.id)] == ["ghost"]


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
    assert (record.status, record.attempt, record.worker) == (
        "succeeded", 2, other.worker_name)
    assert record.result == 2  # the late finish (result 1) was refused
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
    assert (record.status, record.attempt) == ("failed", 3)
    assert [a.attempt for a in store_of.attempts(poison.id)] == [1, 2]  # 3 is the row's own
    assert healthy.result(timeout=30) == "fine"
    assert worker.poll() is None


def _nap_run(log: Path, calls: int) -> list:
    return [recovery.logged_nap.submit(str(log), 0.05, i) for i in range(calls)]


def _check_run(handles: list, store_of) -> None:
    assert recovery.runner.gather(*handles) == list(range(len(handles)))
    rows = store_of.get_many(h.id for h in handles)
    assert {row.status for row in rows.values()} == {"succeeded"}
    assert [rows[h.id].result for h in handles] == list(range(len(handles)))


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
    assert {row.attempt for row in store_of.get_many(h.id for h in handles).values()} == {1}


def test_a_call_created_while_redis_is_away_runs_once_it_is_back(run, store_of):
    run.kill_redis()
    try:
        handle = recovery.echo.submit("accepted")
        assert store_of.get(handle.id).status == "pending"
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
    assert store_of.get(handle.id).attempt == 2
    children = store_of.tree(handle.id)[1:]
    assert [(c.position, c.status, c.attempt) for c in children] == [
        (i, "succeeded", 1) for i in range(6)]
    assert {c.parent_attempt for c in children[:3]} == {1}
    assert {c.parent_attempt for c in children[3:]} == {2}


def test_a_parent_that_runs_again_gets_the_results_of_its_finished_parallel_children(
    run, store_of, tmp_path
):
    first, second = run.worker(), run.worker()
    steps, parents = tmp_path / "steps", tmp_path / "parents"
    handle = recovery.map_then_pause.submit(str(steps), str(parents), 60)
    wait_until(lambda: executions(parents), "the children, then the pause")
    victim = first if executions(parents) == [first.pid] else second
    victim.send_signal(signal.SIGKILL)
    assert handle.result(timeout=30) == [0, 1, 2]  # recorded results, not run again
    assert sorted(steps.read_text().split()) == ["0", "1", "2"]


def test_a_call_popped_by_a_worker_that_died_before_claiming_it_is_queued_again(run, store_of):
    import redis

    handle = recovery.echo.submit("found again")
    # What a worker's blocking pop leaves when the worker dies before its claim:
    # the job says queued, but its id is on no queue.
    queue = f"rq:queue:{handle.call.queue}"
    assert redis.Redis.from_url(run.redis_url).lrem(queue, 1, handle.id) == 1
    run.worker()
    assert handle.result(timeout=30) == "found again"
    assert store_of.get(handle.id).attempt == 1  # it never started: the same attempt
