"""What the control plane does with a call: create and dispatch it, claim it, finish it,
wait for it. The REST views are thin wrappers around this; so is the recorder's
share (it applies workers' reports through the store and announces them here).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc

from controlplane.store import Store, utcnow
from sdk.errors import RedisUnavailable
from sdk.transport import Transport
from sdk.waiters import Waiters
from sdk.wire import CallMessage, Status, dumps, new_call_id, queue_name


class CallNotFound(LookupError):
    """Raised when a named call does not exist."""


class CallConflict(RuntimeError):
    """Raised when a request is valid but the call's state does not allow it."""


class DispatchUnavailable(RuntimeError):
    """Raised when a call was recorded but could not be put on its queue."""


class CallService:
    def __init__(self, store: Store, transport: Transport, waiters: Waiters, max_wait: float):
        self.store = store
        self.transport = transport
        self.waiters = waiters
        self.max_wait = max_wait

    def get(self, call_id: str) -> dict[str, Any]:
        record = self.store.get(call_id)
        if record is None:
            raise CallNotFound(f"no call with id {call_id!r}")
        return record

    def create(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a call, then enqueue it. Returns (call, whether it was created now).

        Creating a call whose id exists returns that call when it is the same
        request (a retry), and refuses otherwise.
        """
        call_id = request.get("id") or new_call_id()
        parent = self._parent(request)
        repo_name, commit_hash = request.get("repo_name"), request.get("commit_hash")
        if parent is not None and parent["repo_name"]:
            if repo_name and (repo_name, commit_hash) != (parent["repo_name"], parent["commit_hash"]):
                raise CallConflict(
                    f"a child runs on its parent's code version "
                    f"{parent['repo_name']}@{parent['commit_hash']}, not {repo_name}@{commit_hash}"
                )
            repo_name, commit_hash = parent["repo_name"], parent["commit_hash"]
        now = utcnow()
        record = {
            "id": call_id,
            "parent_stage_run_id": parent["id"] if parent else None,
            "root_stage_run_id": parent["root_stage_run_id"] if parent else call_id,
            "workflow_run_id": request.get("workflow_run_id"),
            "position": request.get("position"),
            "stage": request["stage"],
            "arguments": request["arguments"],
            "status": Status.PENDING.value,
            "queue": queue_name(request["stage"], repo_name, commit_hash),
            "repo_name": repo_name,
            "commit_hash": commit_hash,
            "attempt": 1,
            "max_attempts": 1,
            "created_at": now,
        }
        try:
            self.store.insert(record)
        except sqlalchemy.exc.IntegrityError:
            # The id exists: a retry of the same request gets the call it made.
            return self._same_request(self.get(call_id), request), False
        message = CallMessage(
            id=call_id,
            stage=record["stage"],
            args=record["arguments"]["args"],
            kwargs=record["arguments"]["kwargs"],
            parent_id=record["parent_stage_run_id"],
            root_id=record["root_stage_run_id"],
            repo_name=repo_name,
            commit_hash=commit_hash,
        )
        try:
            self.transport.enqueue(message, now)
        except RedisUnavailable as exc:
            self.store.finish(
                call_id,
                {"status": Status.FAILED.value, "error": _error("DispatchError", str(exc))},
                reported_by_worker=True,
            )
            raise DispatchUnavailable(
                f"call {call_id} was recorded but could not be queued: {exc}"
            ) from None
        return record, True

    def start(self, call_id: str, worker: str) -> dict[str, Any]:
        """Claim a queued call for `worker`: the same atomic claim the workers use."""
        record = self.get(call_id)
        started_at = utcnow()
        body = dumps({"worker": worker, "started_at": started_at.isoformat()})
        try:
            claimed = self.transport.claim(record["queue"], call_id, worker, started_at, body)
        except RedisUnavailable as exc:
            raise DispatchUnavailable(str(exc)) from None
        if claimed is None:
            raise CallConflict(
                f"call {call_id} cannot be started: it is {record['status']} "
                "and not waiting on its queue (another worker claimed it)"
            )
        self.transport.take(record["queue"], call_id)
        self.store.start(call_id, worker, started_at)
        return self.get(call_id)

    def finish(self, call_id: str, report: dict[str, Any]) -> dict[str, Any]:
        """Record a result or error for a running call and wake its waiters."""
        record = self.get(call_id)
        outcome = {**report, "finished_at": utcnow().isoformat()}
        if not self.store.finish(call_id, outcome):
            raise CallConflict(
                f"call {call_id} is {self.get(call_id)['status']}, not running: "
                "only a running call can be finished"
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
        record = self.get(call_id)
        if not seconds or Status(record["status"]).is_terminal:
            return record

        def finished():
            current = self.store.get(call_id)
            return current if Status(current["status"]).is_terminal else None

        return self.waiters.wait_for(call_id, finished, min(seconds, self.max_wait)) or self.get(
            call_id
        )

    def _parent(self, request: dict[str, Any]) -> dict[str, Any] | None:
        parent_id = request.get("parent_stage_run_id")
        if not parent_id:
            return None
        parent = self.store.get(parent_id)
        if parent is None:
            raise CallNotFound(f"parent call {parent_id!r} does not exist")
        return parent

    @staticmethod
    def _same_request(existing: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        same = existing["stage"] == request["stage"] and existing["parent_stage_run_id"] == (
            request.get("parent_stage_run_id") or None
        )
        if not same:
            raise CallConflict(f"a different call with id {existing['id']!r} already exists")
        return existing


def _error(kind: str, message: str) -> dict[str, str]:
    return {"type": kind, "message": message, "traceback": ""}
