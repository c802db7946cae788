"""Creating calls: the row first, then the queue; and what makes a create safe to
repeat (a call's id, an idempotency key, a child's parent and position)."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from datetime import datetime, timedelta

import msgspec
import sqlalchemy.exc

from controlplane.dispatch import Dispatch
from controlplane.errors import CallConflict, CallNotFound
from controlplane.limits import Limits
from controlplane.metrics import Metrics
from controlplane.reading import CallReading
from controlplane.store import Store, utcnow
from sdk.records import CallRecord, CallRequest
from sdk.wire import RunMode, new_call_id

#: Parents whose lineage a control-plane process keeps in memory.
LINEAGE_CACHE_SIZE = 10_000
_IDEMPOTENCY_KEYS = uuid.UUID("2f6a4c1e-8d0b-4b7e-a5f3-0c9e7d1b6a52")


class Lineage(msgspec.Struct, frozen=True):
    """What a child takes from its parent; it never changes once the parent exists."""

    id: str
    root_stage_run_id: str
    repo_name: str | None
    commit_hash: str | None


def call_id_of(request: CallRequest) -> str:
    """The id a create names: its own, the one its idempotency key stands for (the
    same key, the same call), or a new one."""
    if request.id:
        return request.id
    if request.idempotency_key:
        return uuid.uuid5(_IDEMPOTENCY_KEYS, request.idempotency_key).hex
    return new_call_id()


class CallCreation:
    def __init__(self, store: Store, reading: CallReading, dispatch: Dispatch, lease_seconds: float,
                 limits: Limits | None = None, metrics: Metrics | None = None):
        self._store = store
        self._metrics = metrics
        self._limits = limits
        self._reading = reading
        self._dispatch = dispatch
        self._lease = timedelta(seconds=lease_seconds)
        # A parent making many children is read once.
        self._lineage: OrderedDict[str, Lineage] = OrderedDict()

    def create(self, request: CallRequest) -> tuple[CallRecord, bool]:
        """Record a call, then enqueue it. Returns (call, whether it was created now).

        Creating a call whose id exists returns that call when it is the same
        request (a retry), and refuses otherwise. A call created with a
        `run_mode` (inline, local) is recorded as running on the given worker,
        which runs it itself: it is never queued.
        """
        return self.create_many([request])[0]

    def create_many(self, requests: list[CallRequest]) -> list[tuple[CallRecord, bool]]:
        """Create calls in one transaction and one Redis round trip."""
        parents = self._parents(requests)
        now = utcnow()
        records = [self._new_record(request, parents, now) for request in requests]
        try:
            self._store.insert(records)
        except sqlalchemy.exc.IntegrityError:
            if len(requests) > 1:  # some exist (a retried batch): sort them out one by one
                return [self.create(request) for request in requests]
            return [self._existing(records[0], requests[0])]
        self._dispatch.enqueue(records)
        if self._metrics is not None:
            self._metrics.created(records)
        return [(record, True) for record in records]

    def _existing(self, record: CallRecord, request: CallRequest) -> tuple[CallRecord, bool]:
        """A create of a call that exists: the same id (a retried request), or the
        same parent and position (a parent that runs again). Returns the call, and
        whether this request started an attempt of it.

        A different request for the same identity is refused. A failed (or
        cancelled) child made by an earlier attempt of its parent runs again, as
        its next attempt; any other existing call is returned as it is (a
        succeeded child's result is not computed again; a running one is awaited).
        """
        existing = self._store.get(record.id)
        if existing is None and record.parent_stage_run_id is not None:
            existing = self._store.child_at(record.parent_stage_run_id, record.position)
        if existing is None:
            raise CallConflict(f"call {record.id!r} conflicts with an existing call")
        _check_same(existing, request)
        newer_parent = (record.parent_attempt or 0) > (existing.parent_attempt or 0)
        if existing.status.is_rerunnable and newer_parent:
            rerun = self._store.rerun(existing, record)
            if rerun is not None:
                self._dispatch.enqueue([rerun])
                return rerun, True
            existing = self._reading.get(existing.id)  # another request re-ran it first
        return existing, False

    def _new_record(
        self, request: CallRequest, parents: dict[str, Lineage], now: datetime
    ) -> CallRecord:
        call_id = call_id_of(request)
        parent = parents.get(request.parent_stage_run_id or "")
        repo_name, commit_hash = request.repo_name, request.commit_hash
        if parent is not None and parent.repo_name:
            if repo_name and (repo_name, commit_hash) != (parent.repo_name, parent.commit_hash):
                raise CallConflict(
                    f"a child runs on its parent's code version "
                    f"{parent.repo_name}@{parent.commit_hash}, not {repo_name}@{commit_hash}"
                )
            repo_name, commit_hash = parent.repo_name, parent.commit_hash
        # Its worker renews the lease of a call it runs in place; a call run
        # locally has no worker to recover it from.
        lease_until = now + self._lease if request.run_mode is RunMode.INLINE else None
        root_id = parent.root_stage_run_id if parent else call_id
        gate = (self._limits.gate_of(request)
                if self._limits is not None and request.run_mode is None else None)
        return CallRecord.new(request, call_id, root_id, (repo_name, commit_hash), now, lease_until,
                              gate)

    def _parents(self, requests: list[CallRequest]) -> dict[str, Lineage]:
        wanted = {r.parent_stage_run_id for r in requests if r.parent_stage_run_id}
        parents = {i: self._lineage[i] for i in wanted if i in self._lineage}
        unknown = wanted - parents.keys()
        if unknown:
            for call_id, call in self._store.get_many(unknown).items():
                parents[call_id] = self._lineage[call_id] = Lineage(
                    call.id, call.root_stage_run_id, call.repo_name, call.commit_hash
                )
            while len(self._lineage) > LINEAGE_CACHE_SIZE:
                self._lineage.popitem(last=False)
        missing = wanted - parents.keys()
        if missing:
            raise CallNotFound(f"parent call {min(missing)!r} does not exist")
        return parents


def _check_same(existing: CallRecord, request: CallRequest) -> None:
    """Refuse a request that names an existing call's identity but is another call."""
    parent = request.parent_stage_run_id or None
    if existing.parent_stage_run_id != parent or (existing.stage != request.stage and not parent):
        raise CallConflict(f"a different call with id {existing.id!r} already exists")
    if existing.stage != request.stage:
        raise CallConflict(
            f"position {existing.position} of call {parent} was a call of {existing.stage!r} in "
            f"an earlier run, and is a call of {request.stage!r} now: a stage that runs again "
            "must make the same calls in the same order (side effects belong in child stages)"
        )
    if existing.arguments != request.arguments:
        where = f"child {existing.position} of call {parent}" if parent else f"call {existing.id}"
        raise CallConflict(
            f"{where} was made as {existing.stage} with other arguments before: a stage "
            "that runs again must make the same calls in the same order (keep what varies "
            "between runs, like the time or random numbers, out of its calls' arguments)"
        )
