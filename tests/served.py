"""A control plane served from the test's own process, whose clock the test sets.

A real HTTP server (werkzeug's, threaded) on a free port serves the real app on
a redis-server and a database of its own, with its background threads (the
recorder, the clock duty, ...) running; workers are real processes. Only the
time its clock duty and schedules go by is the test's: the real time moved by
an offset, so a fire time or an expiry far off comes within a moment.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from werkzeug.serving import make_server

from controlplane.app import create_app, services_of
from controlplane.local_cluster import free_port, start_redis_server, start_worker, stop
from controlplane.store import Store, utcnow
from sdk.settings import Settings
from tests.conftest import TEST_COMMIT, fresh_database


class ShiftedClock:
    """The real time, moved by what the test says."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def move_to(self, when: datetime) -> None:
        """From now on it is `when`, and time goes on from there."""
        self.offset = when - utcnow()


@dataclass
class ServedPlane:
    """What a test reaches of the control plane it serves."""

    url: str
    redis_url: str
    clock: ShiftedClock
    store: Store
    #: The settings it was given, which its workers get too.
    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen]

    def worker(self, workflow: Path) -> subprocess.Popen:
        """A worker process of `workflow`, stopped with the control plane."""
        log = open(self.logs / f"worker-{len(self.workers)}.log", "w")  # noqa: SIM115 - the worker's lifetime
        process = start_worker(self.url, self.redis_url, workflow, "tests", TEST_COMMIT, self.env,
                               stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(process)
        return process


@contextlib.contextmanager
def served_plane(directory: Path, env: dict[str, str] | None = None) -> Iterator[ServedPlane]:
    """A control plane in this process on a redis-server and database of its own,
    its settings read from `env` (besides DATABASE_URL and REDIS_URL) as the
    command line reads them."""
    redis_port = free_port()
    redis_server = start_redis_server(redis_port, directory)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    clock = ShiftedClock()
    try:
        with fresh_database(directory) as database_url:
            settings = Settings.from_env({**(env or {}), "DATABASE_URL": database_url,
                                          "REDIS_URL": redis_url})
            app = create_app(settings, start_services=True, clock=clock)
            server = make_server("127.0.0.1", 0, app, threaded=True)
            thread = threading.Thread(target=server.serve_forever, name="served-plane", daemon=True)
            thread.start()
            plane = ServedPlane(f"http://127.0.0.1:{server.server_port}", redis_url, clock,
                                services_of(app).store, env or {}, directory, [])
            try:
                yield plane
            finally:
                for process in plane.workers:
                    stop(process)
                server.shutdown()
                thread.join(timeout=10)
                services_of(app).stop()
    finally:
        stop(redis_server)
