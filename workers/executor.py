"""Run one call: claim it, run its attempts with the call as context, report the outcome.

Calls popped from a queue and calls a waiting parent takes off the queue to run
itself (so nesting never deadlocks, even on a single worker) go through the same
`process`, and so get the same claim, audit record and report. A call created as
running here (its parent runs it in place) skips the queue and the claim.
The parts: `running` (what runs here, for leases and cancellation), `attempts`
(the retry loop), `isolation` (an attempt in a process of its own) and
`reporting` (outcomes, retries, lost attempts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sdk.context import CallContext, CallFrame
from sdk.decorators import Stage
from sdk.errors import DecodeError, RedisUnavailable
from sdk.limits import StageLimit
from sdk.records import CallMessage, CallRecord, ErrorRecord, Outcome
from sdk.reports import CreatedReport, StartReport
from sdk.transport import Claimed, FinishReport, Transport
from sdk.wire import RunMode, Status, check_result
from workers.attempts import Attempt, AttemptLoop, Ran, now
from workers.isolation import Isolation
from workers.output import captured
from workers.reporting import Reporter
from workers.running import RunningCalls

log = logging.getLogger(__name__)


def run_call(*_args, **_kwargs):
    """The function an RQ job of callplane's names (sdk.records.ENTRY_POINT). Only
    callplane's worker runs these jobs (it checks the name and runs the stage
    itself); a stock RQ worker that picks one up fails it here instead of running
    anything."""
    raise RuntimeError("callplane calls run only on callplane workers (callplane worker ...)")


@dataclass(frozen=True)
class CodeVersion:
    repo_name: str | None
    commit_hash: str | None


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
        """`fresh` builds this executor anew inside a forked process (for isolated
        calls); an executor without one runs everything in its own process."""
        self._transport = transport
        self._stages = stages
        self._context = context
        self.worker_name = worker_name
        self._version = version
        self._isolate_all = isolate
        self._fresh = fresh
        self.running = RunningCalls()
        self._reporter = Reporter(transport)
        self._attempts = AttemptLoop(self.running, self._reporter, worker_name)
        self._isolation = Isolation(self.running, self._reporter, worker_name,
                                    lambda message: fresh().once(message))

    def process(self, queue: str, call_id: str, run_mode: RunMode = RunMode.DISPATCHED) -> Outcome | None:
        """Claim and run one queued call; its outcome, or None if someone else had
        already claimed it (or its process died)."""
        claimed = self.claim(queue, call_id, run_mode)
        if claimed is None:
            return None
        outcome, _next = self.run(claimed)
        return outcome

    def claim(self, queue: str, call_id: str, run_mode: RunMode = RunMode.DISPATCHED) -> Claimed | None:
        """Claim one queued call for this worker; None if someone else had already."""
        claimed = self._transport.queues.claim(queue, call_id, self.start(run_mode))
        if claimed is None:
            log.info("call %s was claimed elsewhere; skipping it", call_id)
        return claimed

    def start(self, run_mode: RunMode = RunMode.DISPATCHED) -> StartReport:
        """How this worker starts a call now."""
        if self._fresh is not None and self._isolate_all:
            run_mode = RunMode.ISOLATED
        return StartReport.now(self.worker_name, run_mode)

    def run(
        self, claimed: Claimed, then_claim_from: list[str] | None = None
    ) -> tuple[Outcome | None, Claimed | None]:
        """Run a claimed call; its outcome (None if its process died), and with
        `then_claim_from`, the next call claimed off those queues in the same
        round trip as this one's finish."""
        started_at, run_mode = claimed.start.started_at, claimed.start.run_mode
        try:
            message = CallMessage.decode(claimed.data)
        except DecodeError as exc:
            log.error("call %s: refusing its job: %s", claimed.call_id, exc)
            refused = Attempt(CallMessage(id=claimed.call_id, stage="?"), started_at,
                              Ran(error=ErrorRecord.of(exc)))
            return self._finish(refused, claimed.queue, run_mode, then_claim_from)
        stage = self._stages.get(message.stage)
        isolated = self._fresh is not None and (self._isolate_all or (stage is not None and stage.isolate))
        once = self._isolation.once if isolated else self._once
        attempt = self._attempts.run(message, started_at, stage, once)
        if attempt.ran is None:
            return None, None
        finished = self._finish(attempt, claimed.queue, RunMode.ISOLATED if isolated else run_mode,
                                then_claim_from)
        if message.gate is not None and stage is not None and stage.limit is not None:
            self._let_in_after(message.gate, stage.limit)
        return finished

    def _let_in_after(self, gate: str, limit: StageLimit) -> None:
        """A call of a limited stage ended here: its gate lets the next one in (if
        Redis is away, the clock's look at the gate does, later)."""
        try:
            self._transport.gates.admit(gate, limit)
        except RedisUnavailable as exc:
            log.warning("could not let the next call of %s in: %s", gate, exc)

    def run_in_place(self, record: CallRecord, created: CreatedReport | None = None) -> Outcome:
        """Run a call that was created as running here (never queued); its outcome.
        `created`: this worker created it, and its finish carries its creation."""
        attempt = self._attempts.run(record.message(), record.started_at,
                                     self._stages.get(record.stage), self._once)
        outcome = self._outcome(attempt, RunMode.INLINE)
        self._reporter.in_place(outcome, created)
        return outcome

    def once(self, message: CallMessage) -> Ran:
        """One attempt of a call in this process (what an isolated call's forked
        process runs)."""
        return self._once(message, self._stages.get(message.stage))

    def _once(self, message: CallMessage, stage: Stage | None) -> Ran:
        frame = CallFrame(
            id=message.id,
            stage=message.stage,
            root_id=message.root_id or message.id,
            repo_name=self._version.repo_name,
            commit_hash=self._version.commit_hash,
            attempt=message.attempt,
            resumed=message.resumed,
        )
        with self._context.entered(frame):
            try:
                with self.running.in_stage_code():
                    if stage is None:
                        raise LookupError(
                            f"this worker's workflow file registers no stage {message.stage!r}; "
                            f"it has {sorted(self._stages)}"
                        )
                    result = stage.fn(*message.args, **message.kwargs)
                    check_result(message.stage, result)
                return Ran(result=result, output=captured(frame.output))
            except Exception as exc:  # noqa: BLE001 - any stage error is the call's outcome
                retryable = stage is not None and stage.retry.retries_after(exc, message.attempt)
                return Ran(error=ErrorRecord.of(exc), output=captured(frame.output),
                           retryable=retryable)

    def _outcome(self, attempt: Attempt, run_mode: RunMode | None) -> Outcome:
        message, ran = attempt.message, attempt.ran
        return Outcome(
            id=message.id,
            stage=message.stage,
            status=Status.FAILED if ran.error else Status.SUCCEEDED,
            result=ran.result,
            error=ran.error,
            output=ran.output,
            worker=self.worker_name,
            run_mode=run_mode,
            attempt=message.attempt,
            started_at=attempt.started_at,
            finished_at=now(),
        )

    def _finish(
        self,
        attempt: Attempt,
        queue: str,
        run_mode: RunMode | None,
        then_claim_from: list[str] | None = None,
    ) -> tuple[Outcome, Claimed | None]:
        """Report a claimed call's outcome through its job; the outcome, and the next
        call claimed off `then_claim_from` (if given) in the same round trip."""
        outcome = self._outcome(attempt, run_mode)
        report = FinishReport.of(queue, outcome, is_child=attempt.message.parent_id is not None)
        return outcome, self._reporter.finish(report, then_claim_from, self.start)
