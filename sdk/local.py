"""Local mode: `runner.run(main, local=True)` runs every stage in this process.

No Redis, no worker: each call runs at once, in order, on the calling thread, so
a workflow's unit test needs nothing started and a debugger steps straight into
stages. Retries, backoff, timeouts and re-runs behave as on a worker (see
LocalCaller.call), except that nothing can be isolated or stopped. When the control plane answers, each call is still recorded there (as a
running row that this process then finishes), so the audit table shows the same
tree as a distributed run; otherwise the run is purely in memory.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import msgspec

from sdk.caller import no_slot_to_wait_in
from sdk.client import ControlPlaneClient
from sdk.context import CallFrame
from sdk.errors import ControlPlaneUnavailable, StageTimeout
from sdk.handles import unwrap
from sdk.records import CallRecord, CallRequest, ErrorRecord, LocalOutcome, Outcome
from sdk.wire import RunMode, Status, check_result

if TYPE_CHECKING:
    from sdk.decorators import Stage, WorkflowRunner

log = logging.getLogger(__name__)


class LocalCaller:
    def __init__(self, runner: WorkflowRunner):
        self._runner = runner
        # Recording is best effort: an unreachable control plane is not waited for.
        self._client = ControlPlaneClient(runner.client.server_url, outage_seconds=0)
        self._recording = True
        self.worker = f"local:{socket.gethostname()}:{os.getpid()}"
        #: How each call this caller ran ended: submit() runs them at once.
        self._outcomes: dict[str, Outcome] = {}

    def run(self, main: Stage[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        outcome = self.call(self._runner.request(main, args, kwargs, None), main.queued)
        return unwrap(outcome, self._runner.own_exceptions)

    # -- the Caller protocol -------------------------------------------------------

    @staticmethod
    def sleep(seconds: float) -> None:
        """Local mode has no slot to give back: it sleeps in the calling thread."""
        time.sleep(seconds)

    wait_for_event = staticmethod(no_slot_to_wait_in)

    def call(self, request: CallRequest, queued: bool) -> Outcome:
        """Run the call here and now, with its stage's retries; its outcome.

        As on a worker: a child that succeeded in an earlier attempt of its
        parent returns its result without running again, and a call that ran
        past its stage's timeout fails with StageTimeout (here it cannot be
        stopped, only judged once it returns). A delayed call waits for its time
        here, holding the thread. `queued` has no meaning here.
        """
        earlier = self._outcomes.get(request.call_id)
        if earlier is not None and earlier.status is Status.SUCCEEDED:
            return earlier
        stage = self._runner.stages[request.stage]
        request = self._when_due(request)
        recorded = self._record_start(request)
        rng = random.Random()
        attempt = 1
        while True:
            outcome, exc = self._attempt(request, stage, attempt)
            if exc is None or not stage.retry.retries_after(exc, attempt):
                break
            time.sleep(stage.retry.pause(attempt, rng))
            attempt += 1
        if recorded:
            self._record_finish(outcome)
        self._outcomes[outcome.id] = outcome
        return outcome

    @staticmethod
    def _when_due(request: CallRequest) -> CallRequest:
        """Wait until a delayed call is due; the request, without its delay now."""
        if not request.delayed:
            return request
        now = datetime.now(timezone.utc)
        due = request.due(now)
        if due is not None and due > now:
            time.sleep((due - now).total_seconds())
        return msgspec.structs.replace(request, not_before=None, delay_seconds=None)

    def _attempt(self, request: CallRequest, stage: Stage[Any, Any], attempt: int
                 ) -> tuple[Outcome, Exception | None]:
        """One attempt: its outcome, and what it raised (None if it succeeded)."""
        parent = self._runner.context.current()
        frame = CallFrame(
            id=request.call_id,
            stage=stage.name,
            root_id=parent.root_id if parent else request.call_id,
            repo_name=request.repo_name,
            commit_hash=request.commit_hash,
            attempt=attempt,
            caller=self,
        )
        started = time.monotonic()
        with self._runner.context.entered(frame):
            try:
                result = stage.fn(*request.arguments.args, **request.arguments.kwargs)
                check_result(stage.name, result)
            except Exception as exc:  # noqa: BLE001 - the call's failure is its outcome
                return LocalOutcome(request.call_id, stage.name, Status.FAILED,
                                    error=ErrorRecord.of(exc), exception=exc, attempt=attempt), exc
        took = time.monotonic() - started
        if stage.timeout is not None and took > stage.timeout:
            error = ErrorRecord.system(StageTimeout, f"attempt {attempt} ran {took:.1f} s, past "
                                                     f"its stage's timeout of {stage.timeout:g} s")
            overrun = StageTimeout(stage.name, request.call_id, error)
            return LocalOutcome(request.call_id, stage.name, Status.FAILED, error=error,
                                attempt=attempt), overrun
        return LocalOutcome(request.call_id, stage.name, Status.SUCCEEDED, result=result,
                            attempt=attempt), None

    def submit(self, requests: list[CallRequest]) -> list[CallRecord]:
        """Local calls run as they are submitted, one after another."""
        return [self._as_record(self.call(request, False)) for request in requests]

    def finished(
        self, calls: list[CallRecord], timeout: float | None, every: bool = False
    ) -> Iterator[Outcome]:
        yield from (self._outcomes[call.id] for call in calls)  # submit() ran them

    @staticmethod
    def _as_record(outcome: Outcome) -> CallRecord:
        return CallRecord(outcome.id, outcome.stage, outcome.status, result=outcome.result,
                          error=outcome.error, run_mode=RunMode.LOCAL)

    # -- the audit record, when the control plane answers --------------------------

    def _record_start(self, request: CallRequest) -> bool:
        if not self._recording:
            return False
        try:
            self._client.create_call(
                msgspec.structs.replace(request, run_mode=RunMode.LOCAL, worker=self.worker)
            )
        except ControlPlaneUnavailable as exc:
            self._stop_recording(exc)
            return False
        return True

    def _record_finish(self, outcome: Outcome) -> None:
        if not self._recording:
            return
        try:
            self._client.finish_call(outcome.id, outcome)
        except ControlPlaneUnavailable as exc:
            self._stop_recording(exc)

    def _stop_recording(self, exc: ControlPlaneUnavailable) -> None:
        self._recording = False
        log.warning("local run: not recorded in the audit table from here on (%s)", exc)
