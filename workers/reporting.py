"""Reporting what a worker's calls did: finishes (through the job, or straight to the
recorder), retries and lost attempts.

A finished outcome is kept and sent until Redis takes it: while Redis is away,
the report is tried again with backoff for up to REPORT_RETRY_SECONDS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sdk.backoff import retry_until
from sdk.errors import RedisUnavailable
from sdk.records import Outcome, to_json
from sdk.reports import CreatedReport, LostReport, RetryReport, StartReport
from sdk.transport import JOB_GONE, Claimed, FinishReport, Transport

log = logging.getLogger(__name__)

#: How long a worker keeps trying to report an outcome while Redis is away.
REPORT_RETRY_SECONDS = 60.0


class Reporter:
    def __init__(self, transport: Transport):
        self._transport = transport

    def finish(
        self,
        report: FinishReport,
        then_claim_from: list[str] | None = None,
        next_start: Callable[[], StartReport] | None = None,
    ) -> Claimed | None:
        """Report a claimed call's outcome through its job; with `then_claim_from`,
        also claim the next call off those queues in the same round trip (started
        as `next_start()` says). Returns that call, if any."""
        queues = self._transport.queues

        def send() -> tuple[int, Claimed | None]:
            if then_claim_from:
                return queues.finish_and_claim_next(report, then_claim_from, next_start())
            return queues.finish(report), None

        def waiting(exc: BaseException) -> None:
            log.warning("call %s: cannot report its outcome yet (%s); retrying",
                        report.outcome.id, exc)

        accepted, claimed = retry_until(send, RedisUnavailable, REPORT_RETRY_SECONDS, waiting)
        outcome = report.outcome
        if accepted == JOB_GONE:  # Redis lost the job: the recorder fences the report
            self._transport.events.report_finish(outcome.id, report.outcome_json, awaited=True)
        elif not accepted:
            log.warning("call %s: attempt %d finished, but this worker no longer holds it; "
                        "its outcome is dropped", outcome.id, outcome.attempt)
        return claimed

    def in_place(self, outcome: Outcome, created: CreatedReport | None = None) -> None:
        """Report a call its caller ran in place (it was never queued; the caller
        has the outcome already), with its creation when its worker created it."""
        self._transport.events.report_finish(outcome.id, to_json(outcome), created=created)

    def retry(self, call_id: str, report: RetryReport) -> bool:
        """Report an attempt that raised and runs again here; False if the attempt
        is no longer this worker's to retry."""
        log.info("call %s: attempt %d raised %s; retrying", call_id, report.attempt,
                 report.error.type)
        return self._transport.events.report_retry(call_id, report)

    def lost(self, call_id: str, report: LostReport) -> None:
        """Report an attempt whose process died: the control plane runs it again or fails it."""
        log.warning("call %s: attempt %d lost: %s", call_id, report.attempt, report.error.message)
        self._transport.events.report_lost(call_id, report)
