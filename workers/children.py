"""How a stage running on a worker makes calls and waits for them.

A child call that its parent would only wait on runs in the parent's own slot,
at once (`inline`): it is recorded as its own call but never queued, so nesting
costs no dispatch and can never deadlock. The first attempt of a parent has no
children yet, so it creates such a child itself, through the event stream the
control plane's recorder writes to the table (no request, no wait): the row
says running within a batch of the recorder, and its finish carries the row
too, so the table has the call before its outcome whatever order they come in.
A later attempt creates its children through the control plane, which answers
with the child an earlier attempt made, if any (see controlplane.creation).

Calls submitted to run in parallel are queued for any worker; when the parent
then waits, it takes those still queued off their queue and runs them itself,
newest first, while idle workers pop the oldest. So a map of any size completes
on a single worker slot and spreads over as many as there are. Waiting goes
through Redis: a child's outcome is in its job as soon as its worker finished it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import msgspec

from sdk.caller import deadline_of, remaining
from sdk.client import ControlPlaneClient
from sdk.context import CallContext, CallFrame
from sdk.errors import (
    CallCancelled,
    ControlPlaneRefused,
    DeterminismError,
    EventTimeout,
    RedisUnavailable,
)
from sdk.records import CallRecord, CallRequest, Outcome
from sdk.reports import CreatedReport
from sdk.transport import Transport
from sdk.waiters import Waiters, Watch
from sdk.waits import EventWaitRequest, SleepRequest, StepRequest, WaitAnswer, timed_out
from sdk.wire import RunMode, Status, dumps
from workers.executor import Executor

R = TypeVar("R", bound=StepRequest)

#: Queued calls offered to one take (newest first); see `_take_one`.
TAKE_WINDOW = 16
#: How long after its due time a delayed call is surely on its queue.
DUE_MARGIN_SECONDS = 0.3
#: How many of the calls it waits on a parent notes for the API to show.
WAITING_SHOWN = 100


def _next_due(calls: Iterable[CallRecord]) -> float | None:
    """When (monotonic) the next of these delayed calls is on its queue: its due
    time, plus a tick of the control plane's clock (controlplane.clock)."""
    now = datetime.now(timezone.utc)
    ahead = [(call.not_before - now).total_seconds() for call in calls
             if call.not_before is not None and call.status is Status.PENDING]
    ahead = [seconds + DUE_MARGIN_SECONDS for seconds in ahead if seconds > -DUE_MARGIN_SECONDS]
    return time.monotonic() + min(ahead) if ahead else None


class Suspended(BaseException):
    """The calls running in a slot gave it back (a durable sleep, a wait for an
    event); they run again from the top at `wake_at` at the latest. A
    BaseException, so a stage's `except Exception` lets it through to the
    worker's loop."""

    def __init__(self, call_id: str, wake_at: str):
        super().__init__(f"call {call_id} waits until {wake_at} at the latest")
        self.wake_at = wake_at


