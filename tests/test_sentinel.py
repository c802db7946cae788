"""Redis failover: the control plane, workers, the CLI and rq-dashboard on a
`redis+sentinel://` URL; the master SIGKILLed mid-run and its replica promoted
by three real redis-sentinel processes. Nothing accepted is lost, nothing is
recorded twice, and the time to recover is reported."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import text

from controlplane.local_cluster import wait_until
from sdk.settings import environment_with
from tests.cluster import cluster_of, executions, store_on
from tests.sentinels import SentinelSet
from tests.workflows import recovery

#: Plain calls before the failover, calls made while it happens, and parents
#: with CHILDREN children each (one of them run in the parent's slot).
BEFORE, DURING, PARENTS, CHILDREN = 100, 50, 3, 10


@pytest.fixture()
def failover(tmp_path):
    redis_folder = tmp_path / "redis"
    redis_folder.mkdir()
    sentinels = SentinelSet(redis_folder)
    try:
        with cluster_of(tmp_path, recovery.runner, redis_url=sentinels.url) as cluster:
            yield sentinels, cluster
    finally:
        sentinels.close()


def test_a_run_survives_its_redis_master_killed(failover, tmp_path, report_figure):
    sentinels, cluster = failover
    cluster.worker(), cluster.worker()
    log = str(tmp_path / "executions")
    plain = [recovery.logged_nap.submit(log, 0.02, i) for i in range(BEFORE)]
    parents = [recovery.tree_of_naps.submit(log, CHILDREN, 0.02) for _ in range(PARENTS)]
    wait_until(lambda: len(executions(tmp_path / "executions")) >= 30, "the first executions")

    killed_at = sentinels.kill_master()
    during = [recovery.logged_nap.submit(log, 0.02, i) for i in range(BEFORE, BEFORE + DURING)]
    promoted_at = sentinels.wait_for_promotion()

    plain += during
    assert [handle.result(timeout=90) for handle in plain] == list(range(BEFORE + DURING))
    assert [handle.result(timeout=90) for handle in parents] == [sum(range(CHILDREN)) - 1] * PARENTS
    with store_on(cluster) as store, store.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, status, finished_at FROM stage_runs")).all()
    calls = BEFORE + DURING + PARENTS * (1 + CHILDREN + 1)
    # Every call recorded once, and succeeded (a call whose finish the old master
    # took but never passed on runs again as its next attempt, on the same row).
    assert len(rows) == len({row.id for row in rows}) == calls
    assert {row.status for row in rows} == {"succeeded"}
    assert len(executions(tmp_path / "executions")) >= calls - PARENTS
    made_during = {handle.id for handle in during}
    finished = sorted(_seconds(row.finished_at) - killed_at for row in rows if row.id in made_during)
    report_figure(
        f"after the master was SIGKILLed: replica promoted in {promoted_at - killed_at:.1f} s; "
        f"of the {DURING} calls made meanwhile, the first finished in {finished[0]:.1f} s, "
        f"the last in {finished[-1]:.1f} s")

    # The CLI and rq-dashboard read the new master through the same URL.
    cli = subprocess.run([sys.executable, "-m", "controlplane.cli", "recorder", "dead-letters"],
                         check=False, env=environment_with({"REDIS_URL": sentinels.url}),
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0 and "report(s) set aside" in cli.stdout, cli.stderr
    queues = requests.get(f"{cluster.server_url}/rq/0/data/queues.json", timeout=10)
    assert queues.status_code == 200 and queues.json()["queues"]
    assert requests.get(f"{cluster.server_url}/ready", timeout=10).status_code == 200


def _seconds(moment) -> float:
    """A timestamp read from the table (text on SQLite) as time.time() tells it."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
