"""Run one call: claim it, execute its stage with the call as context, report the outcome.

Calls popped from a queue and calls a waiting parent takes off the queue to run
itself (so nesting never deadlocks, even on a single worker) go through the same
`process`, and so get the same claim, audit record and report. A call created as
running here (its parent runs it in place) skips the queue and the claim.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sdk.backoff import delays
from sdk.context import CallContext, CallFrame
from sdk.decorators import Stage
from sdk.errors import DecodeError, RedisUnavailable, StageTimeout, describe
from sdk.transport import JOB_GONE, Claimed, FinishReport, StartReport, Transport
from sdk.wire import CallMessage, RunMode, Status, check_result, dumps
from workers.isolation import TIMED_OUT, run_in_child
from workers.output import captured

log = logging.getLogger(__name__)

#: How long a worker keeps trying to report an outcome while Redis is away.
REPORT_RETRY_SECONDS = 60.0


def run_call(*_args, **_kwargs):
    """The function an RQ job of callplane's names. Only callplane's worker runs
    these jobs (it checks the name and runs the stage itself); a stock RQ worker
    that picks one up fails it here instead of running anything."""
    raise RuntimeError("callplane calls run only on callplane workers (callplane worker ...)")


@dataclass(frozen=True)
class CodeVersion:
    repo_name: str | None
    commit_hash: str | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _cancelled(message: CallMessage) -> tuple:
    """What a cancelled attempt gave (its report is refused; this is for the log)."""
    error = {"type": "callplane.Cancelled", "message": f"call {message.id} was cancelled",
             "traceback": ""}
    return None, error, ""


class Executor:
    def __init__(
        self,
        transport: Transport,
        stages: dict[str, Stage],
        context: CallContext,
        worker_name: str,
        version: CodeVersion,
        isolate: bool = False,
        fresh: Callable[[], Executor] | None = None,
    ):
        self._transport = transport
        self._stages = stages
        self._context = context
        self.worker_name = worker_name
        self._version = version
        self._isolate_all = isolate
        #: Builds this executor anew inside a forked process (for isolated calls).
        self._fresh = fresh
        #: The attempts running here, whose leases this process renews: {call id: attempt}.
        self._running: dict[str, int] = {}
        self._running_lock = threading.Lock()
        #: Of those, the ones run by this process's main thread, and the forked
        #: processes running isolated ones: where a cancellation must reach.
        self._on_main_thread: set[str] = set()
        self._children: dict[str, int] = {}
        #: Running calls that were cancelled: they stop and are not retried.
        self._cancelled: set[str] = set()
        #: How deep the main thread is in stage code: only there may a
        #: cancellation interrupt it (never in the worker's own loop).
        self._main_stage_depth = 0

    def cancel(self, call_ids: list[str]) -> bool:
        """Stop those of `call_ids` that run here: kill the processes of isolated
        ones; True if one runs on the main thread (the caller interrupts it)."""
        with self._running_lock:
            mine = [call_id for call_id in call_ids if call_id in self._running]
            self._cancelled.update(mine)
            children = [self._children[i] for i in mine if i in self._children]
            on_main = any(call_id in self._on_main_thread for call_id in mine)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return on_main

    def is_cancelled(self, call_id: str) -> bool:
        with self._running_lock:
            return call_id in self._cancelled

    def interruption(self) -> str | None:
        """Why the main thread must stop the stage it runs now: a call it runs was
        cancelled. None outside stage code.

        Called from a signal handler on the main thread, so it takes no lock (the
        main thread may hold it): the set intersection is one step under the GIL.
        """
        if self._main_stage_depth == 0:
            return None
        stopped = self._cancelled & self._on_main_thread
        return f"call {min(stopped)} was cancelled" if stopped else None

    def running_attempts(self) -> list[tuple[str, int]]:
        """The (call id, attempt) pairs this executor runs now."""
        with self._running_lock:
            return list(self._running.items())

    def process(
        self, queue: str, call_id: str, run_mode: RunMode = RunMode.DISPATCHED
    ) -> dict[str, Any] | None:
        """Claim and run one queued call; its outcome, or None if someone else had
        already claimed it."""
        claimed = self.claim(queue, call_id, run_mode)
        if claimed is None:
            return None
        outcome, _next = self.run(claimed)
        return outcome

    def claim(
        self, queue: str, call_id: str, run_mode: RunMode = RunMode.DISPATCHED
    ) -> Claimed | None:
        """Claim one queued call for this worker; None if someone else had already."""
        claimed = self._transport.claim(queue, call_id, self._start(run_mode))
        if claimed is None:
            log.info("call %s was claimed elsewhere; skipping it", call_id)
        return claimed

    def run(
        self, claimed: Claimed, then_claim_from: list[str] | None = None
    ) -> tuple[dict[str, Any] | None, Claimed | None]:
        """Run a claimed call; its outcome (None if its process died), and with
        `then_claim_from`, the next call claimed off those queues in the same
        round trip as this one's finish."""
        started_at, run_mode = claimed.start.started_at, RunMode(claimed.start.run_mode)
        try:
            message = CallMessage.decode(claimed.data)
        except DecodeError as exc:
            log.error("call %s: refusing its job: %s", claimed.call_id, exc)
            message = CallMessage(id=claimed.call_id, stage="?")
            return self._finish(message, claimed.queue, started_at, run_mode, (None, describe(exc), ""))
        isolated = self._isolated_stage(message.stage)
        if isolated:
            run_mode = RunMode.ISOLATED
        message, started_at, ran = self._attempts(message, claimed.queue, started_at, isolated)
        if ran is None:
            return None, None
        return self._finish(message, claimed.queue, started_at, run_mode, ran, then_claim_from)

    def _run_mode(self, requested: RunMode) -> RunMode:
        return RunMode.ISOLATED if self._fresh is not None and self._isolate_all else requested

    def _start(self, run_mode: RunMode) -> StartReport:
        return StartReport.now(self.worker_name, self._run_mode(run_mode).value)

    def run_in_place(self, record: dict[str, Any]) -> dict[str, Any]:
        """Run a call that was created as running here (never queued); its outcome."""
        message = CallMessage.of_record(record)
        started_at = datetime.fromisoformat(record["started_at"])
        message, started_at, ran = self._attempts(message, None, started_at, isolated=False)
        outcome = self._outcome(message, started_at, RunMode.INLINE, ran)
        self._transport.report_finish(message.id, dumps(outcome))
        return outcome

    def _isolated_stage(self, stage_name: str) -> bool:
        """Whether a call of this stage runs in a fresh process (not when already in one)."""
        if self._fresh is None:
            return False
        stage = self._stages.get(stage_name)
        return self._isolate_all or (stage is not None and stage.isolate)

    def _attempts(
        self, message: CallMessage, queue: str | None, started_at: datetime, isolated: bool
    ) -> tuple[CallMessage, datetime, tuple | None]:
        """Run attempts of a call until one is its outcome: it succeeded, or raised
        what its stage does not retry, or its retries are used up. Each retried
        attempt is reported (with its error) before the pause that follows it.

        Returns the last attempt's message, its start, and (result, error,
        output); None for the last when the process running it died (the attempt
        is reported lost: the control plane runs it again or fails it).
        """
        stage = self._stages.get(message.stage)
        rng = random.Random()
        try:
            while True:
                self._hold(message)
                once = self._once_isolated(message, stage) if isolated else self._once(message, stage)
                if once is None:
                    return message, started_at, None
                ran, retryable = once
                if not retryable or message.id in self._cancelled:
                    return message, started_at, ran
                pause = stage.retry.pause(message.attempt, rng)
                next_start = _now() + timedelta(seconds=pause)
                if not self._report_retry(queue, message, started_at, ran[1], next_start):
                    return message, started_at, ran  # no longer this worker's to retry
                message = dataclasses.replace(message, attempt=message.attempt + 1)
                self._hold(message)
                time.sleep(pause)
                started_at = next_start
                if message.id in self._cancelled:  # cancelled during the pause
                    return message, started_at, _cancelled(message)
        finally:
            with self._running_lock:
                self._running.pop(message.id, None)
                self._on_main_thread.discard(message.id)
                self._cancelled.discard(message.id)

    def _once(self, message: CallMessage, stage: Stage | None) -> tuple[tuple, bool]:
        """One attempt in this process: ((result, error, output), whether it retries)."""
        frame = CallFrame(
            id=message.id,
            stage=message.stage,
            root_id=message.root_id or message.id,
            repo_name=self._version.repo_name,
            commit_hash=self._version.commit_hash,
            attempt=message.attempt,
        )
        on_main = threading.current_thread() is threading.main_thread()
        with self._context.entered(frame):
            try:
                if on_main:  # only the main thread counts: a signal can only interrupt it
                    self._main_stage_depth += 1
                try:
                    if stage is None:
                        raise LookupError(
                            f"this worker's workflow file registers no stage {message.stage!r}; "
                            f"it has {sorted(self._stages)}"
                        )
                    result = stage.fn(*message.args, **message.kwargs)
                    check_result(message.stage, result)
                finally:
                    if on_main:
                        self._main_stage_depth -= 1
                return (result, None, captured(frame.output)), False
            except Exception as exc:  # noqa: BLE001 - any stage error is the call's outcome
                retryable = stage is not None and stage.retry.retries_after(exc, message.attempt)
                return (None, describe(exc), captured(frame.output)), retryable

    def _once_isolated(self, message: CallMessage, stage: Stage | None) -> tuple[tuple, bool] | None:
        """One attempt in a fresh process, stopped at the stage's timeout; None if
        the process died (the attempt is then reported lost)."""

        def in_child() -> str:
            fresh = self._fresh()
            ran, retryable = fresh._once(message, fresh._stages.get(message.stage))
            return dumps({"ran": ran, "retryable": retryable})

        def started(pid: int) -> None:
            with self._running_lock:
                self._children[message.id] = pid

        timeout = stage.timeout if stage is not None else None
        try:
            ended, sent = run_in_child(in_child, timeout, started)
        finally:
            with self._running_lock:
                self._children.pop(message.id, None)
        if message.id in self._cancelled:
            return _cancelled(message), False
        if sent is not None:
            answer = json.loads(sent)
            return tuple(answer["ran"]), answer["retryable"]
        if ended == TIMED_OUT:
            exc = StageTimeout(f"the call was stopped after {timeout:g} s, its stage's timeout")
            error = {"type": "callplane.StageTimeout", "message": str(exc), "traceback": ""}
            return (None, error, ""), stage.retry.retries_after(exc, message.attempt)
        error = {
            "type": "callplane.ProcessDied",
            "message": f"the process running this call {ended or 'exited without reporting'}",
            "traceback": "",
        }
        log.warning("call %s: attempt %d lost: %s", message.id, message.attempt, error["message"])
        self._transport.report_lost(
            message.id, dumps({"worker": self.worker_name, "attempt": message.attempt, "error": error})
        )
        return None

    def _hold(self, message: CallMessage) -> None:
        """Renew this attempt's lease from here on (see running_attempts)."""
        with self._running_lock:
            self._running[message.id] = message.attempt
            if threading.current_thread() is threading.main_thread():
                self._on_main_thread.add(message.id)

    def _report_retry(
        self,
        queue: str | None,
        message: CallMessage,
        started_at: datetime,
        error: dict,
        next_start: datetime,
    ) -> bool:
        body = dumps({
            "worker": self.worker_name, "attempt": message.attempt, "error": error,
            "started_at": started_at.isoformat(), "finished_at": _now().isoformat(),
            "next_started_at": next_start.isoformat(),
        })
        log.info("call %s: attempt %d raised %s; retrying", message.id, message.attempt, error["type"])
        return self._transport.report_retry(queue, message.id, self.worker_name, message.attempt, body)

    def _report(
        self, report: FinishReport, then_claim_from: list[str] | None
    ) -> tuple[int, Claimed | None]:
        """Report an outcome, retrying while Redis is away: a finished result is
        kept and sent until Redis takes it (or a minute has passed)."""
        deadline = time.monotonic() + REPORT_RETRY_SECONDS
        pauses = delays(0.05, 2.0)
        while True:
            try:
                if then_claim_from:
                    return self._transport.finish_and_claim_next(
                        report, then_claim_from, self._start(RunMode.DISPATCHED)
                    )
                return self._transport.finish(report), None
            except RedisUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("call %s: cannot report its outcome yet (%s); retrying",
                            report.call_id, exc)
                time.sleep(next(pauses))

    def _outcome(
        self, message: CallMessage, started_at: datetime, run_mode: RunMode, ran: tuple
    ) -> dict[str, Any]:
        result, error, output = ran
        return {
            "id": message.id,
            "stage": message.stage,
            "status": (Status.FAILED if error else Status.SUCCEEDED).value,
            "result": result,
            "error": error,
            "output": output,
            "worker": self.worker_name,
            "run_mode": run_mode.value,
            "attempt": message.attempt,
            "started_at": started_at.isoformat(),
            "finished_at": _now().isoformat(),
        }

    def _finish(
        self,
        message: CallMessage,
        queue: str,
        started_at: datetime,
        run_mode: RunMode,
        ran: tuple,
        then_claim_from: list[str] | None = None,
    ) -> tuple[dict[str, Any], Claimed | None]:
        """Report a claimed call's outcome through its job; the outcome, and the next
        call claimed off `then_claim_from` (if given) in the same round trip."""
        outcome = self._outcome(message, started_at, run_mode, ran)
        error = outcome["error"]
        report = FinishReport(
            queue=queue,
            call_id=message.id,
            worker=self.worker_name,
            attempt=message.attempt,
            outcome_json=dumps(outcome),
            succeeded=not error,
            finished_at=datetime.fromisoformat(outcome["finished_at"]),
            exc_info=error["traceback"] or error["message"] if error else "",
            is_child=message.parent_id is not None,
        )
        accepted, claimed = self._report(report, then_claim_from)
        if accepted == JOB_GONE:  # Redis lost the job: the recorder fences the report
            self._transport.report_finish(message.id, report.outcome_json, awaited=True)
        elif not accepted:
            log.warning("call %s: attempt %d finished, but this worker no longer holds it; "
                        "its outcome is dropped", message.id, message.attempt)
        return outcome, claimed
