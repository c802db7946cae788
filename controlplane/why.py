"""Why a call has not finished: the chain from it down to what holds it up
(GET /api/call/<id>/waits, `callplane calls why ID`, the run page).

Each call in the chain says what it waits for: its place in its queue, its
stage's limit (which calls hold its slots) or rate (until when), its time (a
delay, a sleep, an event's timeout), a backoff before its next attempt, its
worker (since when, until when its lease holds), or the calls it waits on.
Those are grouped by stage and status, and the chain goes on through the first
of each group, so a run of thousands of calls answers in a few queries.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

from controlplane.limits import Limits
from controlplane.reading import CallReading
from controlplane.store import Store, utcnow
from sdk.errors import RedisUnavailable
from sdk.limits import StageLimit, key_of
from sdk.records import CallRecord
from sdk.transport import Transport
from sdk.waits import STEP_STAGES
from sdk.wire import Status

#: How far down the chain is followed.
MAX_DEPTH = 8
#: The ids a group of calls lists.
GROUP_IDS = 10
#: The unfinished children a call's groups are made from, at most.
CHILDREN_READ = 10_000


class Reason(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one call waits for. `kind`: finished, queued, limit, rate, unqueued,
    delay, sleep, event, retrying, running, lost or calls; `text` says it in a line."""

    kind: str
    text: str
    until: datetime | None = None
    since: datetime | None = None
    worker: str | None = None
    queue: str | None = None
    ahead: int | None = None
    key: str | None = None
    #: Held back by a limit: the calls holding its slots.
    holders: list[str] | None = None


class WaitNode(msgspec.Struct, frozen=True):
    """A call (or, with `count` > 1, the first of a group of calls of one stage in
    one status), why it has not finished, and what it waits on."""

    id: str
    stage: str
    status: Status
    reason: Reason
    count: int = 1
    ids: list[str] = msgspec.field(default_factory=list)
    below: list[WaitNode] = msgspec.field(default_factory=list)


