"""Keep the leases of the attempts a worker process runs.

A started attempt is the worker's only while its lease lasts; this thread renews
the leases of every attempt the process runs (the calls it took off a queue, the
children it runs in place, an isolated call its forked child runs) every third
of a lease. A worker that dies or hangs stops renewing, and the control plane
gives the attempt to another worker once the lease has ended.
"""

from __future__ import annotations

import logging
import threading

from sdk.errors import RedisUnavailable
from sdk.reports import Heartbeat
from sdk.transport import Transport
from workers.running import RunningCalls

log = logging.getLogger(__name__)

#: Renewals per lease: two may be lost or late before the lease ends.
RENEWALS_PER_LEASE = 3


class LeaseKeeper:
    def __init__(
        self, transport: Transport, running: RunningCalls, worker_name: str, lease_seconds: float
    ):
        self._transport = transport
        self._running = running
        self._worker = worker_name
        self._interval = lease_seconds / RENEWALS_PER_LEASE
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._run, name="callplane-leases", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            attempts = self._running.attempts()
            if not attempts:
                continue
            try:
                self._transport.events.heartbeat(Heartbeat(self._worker, attempts))
            except RedisUnavailable as exc:
                log.warning("could not renew %d lease(s): %s", len(attempts), exc)
            except Exception:  # this thread must outlive any one failure
                log.exception("could not renew %d lease(s)", len(attempts))
