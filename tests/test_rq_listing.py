"""What `rq info` and rq-dashboard list (RQ's own Worker.all): a worker that died
is gone from it within one lease."""

from __future__ import annotations

import redis
from rq import Worker

from controlplane.local_cluster import wait_until
from tests.cluster import LEASE_SECONDS


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
