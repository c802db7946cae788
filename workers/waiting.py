"""How a stage running on a worker waits for the child calls it made.

Through Redis, not HTTP: the worker is subscribed to completion broadcasts and
reads the recorded outcome from the child's job. And a parent never waits for a
child that is still sitting in a queue: it takes the child off the queue and
runs it itself, so a workflow of any depth completes on a single worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sdk.client import ControlPlaneClient
from sdk.transport import Transport
from sdk.waiters import Waiters
from sdk.wire import Status


class WorkerWaiting:
    create_wait = None  # create returns at once; the wait goes through Redis

    def __init__(
        self,
        transport: Transport,
        waiters: Waiters,
        client: ControlPlaneClient,
        run_here: Callable[[str, str], bool],
    ):
        self._transport = transport
        self._waiters = waiters
        self._client = client
        self._run_here = run_here

    def outcome(self, call: dict[str, Any]) -> dict[str, Any]:
        call_id = call["id"]
        if Status(call["status"]).is_terminal:
            return call
        if self._transport.take(call["queue"], call_id):
            self._run_here(call["queue"], call_id)
        return self._waiters.wait_for(call_id, lambda: self._recorded(call_id), None)

    def _recorded(self, call_id: str) -> dict[str, Any] | None:
        exists, outcome = self._transport.recorded_outcome(call_id)
        if outcome is not None:
            return json.loads(outcome)
        if not exists:  # the job has expired from Redis (or Redis lost it): ask the table
            record = self._client.get_call(call_id)
            return record if Status(record["status"]).is_terminal else None
        return None