class ChildCaller:
    def __init__(
        self,
        transport: Transport,
        waiters: Waiters,
        client: ControlPlaneClient,
        executor: Executor,
        context: CallContext,
        inline: bool,
        lease_seconds: float,
        suspendable: bool = True,
    ):
        """`suspendable`: a sleep may give the slot back (not in an isolated call's
        own process, whose parent process holds the slot)."""
        self._suspendable = suspendable
        self._transport = transport
        self._waiters = waiters
        self._client = client
        self._executor = executor
        self._context = context
        self._inline = inline
        self._lease = timedelta(seconds=lease_seconds)
        #: Running calls this worker created itself, whose rows the table may not have yet.
        self._created_here: dict[str, CallRecord] = {}

    def _refuse_if_cancelled(self) -> None:
        """A cancelled call makes no new calls (its stage may have caught the
        cancellation and gone on)."""
        parent = self._context.current()
        if parent is not None and self._executor.running.is_cancelled(parent.id):
            raise CallCancelled(f"call {parent.id} was cancelled: it makes no new calls")

    def call(self, request: CallRequest, queued: bool) -> Outcome:
        self._refuse_if_cancelled()
        parent = self._context.current()
        if not self._inline or queued or parent is None or request.delayed:
            return next(self.finished([self._client.create_call(request)], None))
        worker = self._executor.worker_name
        request = msgspec.structs.replace(request, run_mode=RunMode.INLINE, worker=worker)
        if (parent.attempt == 1 and not parent.resumed and request.id and request.repo_name
                and request.commit_hash):
            created = self._create_here(request, parent)
            if created is not None:
                return self._run_created_here(created)
        record, started = self._client.create_attempt(request)
        if started and record.status is Status.RUNNING and record.worker == worker:
            return self._executor.run_in_place(record)
        # It existed: made by an earlier attempt of the parent (or a repeated request).
        return next(self.finished([record], None))

    def _create_here(self, request: CallRequest, parent: CallFrame) -> CreatedReport | None:
        """Create a child of a parent's first attempt as running here, and report its
        creation (with the in-place ancestors whose rows ride along with it); None
        when Redis is away (the control plane creates it then)."""
        now = datetime.now(timezone.utc)
        record = CallRecord.new(request, request.id, parent.root_id,
                                (request.repo_name, request.commit_hash), now, now + self._lease)
        created = CreatedReport([*self._unrecorded_ancestors(record), record])
        try:
            self._transport.events.report_created(created)
        except RedisUnavailable:
            return None
        return created

    def _run_created_here(self, created: CreatedReport) -> Outcome:
        record = created.calls[-1]
        self._created_here[record.id] = record
        try:
            return self._executor.run_in_place(record, created)
        finally:
            del self._created_here[record.id]

    def _unrecorded_ancestors(self, record: CallRecord) -> list[CallRecord]:
        """The in-place calls above `record` that this worker created itself, outermost first."""
        ancestors = []
        parent = self._created_here.get(record.parent_stage_run_id or "")
        while parent is not None:
            ancestors.append(parent)
            parent = self._created_here.get(parent.parent_stage_run_id or "")
        return ancestors[::-1]

    def sleep(self, seconds: float) -> None:
        """A durable sleep: the calls running in this slot give it back and run again
        from the top once `seconds` passed (see WorkflowRunner.sleep); when this is
        that run, the sleep is over and returns."""
        step = self._step()
        if step is None:
            time.sleep(seconds)  # a thread of a stage's own, or an isolated call: no slot here
            return
        call_id, fields = step
        self._ask_wait(call_id, self._client.sleep, SleepRequest(**fields, seconds=seconds))

    def wait_for_event(self, key: str, timeout: float | None) -> Any:
        """Wait for an event sent to `key` (see WorkflowRunner.wait_for_event), giving
        the slot back like a sleep; its payload once it came."""
        step = self._step()
        if step is None:
            raise RuntimeError(
                "runner.wait_for_event() gives the worker slot back while it waits, so it "
                "waits in a stage's own call on a worker, not in a thread the stage started "
                "or an isolated call (a stage with isolate=True or a timeout)")
        call_id, fields = step
        answer = self._ask_wait(call_id, self._client.wait_for_event,
                                EventWaitRequest(**fields, key=key, timeout=timeout))
        if answer.timed_out:
            raise EventTimeout(key, timed_out(key, timeout))
        if answer.cancelled:
            raise CallCancelled(f"the wait for event {key!r} was cancelled")
        return answer.payload

    def _step(self) -> tuple[str, dict[str, Any]] | None:
        """The call waiting and what every wait request says (its worker, attempt,
        position, and the chain of calls in its slot), or None where there is no
        slot to give back (a thread of a stage's own, an isolated call)."""
        self._refuse_if_cancelled()
        parent, chain = self._context.current(), self._context.chain()
        if not self._suspendable or parent is None or not chain or chain[-1] is not parent:
            return None
        return parent.id, {"worker": self._executor.worker_name, "attempt": parent.attempt,
                           "position": parent.next_position(),
                           "chain": [(frame.id, frame.attempt) for frame in chain]}

    @staticmethod
    def _ask_wait(call_id: str, ask: Callable[[str, R], WaitAnswer], request: R) -> WaitAnswer:
        """Ask the control plane about a wait: over (its answer), or this slot's
        calls suspended (Suspended unwinds them)."""
        try:
            answer = ask(call_id, request)
        except ControlPlaneRefused as exc:
            if exc.status == 409 and "in an earlier run" in exc.message:
                raise DeterminismError(exc.message) from None
            raise
        if not answer.done:
            raise Suspended(call_id, answer.wake_at or "")
        return answer

    def submit(self, requests: list[CallRequest]) -> list[CallRecord]:
        self._refuse_if_cancelled()
        return self._client.create_calls(requests)

    def finished(
        self, calls: list[CallRecord], timeout: float | None, every: bool = False
    ) -> Iterator[Outcome]:
        deadline = deadline_of(timeout)
        pending = {call.id: call for call in calls}
        # A caller that waits at all runs queued calls itself (a timeout bounds its
        # waiting, not the run of a call it took); one that only looks does not.
        willing = timeout is None or timeout > 0
        queued = [c for c in calls if c.status is Status.PENDING] if willing else []
        with self._waiters.watching(pending) as watch:
            to_check, ask_table = list(pending), False
            while pending:
                for call_id, outcome in self._outcomes(to_check, ask_table).items():
                    del pending[call_id]
                    yield outcome
                if not pending:
                    return
                if queued:
                    outcome = self._take_one(queued, pending)
                    if outcome is not None:
                        pending.pop(outcome.id, None)
                        yield outcome
                    woken = watch.next(time.monotonic())  # look, don't wait
                    to_check = list(pending) if woken is None else [i for i in woken if i in pending]
                    ask_table = False
                    continue
                woken = self._wait(watch, pending, deadline)
                if woken == set():
                    raise TimeoutError(f"{len(pending)} call(s) still running after {timeout:g} s")
                if woken is None:
                    # A re-check: a broadcast may have been lost, or a change made
                    # only in the table, and calls may be queued again (a lost
                    # attempt, a Redis rebuilt): read the table, offer them all again.
                    to_check, ask_table = list(pending), True
                    queued = list(pending.values()) if willing else []
                else:
                    to_check, ask_table = [i for i in woken if i in pending], False

    def _wait(
        self, watch: Watch, pending: dict[str, CallRecord], deadline: float | None
    ) -> set[str] | None:
        """Block until some of `pending` may have finished (see Watch.next).

        Workers hear only children's completions; a call without a parent (made
        from a thread that is not a call) is awaited through the control plane.
        """
        if all(call.parent_stage_run_id for call in pending.values()):
            due = _next_due(pending.values())
            if due is not None and (deadline is None or due < deadline):
                woken = watch.next(due)  # then look for it on its queue (this slot may be its only one)
                return None if woken == set() else woken
            return watch.next(deadline)
        wait = remaining(deadline, self._waiters.recheck_seconds)
        finished = {record.id for record in self._client.finished_calls(list(pending), wait)}
        if finished:
            return finished
        return set() if deadline is not None and time.monotonic() >= deadline else None

    def _take_one(
        self, queued: list[CallRecord], pending: dict[str, CallRecord]
    ) -> Outcome | None:
        """Take the newest of `queued` still on its queue and run it here; its outcome.

        Offers a window of the newest; if none is queued any more, that window
        is dropped from `queued` (workers pop oldest first, so older ones are
        likely gone too, and each try costs a round trip). When nothing at all
        is left to take, notes what the current call waits on.
        """
        window = []
        while queued and len(window) < TAKE_WINDOW:
            call = queued.pop()
            if call.id in pending:
                window.append(call)
        parent = self._context.current()
        shown = dumps(list(pending)[:WAITING_SHOWN]) if not queued else ""
        taken = self._transport.queues.take_any(
            [(call.queue, call.id) for call in window], parent.id if parent else None, shown
        )
        if taken is None:
            return None
        queued.extend(reversed([call for call in window if call.id != taken]))
        return self._executor.process(pending[taken].queue, taken, RunMode.INLINE)

    def _outcomes(self, call_ids: list[str], ask_table: bool = False) -> dict[str, Outcome]:
        """The outcomes of those of `call_ids` that have finished: from their jobs,
        and from the table for those whose job is gone (expired, never queued,
        lost) or, with `ask_table`, not finished."""
        if not call_ids:
            return {}
        in_redis = self._transport.jobs.outcomes(call_ids)
        finished = {i: outcome for i, outcome in in_redis.items() if outcome is not None}
        unsure = [i for i in call_ids if i not in finished and (ask_table or i not in in_redis)]
        if unsure:
            finished.update((r.id, r.outcome()) for r in self._client.finished_calls(unsure, 0))
        return finished
