"""The attempts of one call: run it, and run it again in the same slot while its
stage's retry policy says so, each failed attempt reported before the pause
that follows it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from sdk.decorators import Stage
from sdk.errors import CallCancelled
from sdk.records import CallMessage, ErrorRecord
from sdk.reports import RetryReport
from workers.reporting import Reporter
from workers.running import RunningCalls


def now() -> datetime:
    return datetime.now(timezone.utc)


class Ran(msgspec.Struct, frozen=True):
    """What one attempt gave, and whether the stage's policy runs another after it."""

    result: Any = None
    error: ErrorRecord | None = None
    output: str = ""
    retryable: bool = False

    @classmethod
    def cancelled(cls, call_id: str) -> Ran:
        """A cancelled attempt (its report is refused; this is for the log)."""
        return cls(error=ErrorRecord.system(CallCancelled, f"call {call_id} was cancelled"))


class Attempt(msgspec.Struct, frozen=True):
    """The last attempt of a call: its message (which names the attempt), when it
    started, and what it gave (None when the process running it died: it was
    reported lost, and the control plane runs it again or fails it)."""

    message: CallMessage
    started_at: datetime
    ran: Ran | None


#: One attempt of a call, however it runs (here, or in a process of its own).
RunOnce = Callable[[CallMessage, Stage | None], Ran | None]


class AttemptLoop:
    def __init__(self, running: RunningCalls, reporter: Reporter, worker_name: str):
        self._running = running
        self._reporter = reporter
        self._worker = worker_name

    def run(
        self, message: CallMessage, started_at: datetime, stage: Stage | None, once: RunOnce
    ) -> Attempt:
        """Run attempts of a call until one is its outcome: it succeeded, or raised
        what its stage does not retry, or its retries are used up."""
        rng = random.Random()
        try:
            while True:
                self._running.hold(message.id, message.attempt)
                ran = once(message, stage)
                if ran is None or not ran.retryable or self._running.is_cancelled(message.id):
                    return Attempt(message, started_at, ran)
                pause = stage.retry.pause(message.attempt, rng)
                next_start = now() + timedelta(seconds=pause)
                report = RetryReport(self._worker, message.attempt, ran.error, started_at, now(),
                                     next_start)
                if not self._reporter.retry(message.id, report):
                    return Attempt(message, started_at, ran)  # no longer this worker's to retry
                message = msgspec.structs.replace(message, attempt=message.attempt + 1)
                self._running.hold(message.id, message.attempt)
                time.sleep(pause)
                started_at = next_start
                if self._running.is_cancelled(message.id):  # cancelled during the pause
                    return Attempt(message, started_at, Ran.cancelled(message.id))
        finally:
            self._running.release(message.id)
