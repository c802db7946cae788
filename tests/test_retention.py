"""Retention: whole finished runs past CALLPLANE_RETENTION are deleted by the
control plane's duty, and by `callplane db prune` by hand; never a run with a
call still pending or running. On clusters of their own (tests/cluster.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import requests
import sqlalchemy as sa

from controlplane.local_cluster import wait_until
from controlplane.tables import call_attempts, stage_runs
from sdk.settings import environment_with
from tests.cluster import cluster_of, store_on
from tests.workflows import recovery

PRUNE = [sys.executable, "-m", "controlplane.cli", "db", "prune"]


def _rows(store, run_id: str) -> tuple[int, int]:
    """A run's calls, and their earlier attempts, still in the table."""
    calls = sa.select(stage_runs.c.id).where(stage_runs.c.root_stage_run_id == run_id)
    with store.engine.connect() as conn:
        ids = list(conn.execute(calls).scalars())
        attempts = conn.execute(sa.select(sa.func.count()).select_from(call_attempts)
                                .where(call_attempts.c.call_id.in_(ids))).scalar_one()
    return len(ids), attempts


def test_the_duty_deletes_finished_runs_whole_and_keeps_unfinished_ones(tmp_path):
    log = str(tmp_path / "executions")
    with cluster_of(tmp_path, recovery.runner, env={"CALLPLANE_RETENTION": "2s"}) as cluster, \
            store_on(cluster) as store:
        cluster.worker(), cluster.worker()
        tree = recovery.tree_of_naps.submit(log, 5, 0.01)
        retried = recovery.calls_flaky.submit(str(tmp_path / "flaky"), 2)
        assert (tree.result(timeout=30), retried.result(timeout=30)) == (9, 3)
        assert _rows(store, tree.id) == (7, 0) and _rows(store, retried.id) == (2, 2)
        parent = recovery.leaves_a_child.submit(log, 6)
        assert parent.result(timeout=30) == "the parent is done"

        wait_until(lambda: _rows(store, tree.id) == _rows(store, retried.id) == (0, 0),
                   "the finished runs deleted", timeout=15)
        assert requests.get(f"{cluster.server_url}/api/call/{tree.id}", timeout=10).status_code == 404
        # Its child still naps: the run stays, whole, however old its parent's finish.
        assert _rows(store, parent.id) == (2, 0) and store.get(parent.id).status == "succeeded"
        wait_until(lambda: _rows(store, parent.id) == (0, 0), "the run deleted once its child ended",
                   timeout=20)


def test_db_prune_counts_then_deletes_old_finished_runs(tmp_path):
    log = str(tmp_path / "executions")
    with cluster_of(tmp_path, recovery.runner) as cluster, store_on(cluster) as store:
        cluster.worker()
        finished = [recovery.tree_of_naps.submit(log, 2, 0.01) for _ in range(3)]
        assert [handle.result(timeout=30) for handle in finished] == [0] * 3
        running = recovery.logged_nap.submit(log, 30, "still running")
        wait_until(lambda: store.get(running.id).status == "running", "the long call started")
        time.sleep(1.1)
        environment = environment_with({"DATABASE_URL": cluster.env["DATABASE_URL"]})

        def prune(*options: str) -> str:
            done = subprocess.run([*PRUNE, "--older-than", "1s", *options], env=environment,
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        assert prune("--dry-run") == "would delete 3 run(s) that finished over 1s ago (12 call row(s))"
        assert all(_rows(store, handle.id) == (4, 0) for handle in finished)
        assert prune() == "deleted 3 run(s) that finished over 1s ago (12 call row(s))"
        assert all(_rows(store, handle.id) == (0, 0) for handle in finished)
        assert prune() == "deleted 0 run(s) that finished over 1s ago (0 call row(s))"
        assert store.get(running.id).status == "running"
        refused = subprocess.run([*PRUNE, "--older-than", "soon"], env=environment,
                                 capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 2 and "an age reads like '30d'" in refused.stderr