def _ago(when: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - when).total_seconds())
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _at(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _from_epoch(seconds: float | None, default: datetime) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds is not None else default


class CallWhy:
    def __init__(self, store: Store, reading: CallReading, transport: Transport, limits: Limits):
        self._store = store
        self._reading = reading
        self._transport = transport
        self._limits = limits

    def explain(self, call_id: str) -> WaitNode:
        """The chain from the call down to what holds it up (CallNotFound if none)."""
        return self._node(self._reading.get(call_id), utcnow(), MAX_DEPTH)

    def _node(self, call: CallRecord, now: datetime, depth: int, count: int = 1,
              ids: list[str] | None = None) -> WaitNode:
        below: list[WaitNode] = []
        if call.status is Status.RUNNING and depth > 0:
            below = self._groups(call, now, depth - 1)
        reason = self._reason(call, now, sum(group.count for group in below))
        return WaitNode(call.id, call.stage, call.status, reason, count, ids or [], below)

    def _reason(self, call: CallRecord, now: datetime, waits_on: int) -> Reason:
        if call.finished:
            return Reason("finished", f"{call.status} at {_at(call.finished_at or now)}")
        if call.status is Status.PENDING:
            return self._pending(call, now)
        worker, since = call.worker or "?", call.started_at or now
        if call.started_at is not None and call.started_at > now:
            return Reason("retrying", f"attempt {call.attempt} starts after a backoff, at "
                          f"{_at(call.started_at)}, on {worker}", until=call.started_at,
                          worker=worker)
        if call.lease_expires_at is not None and call.lease_expires_at < now:
            return Reason("lost", f"its worker {worker} stopped renewing its lease "
                          f"{_ago(call.lease_expires_at, now)} ago: recovery gives attempt "
                          f"{call.attempt} up and runs it again", since=call.lease_expires_at,
                          worker=worker)
        running = f"running on {worker} for {_ago(since, now)}"
        if call.lease_expires_at is not None:
            running += f" (lease renewed to {_at(call.lease_expires_at)})"
        if waits_on:
            return Reason("calls", f"{running}, waits on {waits_on} call(s)", since=since,
                          worker=worker)
        return Reason("running", running, since=since, worker=worker)

    def _pending(self, call: CallRecord, now: datetime) -> Reason:
        waiting_for = self._reading.waiting_for(call)
        if waiting_for is not None and waiting_for.kind == "event":
            until = f" until {_at(waiting_for.until)}" if waiting_for.until else ""
            return Reason("event", f"waits for event {waiting_for.key}{until}",
                          until=waiting_for.until, key=waiting_for.key)
        if waiting_for is not None:
            what = "sleeps" if waiting_for.kind == "sleep" else "is delayed"
            return Reason(waiting_for.kind, f"{what} until {_at(waiting_for.until or now)}",
                          until=waiting_for.until)
        try:
            status, ahead = self._transport.jobs.standing(call.queue, call.id)
        except RedisUnavailable:
            return Reason("unqueued", "Redis does not answer: queued again once it does",
                          queue=call.queue)
        if status == "queued" and ahead is not None:
            return Reason("queued", f"queued on {call.queue}, {ahead} call(s) ahead",
                          queue=call.queue, ahead=ahead)
        if status == "deferred" and call.gate is not None:
            return self._held_back(call, call.gate, now)
        if status == "scheduled":
            return Reason("delay", "due: the clock moves it to its queue within a moment",
                          queue=call.queue)
        return Reason("unqueued", "not on its queue (Redis lost it): recovery queues it again "
                      "within a lease", queue=call.queue)

    def _held_back(self, call: CallRecord, gate: str, now: datetime) -> Reason:
        """A call its stage's limit holds back: who holds the slots, or until when
        the rate allows no start."""
        limit = self._limits.of(call.stage) or StageLimit(call.stage)
        standing = self._transport.gates.standing([gate], limit.rate_seconds)[0]
        value = key_of(gate)
        per = f" for {limit.key}={value}" if value is not None else ""
        if limit.concurrency is not None and len(standing.holders) >= limit.concurrency:
            holders = self._store.get_many(standing.holders)
            since = min((h.started_at or h.created_at or now for h in holders.values()), default=now)
            shown = ", ".join(f"{h.id} on {h.worker}" if h.worker else h.id
                              for h in list(holders.values())[:3])
            return Reason("limit", f"held back by its limit ({limit.describe()}): "
                          f"{len(standing.holders)} of {limit.concurrency} slots{per} held by "
                          f"{shown} for {_ago(since, now)}", since=since, holders=standing.holders)
        until = _from_epoch(standing.next_look, now)
        if limit.rate_count is not None and until > now:
            return Reason("rate", f"held back by its rate ({limit.rate_count} per "
                          f"{limit.rate_seconds:g} s{per}): its next start at {_at(until)}",
                          until=until)
        return Reason("limit", f"at its limit's gate ({limit.describe()}), with "
                      f"{standing.held} call(s): let in within a moment")

    def _groups(self, call: CallRecord, now: datetime, depth: int) -> list[WaitNode]:
        """The call's unfinished children (not its own waits), by stage and status,
        each told through its first."""
        groups: dict[tuple[str, Status], list[str]] = {}
        for child_id, stage, status in self._store.unfinished_children(call.id, CHILDREN_READ):
            if stage not in STEP_STAGES:
                groups.setdefault((stage, status), []).append(child_id)
        firsts = self._store.get_many(ids[0] for ids in groups.values())
        return [self._node(firsts[ids[0]], now, depth, len(ids), ids[:GROUP_IDS])
                for ids in groups.values() if ids[0] in firsts]


def render(node: WaitNode, depth: int = 0) -> list[str]:
    """The chain as lines: "stage ×N [status] why", indented by depth."""
    many = f" ×{node.count}" if node.count > 1 else ""
    which = f"the first: {node.id}" if node.count > 1 else node.id
    lines = [f"{'  ' * depth}{node.stage}{many} [{node.status}] {node.reason.text} ({which})"]
    for child in node.below:
        lines += render(child, depth + 1)
    return lines
