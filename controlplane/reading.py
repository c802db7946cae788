"""Reading calls as the API shows them: one call with its attempts and what it waits
on, pages of calls and runs, and a call's tree."""

from __future__ import annotations

import json

import msgspec

from controlplane.errors import CallNotFound
from controlplane.store import Store, utcnow
from controlplane.store.reads import COUNT_LIMIT, CallQuery, Page, RunQuery
from controlplane.trees import TreeNode, earlier_of, tree_of
from sdk.errors import RedisUnavailable
from sdk.records import CallDetails, CallRecord, CallSummary
from sdk.transport import Transport
from sdk.waits import WaitingFor
from sdk.wire import Status


class CallReading:
    def __init__(self, store: Store, transport: Transport):
        self._store = store
        self._transport = transport

    def get(self, call_id: str) -> CallRecord:
        record = self._store.get(call_id)
        if record is None:
            raise CallNotFound(f"no call with id {call_id!r}")
        return record

    def details(self, record: CallRecord) -> CallDetails:
        """The call with its earlier attempts and, while it runs, what it waits on."""
        attempts = self._store.attempts(record.id) if record.attempt > 1 else []
        return CallDetails(**msgspec.structs.asdict(record), attempts=attempts,
                           waiting_on=self._waiting_on(record),
                           waiting_for=self.waiting_for(record))

    def waiting_for(self, record: CallRecord) -> WaitingFor | None:
        """A pending call's wait: its delay, or the sleep or event wait it was
        suspended in (its own, or that of a call it ran in place)."""
        now = utcnow()
        if (record.status is not Status.PENDING or record.not_before is None
                or record.not_before <= now):
            return None
        return WaitingFor.of(record.status, record.not_before, self._store.waiting_step(record), now)

    def _waiting_on(self, record: CallRecord) -> list[CallSummary]:
        """The unfinished calls that a running call last said it waits on."""
        if record.status is not Status.RUNNING:
            return []
        try:
            noted = self._transport.jobs.waiting_on(record.id)
        except RedisUnavailable:
            return []
        calls = self._store.get_many(json.loads(noted)) if noted else {}
        return [CallSummary(call.id, call.stage, call.status, call.worker)
                for call in calls.values() if not call.finished]

    def list(self, query: CallQuery, offset: int, limit: int) -> Page:
        """Calls, oldest first, one page, and how many match when that is at most
        COUNT_LIMIT past the page (None: more)."""
        return self._store.list(query, offset, limit, COUNT_LIMIT)

    def runs(self, query: RunQuery, offset: int, limit: int) -> Page:
        """Runs (root calls), newest first, one page, and how many match as `list`
        counts them; a run that waits (delayed, sleeping, waiting for an event)
        says what for."""
        runs, total = self._store.runs(query, offset, limit, COUNT_LIMIT)
        return [self._with_wait(run) for run in runs], total

    def _with_wait(self, record: CallRecord) -> CallRecord:
        waiting_for = self.waiting_for(record)
        if waiting_for is None:
            return record
        return CallDetails(**msgspec.structs.asdict(record), waiting_for=waiting_for)

    def tree(self, call_id: str) -> list[TreeNode]:
        """The call and every call under it, depth-first, with their earlier attempts:
        reading that subtree only (Store.subtree)."""
        subtree = self._store.subtree(call_id)
        if subtree is None:
            raise CallNotFound(f"no call with id {call_id!r}")
        return tree_of(subtree.calls, call_id, earlier_of(subtree.attempts), subtree.steps)

    def run_of(self, call_id: str) -> list[CallRecord]:
        """Every call of the run `call_id` belongs to."""
        return self._store.tree(self.get(call_id).root_stage_run_id)
