"""What the control plane does with a call: create and dispatch it, claim it, finish it,
wait for it. The REST views are thin wrappers around this; so is the recorder's
share (it applies workers' reports through the store and announces them here).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import sqlalchemy.exc

from controlplane.store import Store, utcnow
from controlplane.trees import tree_nodes
from sdk.errors import RedisUnavailable
from sdk.settings import Settings
from sdk.transport import StartReport, Transport
from sdk.waiters import Waiters, Watch
from sdk.wire import CallMessage, RunMode, Status, dumps, new_call_id, queue_name

log = logging.getLogger(__name__)

#: How long after finding a call finished in the table its broadcast may still
#: be on its way (it is sent right after the commit) before it counts as lost.
BROADCAST_GRACE_SECONDS = 0.5
#: A parent's columns its children take; they never change once it exists.
LINEAGE = ("id", "root_stage_run_id", "repo_name", "commit_hash")
#: Parents whose lineage a control-plane process keeps in memory.
LINEAGE_CACHE_SIZE = 10_000


class CallNotFound(LookupError):
    """Raised when a named call does not exist."""


class CallConflict(RuntimeError):
    """Raised when a request is valid but the call's state does not allow it."""


class DispatchUnavailable(RuntimeError):
    """Raised when a call was recorded but could not be put on its queue."""


