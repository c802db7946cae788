"""How a process makes calls and waits for them: the seam between the runner and
where it runs.

Three callers implement it: `RemoteCaller` (a process outside any worker: the
control plane's long polls), the worker's own (Redis, and running a child in
place rather than waiting on it; `workers.children`), and `sdk.local.LocalCaller`
(everything in this process).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from sdk.client import CREATE_BATCH, ControlPlaneClient
from sdk.coalescing import Coalescer
from sdk.errors import ControlPlaneRefused, ControlPlaneUnavailable
from sdk.records import CallRecord, CallRequest, Outcome
from sdk.settings import MAX_WAIT_SECONDS
from sdk.wire import Status

log = logging.getLogger(__name__)
T = TypeVar("T")


class Caller(Protocol):
    def sleep(self, seconds: float) -> None:
        """Wait `seconds` in the current call (see WorkflowRunner.sleep)."""

    def wait_for_event(self, key: str, timeout: float | None) -> Any:
        """Wait for an event sent to `key` (see WorkflowRunner.wait_for_event)."""

    def call(self, request: CallRequest, queued: bool) -> Outcome:
        """Create one call and return how it ended (status, result, error, output);
        `queued`: it goes through its queue, never inline (an isolated or a limited stage)."""

    def submit(self, requests: list[CallRequest]) -> list[CallRecord]:
        """Create calls without waiting for them; their records, in order."""

    def finished(
        self, calls: list[CallRecord], timeout: float | None, every: bool = False
    ) -> Iterator[Outcome]:
        """Yield the outcome of each of `calls` as it finishes.

        Raises TimeoutError once `timeout` seconds passed with calls unfinished;
        timeout=0 only looks, it never blocks. `every` says the consumer wants
        them all anyway, so outcomes may come in fewer, larger batches.
        """


def no_slot_to_wait_in(key: str, timeout: float | None) -> Any:
    """Outside a worker slot there is no call to suspend: waiting for an event is
    refused, saying where it works."""
    raise RuntimeError(
        f"runner.wait_for_event({key!r}) waits in a stage running on a worker (it gives the "
        "worker slot back until the event comes), not in a script or local mode: call a stage "
        "that waits for it")


def deadline_of(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None, cap: float) -> float:
    """Seconds to the deadline, capped; never negative."""
    if deadline is None:
        return cap
    return max(0.0, min(cap, deadline - time.monotonic()))


class RemoteCaller:
    """A caller outside any worker waits through the control plane's `?wait=`.

    Submits from many threads at once share requests (sdk.coalescing): a web
    server's handlers each submitting a call cost the control plane one request
    per batch, not per call. Each submit still returns only once its calls exist,
    unless its thread is in a `deferring()` block.
    """

    def __init__(self, client: ControlPlaneClient, wait_seconds: float = MAX_WAIT_SECONDS):
        self.sleep = time.sleep  # outside a worker there is no slot to give back
        self.wait_for_event = no_slot_to_wait_in
        self._client = client
        self._wait_seconds = wait_seconds
        self._creates = Coalescer(client.create_calls, CREATE_BATCH, refused=ControlPlaneRefused)
        self._deferred = threading.local()

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        """Submits in this thread return at once, and are created a batch per
        request as they add up; all of them by the time the block ends, even when
        it ends with an exception (and before any wait inside it)."""
        if getattr(self._deferred, "requests", None) is not None:
            yield  # nested: the outer block creates them
            return
        self._deferred.requests = []
        try:
            yield
        finally:
            self._create_deferred()
            self._deferred.requests = None

    def _create_deferred(self) -> None:
        requests = getattr(self._deferred, "requests", None)
        if requests:
            batch = requests[:]
            requests.clear()
            self._creates(batch)

    def call(self, request: CallRequest, queued: bool) -> Outcome:
        self._create_deferred()  # calls submitted before it are created before it
        call = self._through_outages(
            functools.partial(self._client.create_call, request, wait=self._wait_seconds), None)
        while not call.finished:
            call = self._through_outages(
                functools.partial(self._client.get_call, call.id, wait=self._wait_seconds), None)
        return call.outcome()

    def _through_outages(self, request: Callable[[], T], deadline: float | None) -> T:
        """A request that waits for calls, sent again while the control plane is
        unavailable (a restart, its database away: the calls go on meanwhile),
        until the caller's deadline. A control plane that never answered this
        client is taken to be a wrong address: its error is raised at once."""
        while True:
            try:
                return request()
            except ControlPlaneUnavailable as exc:
                if not self._client.has_answered or (
                        deadline is not None and time.monotonic() >= deadline):
                    raise
                log.warning("%s; still waiting (the calls go on meanwhile)", exc)

    def submit(self, requests: list[CallRequest]) -> list[CallRecord]:
        deferred = getattr(self._deferred, "requests", None)
        if deferred is None:
            return self._creates(requests)
        deferred += requests
        if len(deferred) >= CREATE_BATCH:
            self._create_deferred()
        return [CallRecord(id=request.call_id, stage=request.stage, status=Status.PENDING,
                           arguments=request.arguments, max_attempts=request.max_attempts)
                for request in requests]

    def finished(
        self, calls: list[CallRecord], timeout: float | None, every: bool = False
    ) -> Iterator[Outcome]:
        self._create_deferred()  # a wait must not wait on calls not created yet
        deadline = deadline_of(timeout)
        pending = {call.id for call in calls}
        while pending:
            wait = remaining(deadline, self._wait_seconds)
            answer = self._through_outages(
                functools.partial(self._client.finished_calls, sorted(pending), wait, every),
                deadline)
            for record in answer:
                pending.discard(record.id)
                yield record.outcome()
            if pending and deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(pending)} call(s) still running after {timeout:g} s")
