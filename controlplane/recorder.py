"""The recorder: mirrors workers' start and finish reports into the audit table.

Workers report through a Redis stream rather than an HTTP request per call; the
recorder applies a batch of reports in one transaction, and only then flags the
jobs recorded and broadcasts their completion. So anything a waiter sees is
already in the table. A report is acknowledged only after it was recorded; one
this recorder failed to record is read again from its own pending list.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading

from controlplane.store import Store
from sdk.errors import RedisUnavailable
from sdk.transport import Transport

log = logging.getLogger(__name__)

#: Reports applied per transaction, at most.
BATCH_SIZE = 512
#: How long one blocking read waits for reports before checking for shutdown.
BLOCK_MILLISECONDS = 1000
#: Pause after Redis or the database failed, before trying again.
RETRY_SECONDS = 0.5


class Recorder:
    def __init__(self, store: Store, transport: Transport):
        self._store = store
        self._transport = transport
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def run(self, stopping: threading.Event) -> None:
        own_pending = True
        while not stopping.is_set():
            try:
                self._transport.ensure_recorder_group()
                while not stopping.is_set():
                    events = self._transport.read_events(
                        self.consumer, BATCH_SIZE, BLOCK_MILLISECONDS, own_pending
                    )
                    if own_pending and not events:
                        own_pending = False
                        continue
                    if events:
                        self.record(events)
            except RedisUnavailable as exc:
                log.warning("recorder: %s; retrying", exc)
                stopping.wait(RETRY_SECONDS)
            except Exception:  # the database; keep the reports and read them again
                log.exception("recorder: could not record a batch; retrying")
                own_pending = True
                stopping.wait(RETRY_SECONDS)

    def record(self, events: list[tuple[str, dict]]) -> None:
        reports = []
        for event_id, fields in events:
            try:
                reports.append((fields["kind"], fields["id"], json.loads(fields["body"])))
            except (KeyError, ValueError):
                log.error("recorder: dropping malformed report %s: %r", event_id, fields)
        finished = self._store.apply_events(reports)
        self._transport.announce_recorded(finished, [event_id for event_id, _ in events])
