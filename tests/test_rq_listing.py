"""What `rq info` and rq-dashboard list (RQ's own Worker.all and registries): a
worker that died is gone from it within one lease, and its counts are the
table's, call for call, after successes, failures, retries, a cancellation and a
worker killed mid-call."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis
import requests
import sqlalchemy as sa
from rq import Queue, Worker
from rq.registry import clean_registries

from controlplane.local_cluster import wait_until
from controlplane.store import make_engine
from controlplane.tables import stage_runs
from sdk.errors import StageFailed
from tests.cluster import LEASE_SECONDS, cluster_of
from tests.workflows import recovery

#: What RQ calls each status of a call that was queued (one run in place never was).
RQ_COUNT_OF = {"pending": "queued", "running": "executing", "succeeded": "finished",
               "failed": "failed", "cancelled": "canceled"}


def listed(url: str, name: str) -> bool:
    return name in {worker.name for worker in Worker.all(connection=redis.Redis.from_url(url))}


def test_a_killed_worker_leaves_rq_info_within_a_lease(run):
    cluster = run
    worker = cluster.worker()
    assert listed(cluster.redis_url, worker.worker_name)
    worker.kill()
    worker.wait()
    wait_until(lambda: not listed(cluster.redis_url, worker.worker_name), "the dead worker gone",
               timeout=LEASE_SECONDS + 1)


@pytest.fixture()
def own_cluster(tmp_path):
    """A cluster no other test's calls are in, so that every count is this test's."""
    with cluster_of(tmp_path, recovery.runner) as cluster:
        yield cluster


def rq_info_counts(redis_url: str) -> Counter:
    """What `rq info` counts, by (queue, what), after the clean-up it runs first."""
    counts: Counter = Counter()
    for queue in Queue.all(connection=redis.Redis.from_url(redis_url)):
        clean_registries(queue)
        counts.update({(queue.name, "queued"): queue.count,
                       (queue.name, "executing"): queue.started_job_registry.count,
                       (queue.name, "finished"): queue.finished_job_registry.count,
                       (queue.name, "failed"): queue.failed_job_registry.count,
                       (queue.name, "canceled"): queue.canceled_job_registry.count})
    return +counts


def dashboard_counts(server_url: str) -> Counter:
    """What rq-dashboard's queue list counts, by (queue, what)."""
    counts: Counter = Counter()
    for queue in requests.get(f"{server_url}/rq/0/data/queues.json", timeout=10).json()["queues"]:
        counts.update({(queue["name"], "queued"): queue["count"],
                       (queue["name"], "executing"): queue["started_job_registry_count"],
                       (queue["name"], "finished"): queue["finished_job_registry_count"],
                       (queue["name"], "failed"): queue["failed_job_registry_count"],
                       (queue["name"], "canceled"): queue["canceled_job_registry_count"]})
    return +counts


def table_counts(database_url: str) -> Counter:
    """The calls in stage_runs that were queued, by (queue, what RQ calls their status)."""
    query = (sa.select(stage_runs.c.queue, stage_runs.c.status, sa.func.count())
             .where(sa.or_(stage_runs.c.run_mode.is_(None), stage_runs.c.run_mode != "inline"))
             .group_by(stage_runs.c.queue, stage_runs.c.status))
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    engine.dispose()
    return Counter({(queue, RQ_COUNT_OF[status]): n for queue, status, n in rows})


def test_rq_info_and_the_dashboard_count_what_the_table_holds(own_cluster, tmp_path):
    cluster = own_cluster
    first = cluster.worker()
    assert [recovery.echo(i) for i in range(3)] == [0, 1, 2]
    assert recovery.flaky(str(tmp_path / "flaky"), 1) == 2  # retried in its slot
    assert recovery.calls_flaky(str(tmp_path / "inner"), 1) == 2  # its child ran in place
    with pytest.raises(StageFailed):
        recovery.raises_unlisted(str(tmp_path / "unlisted"))
    retried = recovery.fails_once.submit(str(tmp_path / "once"))
    with pytest.raises(StageFailed):
        retried.result(timeout=30)
    requests.post(f"{cluster.server_url}/api/call/{retried.id}/retry", timeout=10).raise_for_status()
    again = requests.get(f"{cluster.server_url}/api/call/{retried.id}?wait=30", timeout=40).json()
    assert (again["attempt"], again["status"]) == (2, "succeeded")

    # A worker killed mid-call: its call is run again elsewhere after its lease.
    lost = recovery.slow_the_first_time.submit(str(tmp_path / "slow"), 60)
    wait_until(lambda: (tmp_path / "slow").exists(), "the slow call started")
    first.kill()
    first.wait()
    cluster.worker()
    assert lost.result(timeout=30) == 2

    # One call running, one queued behind it, one cancelled while queued.
    running = recovery.logged_nap.submit(str(tmp_path / "nap"), 60, "ran")
    wait_until(lambda: (tmp_path / "nap").exists(), "the nap started")
    queued = recovery.logged_nap.submit(str(tmp_path / "nap"), 60, "queued")
    cancelled = recovery.logged_nap.submit(str(tmp_path / "nap"), 60, "cancelled")
    requests.post(f"{cluster.server_url}/api/call/{cancelled.id}/cancel", timeout=10).raise_for_status()

    table = table_counts(cluster.env["DATABASE_URL"])
    nap = next(queue for queue, _ in table if queue.endswith("logged_nap"))
    assert (table[nap, "executing"], table[nap, "queued"], table[nap, "canceled"]) == (1, 1, 1)
    assert sum(n for (_, what), n in table.items() if what == "failed") == 1
    assert rq_info_counts(cluster.redis_url) == table
    assert dashboard_counts(cluster.server_url) == table

    # RQ's clean-up a month on (as `rq info` would run it during a call that long)
    # leaves a running call alone: callplane's recovery judges it, by its lease.
    month_on = time.time() + 30 * 24 * 3600
    Queue(nap, connection=redis.Redis.from_url(cluster.redis_url)).started_job_registry.cleanup(month_on)
    assert rq_info_counts(cluster.redis_url) == table
    for handle in (running, queued):  # so that the worker stops at once
        requests.post(f"{cluster.server_url}/api/call/{handle.id}/cancel", timeout=10)
