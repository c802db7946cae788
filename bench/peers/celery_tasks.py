"""Tasks the Celery workers run; `app` is what `celery -A bench.peers.celery_tasks` loads."""

from __future__ import annotations

import os
from time import perf_counter, sleep

from celery import Celery

from bench.common import REDIS_URL_ENV
from bench.peers.base import CALL_TIMEOUT

NOOP = "bench.noop"
PARENT = "bench.parent"
NAP = "bench.nap"


def configure(app: Celery, redis_url: str | None) -> Celery:
    """Redis as broker and result backend; one message prefetched per solo worker.

    Everything else stays at Celery's defaults, as a typical deployment has it.
    """
    app.conf.update(broker_url=redis_url, result_backend=redis_url,
                    worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)
    return app


# The workers' app, on the Redis the runner names in their environment; the client (where
# the variable is unset) builds its own app with `configure` and sends tasks by name.
app = configure(Celery("bench"), os.environ.get(REDIS_URL_ENV))


@app.task(name=NOOP)
def noop() -> None:
    """Do nothing: the benchmark measures the system, not the job."""


@app.task(name=NAP)
def nap(seconds: float) -> None:
    """Sleep: a job that holds its slot without using the CPU (the concurrency workload)."""
    sleep(seconds)


@app.task(name=PARENT)
def parent(children: int) -> float:
    """Run `children` no-op children in turn, each awaited; return the seconds it took."""
    started = perf_counter()
    for _ in range(children):
        noop.delay().get(timeout=CALL_TIMEOUT, disable_sync_subtasks=False)
    return perf_counter() - started