class CallService:
    def __init__(self, store: Store, transport: Transport, waiters: Waiters, settings: Settings):
        self.store = store
        self.transport = transport
        self.waiters = waiters
        self.max_wait = settings.max_wait_seconds
        #: Finished calls whose completion broadcast never reached a waiter here
        #: (each found by reading the table instead); 0 while pub/sub loses nothing.
        self.missed_wakeups = 0
        self._lease = timedelta(seconds=settings.lease_seconds)
        # What a child takes from its parent (id, root, code version) never changes
        # once the parent exists, so a parent making many children is read once.
        self._lineage: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, call_id: str) -> dict[str, Any]:
        record = self.store.get(call_id)
        if record is None:
            raise CallNotFound(f"no call with id {call_id!r}")
        return record

    def create(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a call, then enqueue it. Returns (call, whether it was created now).

        Creating a call whose id exists returns that call when it is the same
        request (a retry), and refuses otherwise. A call created with a
        `run_mode` (inline, local) is recorded as running on the given worker,
        which runs it itself: it is never queued.
        """
        return self.create_many([request])[0]

    def create_many(self, requests: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
        """Create calls in one transaction and one Redis round trip."""
        parents = self._parents(requests)
        now = utcnow()
        records = [self._new_record(request, parents, now) for request in requests]
        try:
            self.store.insert(records)
        except sqlalchemy.exc.IntegrityError:
            if len(requests) > 1:  # some exist (a retried batch): sort them out one by one
                return [self.create(request) for request in requests]
            return [self._existing(records[0], requests[0], now)]
        self._enqueue([record for record in records if record["status"] == Status.PENDING.value], now)
        return [(record, True) for record in records]

    def _existing(
        self, record: dict[str, Any], request: dict[str, Any], now
    ) -> tuple[dict[str, Any], bool]:
        """A create of a call that exists: the same id (a retried request), or the
        same parent and position (a parent that runs again). Returns the call, and
        whether this request started an attempt of it.

        A different request for the same identity is refused. A failed (or
        cancelled) child made by an earlier attempt of its parent runs again, as
        its next attempt; any
        other existing call is returned as it is (a succeeded child's result is
        not computed again; a running one is awaited).
        """
        existing = self.store.get(record["id"])
        if existing is None and record["parent_stage_run_id"] is not None:
            existing = self.store.child_at(record["parent_stage_run_id"], record["position"])
        if existing is None:
            raise CallConflict(f"call {record['id']!r} conflicts with an existing call")
        self._check_same(existing, request)
        newer_parent = (record["parent_attempt"] or 0) > (existing["parent_attempt"] or 0)
        ended = existing["status"] in (Status.FAILED.value, Status.CANCELLED.value)
        if ended and newer_parent:
            rerun = self.store.rerun(existing, record)
            if rerun is not None:
                self._enqueue([rerun] if rerun["status"] == Status.PENDING.value else [], now)
                return rerun, True
            existing = self.get(existing["id"])  # another request re-ran it first
        return existing, False

    def _enqueue(self, records: list[dict[str, Any]], now) -> None:
        if not records:  # calls run in place by their caller are never queued
            return
        try:
            self.transport.enqueue([CallMessage.of_record(record) for record in records], now)
        except RedisUnavailable as exc:
            # Accepted all the same: the table has them, and they are queued once
            # Redis answers again (controlplane.recovery).
            log.warning("%d call(s) recorded but not queued yet: %s", len(records), exc)

    def retry(self, call_id: str) -> dict[str, Any]:
        """Run a failed or cancelled call again, by hand, as its next attempt."""
        record = self.get(call_id)
        if record["status"] not in (Status.FAILED.value, Status.CANCELLED.value):
            raise CallConflict(
                f"call {call_id} is {record['status']}: only a failed or cancelled call can be "
                "retried"
            )
        fresh = {"status": Status.PENDING.value, "parent_attempt": record["parent_attempt"],
                 "worker": None, "run_mode": None, "started_at": None, "lease_expires_at": None}
        rerun = self.store.rerun(record, fresh)
        if rerun is None:
            raise CallConflict(f"call {call_id} changed while it was being retried; try again")
        self._enqueue([rerun], utcnow())
        return rerun

    def cancel(self, call_id: str) -> list[dict[str, Any]]:
        """Cancel a call and every unfinished call under it: queued ones leave their
        queue, running ones are asked to stop, waiters get a cancellation error.
        Returns the calls it cancelled (as they were)."""
        record = self.get(call_id)
        rows = self.store.tree(record["root_stage_run_id"])
        subtree = [node["id"] for node in tree_nodes(rows, call_id)]
        error = {"type": "callplane.Cancelled", "message": f"cancelled with call {call_id}",
                 "traceback": ""}
        cancelled = self.store.cancel(subtree, error)
        if cancelled:
            outcome = dumps({"status": Status.CANCELLED.value, "error": error, "result": None,
                             "output": ""})
            try:
                self.transport.cancel([(c["queue"], c["id"]) for c in cancelled], outcome, utcnow())
            except RedisUnavailable as exc:
                # The table has it: workers' claims and reports of these calls are refused.
                log.warning("cancelled %d call(s), but Redis is away: %s", len(cancelled), exc)
        return cancelled

    def _new_record(
        self, request: dict[str, Any], parents: dict[str, dict[str, Any]], now
    ) -> dict[str, Any]:
        call_id = request.get("id") or _keyed_id(request.get("idempotency_key")) or new_call_id()
        parent = parents.get(request.get("parent_stage_run_id") or "")
        repo_name, commit_hash = request.get("repo_name"), request.get("commit_hash")
        if parent is not None and parent["repo_name"]:
            if repo_name and (repo_name, commit_hash) != (parent["repo_name"], parent["commit_hash"]):
                raise CallConflict(
                    f"a child runs on its parent's code version "
                    f"{parent['repo_name']}@{parent['commit_hash']}, not {repo_name}@{commit_hash}"
                )
            repo_name, commit_hash = parent["repo_name"], parent["commit_hash"]
        run_mode = request.get("run_mode")
        runs_in_place = run_mode is not None
        return {
            "id": call_id,
            "parent_stage_run_id": parent["id"] if parent else None,
            "root_stage_run_id": parent["root_stage_run_id"] if parent else call_id,
            "workflow_run_id": request.get("workflow_run_id"),
            "position": request.get("position"),
            "parent_attempt": request.get("parent_attempt") if parent else None,
            "stage": request["stage"],
            "arguments": request["arguments"],
            "status": (Status.RUNNING if runs_in_place else Status.PENDING).value,
            "queue": queue_name(request["stage"], repo_name, commit_hash),
            "repo_name": repo_name,
            "commit_hash": commit_hash,
            "worker": request.get("worker"),
            "run_mode": run_mode,
            "attempt": 1,
            "max_attempts": request.get("max_attempts", 1),
            "created_at": now,
            "started_at": now if runs_in_place else None,
            # Its worker renews the lease of a call it runs in place; a call run
            # locally has no worker to recover it from.
            "lease_expires_at": now + self._lease if run_mode == RunMode.INLINE.value else None,
        }

    def start(self, call_id: str, worker: str) -> dict[str, Any]:
        """Claim a queued call for `worker`: the same atomic claim the workers use."""
        record = self.get(call_id)
        try:
            claimed = self.transport.claim(record["queue"], call_id, StartReport.now(worker))
        except RedisUnavailable as exc:
            raise DispatchUnavailable(str(exc)) from None
        if claimed is None:
            raise CallConflict(
                f"call {call_id} cannot be started: it is {record['status']} "
                "and not waiting on its queue (another worker claimed it)"
            )
        self.transport.take(record["queue"], call_id)
        # No lease: a worker driving calls over HTTP has no way to renew one.
        self.store.start(call_id, worker, claimed.start.started_at, attempt=record["attempt"])
        return self.get(call_id)

    def finish(self, call_id: str, report: dict[str, Any]) -> dict[str, Any]:
        """Record a result or error for a running call and wake its waiters."""
        record = self.get(call_id)
        outcome = {**report, "finished_at": utcnow().isoformat()}
        if not self.store.finish(call_id, outcome):
            now = self.get(call_id)
            if now["status"] != Status.RUNNING.value:
                raise CallConflict(
                    f"call {call_id} is {now['status']}, not running: "
                    "only a running call can be finished"
                )
            raise CallConflict(
                f"call {call_id} is running as attempt {now['attempt']} on {now['worker']}, not "
                f"attempt {report.get('attempt', now['attempt'])} on "
                f"{report.get('worker', now['worker'])}: a stale attempt cannot finish it"
            )
        finished = self.get(call_id)
        outcome.update(id=call_id, output=finished["output"])
        try:
            self.transport.settle(
                record["queue"], call_id, dumps(outcome), report["status"] == Status.SUCCEEDED.value,
                finished["finished_at"],
            )
        except RedisUnavailable:
            pass  # the table holds the outcome; waiters re-read it on their next check
        return finished

    def wait(self, call_id: str, seconds: float | None) -> dict[str, Any]:
        """The call, once it is finished or after `seconds` (capped by max_wait)."""
        if seconds:
            finished = self.finished([call_id], seconds, every=True)
            if finished:
                return finished[0]
        return self.get(call_id)

    def create_and_wait(
        self, request: dict[str, Any], seconds: float
    ) -> tuple[dict[str, Any], bool]:
        """create(), then wait up to `seconds` for the call to finish.

        The wait is registered before the call is queued, so its completion
        cannot be missed, and a call created just now needs no first read.
        """
        request = {**request, "id": request.get("id") or _keyed_id(request.get("idempotency_key"))
                   or new_call_id()}
        request.pop("idempotency_key", None)
        with self.waiters.watching([request["id"]]) as watch:
            record, created = self.create(request)
            if Status(record["status"]).is_terminal:
                return record, created
            deadline = self._deadline(seconds)
            finished = self._await([record["id"]], watch, deadline, True, check_first=not created)
        return (finished[0] if finished else self.get(record["id"])), created

    def finished(self, call_ids: list[str], seconds: float, every: bool) -> list[dict[str, Any]]:
        """Those of `call_ids` that have finished, once at least one has (with
        `every`: all have), or after `seconds` (capped by max_wait)."""
        with self.waiters.watching(call_ids) as watch:
            return self._await(call_ids, watch, self._deadline(seconds), every)

    def _await(
        self, call_ids: list[str], watch: Watch, deadline: float, every: bool, check_first=True
    ) -> list[dict[str, Any]]:
        """Wait on `watch` until one (or `every`) of `call_ids` finished or the deadline.

        The completion broadcast this process hears is sent only once the table
        has recorded the completion, so a woken call needs no read; the table is
        read first and after each re-check interval (a broadcast may be lost),
        and the finished rows once at the end. At the deadline the table is read
        once more, so nothing finished is left out of the answer; a call found
        finished then whose broadcast does not come within BROADCAST_GRACE_SECONDS
        was a lost wake-up, and is logged as one.
        """
        pending = set(call_ids)
        done: set[str] = set()
        to_check = set(pending) if check_first else set()
        while True:
            if to_check:
                statuses = self.store.statuses(to_check)
                unknown = to_check - statuses.keys()
                if unknown:
                    raise CallNotFound(f"no call with id(s) {sorted(unknown)[:5]}")
                done |= {i for i, status in statuses.items() if Status(status).is_terminal}
                pending -= done
            if not pending or (done and not every):
                break
            woken = watch.next(deadline)
            if woken == set():
                done |= self._found_at_deadline(pending, watch)
                break
            if woken is None:
                to_check = set(pending)
            else:
                done |= woken & pending
                pending -= woken
                to_check = set()
        rows = self.store.get_many(done) if done else {}
        return [rows[call_id] for call_id in call_ids if call_id in rows]

    def _found_at_deadline(self, pending: set[str], watch: Watch) -> set[str]:
        """Those of `pending` that the table says have finished, at a wait's deadline."""
        finished = {i for i, s in self.store.statuses(pending).items() if Status(s).is_terminal}
        unheard = set(finished)
        grace_ends = time.monotonic() + BROADCAST_GRACE_SECONDS
        while unheard:
            woken = watch.next(grace_ends)
            if woken == set():
                break
            unheard -= woken or set()
        if unheard:
            self.missed_wakeups += len(unheard)
            log.warning("missed wake-up: %d finished call(s) were never announced to this "
                        "waiter (e.g. %s); found by reading the table", len(unheard), min(unheard))
        return finished

    def _deadline(self, seconds: float) -> float:
        return time.monotonic() + min(seconds, self.max_wait)

    def earlier_attempts(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        return self.store.attempts(record["id"]) if record["attempt"] > 1 else []

    def waiting_on(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The unfinished calls that a running call last said it waits on."""
        if record["status"] != Status.RUNNING.value:
            return []
        try:
            noted = self.transport.waiting_on(record["id"])
        except RedisUnavailable:
            return []
        rows = self.store.get_many(json.loads(noted)) if noted else {}
        return [
            {key: row[key] for key in ("id", "stage", "status", "worker")}
            for row in rows.values()
            if not Status(row["status"]).is_terminal
        ]

    def _parents(self, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        wanted = {r["parent_stage_run_id"] for r in requests if r.get("parent_stage_run_id")}
        parents = {i: self._lineage[i] for i in wanted if i in self._lineage}
        unknown = wanted - parents.keys()
        if unknown:
            for call_id, row in self.store.get_many(unknown).items():
                parents[call_id] = {key: row[key] for key in LINEAGE}
                self._lineage[call_id] = parents[call_id]
            while len(self._lineage) > LINEAGE_CACHE_SIZE:
                self._lineage.popitem(last=False)
        missing = wanted - parents.keys()
        if missing:
            raise CallNotFound(f"parent call {min(missing)!r} does not exist")
        return parents

    @staticmethod
    def _check_same(existing: dict[str, Any], request: dict[str, Any]) -> None:
        """Refuse a request that names an existing call's identity but is another call."""
        parent = request.get("parent_stage_run_id") or None
        if existing["stage"] != request["stage"] or existing["parent_stage_run_id"] != parent:
            raise CallConflict(f"a different call with id {existing['id']!r} already exists")
        if existing["arguments"] != request["arguments"]:
            where = (f"child {existing['position']} of call {parent}" if parent
                     else f"call {existing['id']}")
            raise CallConflict(
                f"{where} was made as {existing['stage']} with other arguments before: a stage "
                "that runs again must make the same calls in the same order (keep what varies "
                "between runs, like the time or random numbers, out of its calls' arguments)"
            )


_IDEMPOTENCY_KEYS = uuid.UUID("2f6a4c1e-8d0b-4b7e-a5f3-0c9e7d1b6a52")


def _keyed_id(key: str | None) -> str | None:
    """The id of the call an idempotency key names: the same key, the same call."""
    return uuid.uuid5(_IDEMPOTENCY_KEYS, key).hex if key else None
