"""The shapes that cross process boundaries: call status, the call message, queue names.

Everything a worker takes off a queue is decoded here, in one place, so a
malformed or hostile job is refused with a DecodeError that says what was wrong.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from sdk.errors import DecodeError

#: The dotted name stored as an RQ job's function. A stock RQ worker would import
#: and call it; callplane's worker refuses any job whose function is not this one.
ENTRY_POINT = "workers.executor.run_call"


class Status(str, Enum):
    """Where a call is in its life; the audit table stores the value."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


class RunMode(str, Enum):
    """How a call was run; its audit row says so."""

    #: A worker took it off its queue.
    DISPATCHED = "dispatched"
    #: Its caller ran it in its own worker slot instead of waiting on it (no nested deadlock).
    INLINE = "inline"
    #: A worker ran it in a fresh process of its own.
    ISOLATED = "isolated"
    #: `runner.run(..., local=True)` ran it in the calling process.
    LOCAL = "local"


TERMINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

#: The allowed moves. The store's conditional UPDATEs and the API's 409s both read
#: this table, so "finishing a call that is not running" means the same everywhere.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING, Status.FAILED, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def sources_of(target: Status) -> tuple[str, ...]:
    """The statuses a call may be in for a move to `target` to be legal."""
    return tuple(s.value for s, targets in TRANSITIONS.items() if target in targets)


def new_call_id() -> str:
    return uuid.uuid4().hex


_CHILD_IDS = uuid.UUID("5b0d7c8e-0c1a-4f1e-9d63-6b0f3c2a7e41")


def child_call_id(parent_id: str, position: int) -> str:
    """A child call's id: the same for the same parent and position, so a parent
    that runs again finds the children its earlier attempts made."""
    return uuid.uuid5(_CHILD_IDS, f"{parent_id}/{position}").hex


_QUEUE_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def queue_name(stage: str, repo_name: str | None, commit_hash: str | None) -> str:
    """The queue a call waits on.

    Queues are per stage, so no worker ever pops a stage its workflow file lacks.
    A call that names a code version runs only on workers of that version, so
    each version has its own queues; a call that names none may run on any worker
    that has the stage, through the stage's unversioned queue.
    """
    version = f"{repo_name}@{commit_hash[:12]}" if repo_name and commit_hash else "any"
    return _QUEUE_UNSAFE.sub("_", f"{version}.{stage}")


def dumps(value: Any) -> str:
    """JSON as callplane writes it everywhere: compact, no NaN (other languages choke on it)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class CallMessage:
    """What a worker needs to run one attempt of a call; the argument of the RQ job."""

    id: str
    stage: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    parent_id: str | None = None
    root_id: str | None = None
    repo_name: str | None = None
    commit_hash: str | None = None
    attempt: int = 1

    @property
    def queue(self) -> str:
        return queue_name(self.stage, self.repo_name, self.commit_hash)

    def encode(self) -> str:
        """The RQ job's `data` field: RQ's JSON serializer layout (func, instance, args, kwargs)."""
        return dumps([ENTRY_POINT, None, [asdict(self)], {}])

    @classmethod
    def of_record(cls, record: dict[str, Any]) -> CallMessage:
        """The message of a call as the API returns it (a `stage_runs` row)."""
        return cls(
            id=record["id"],
            stage=record["stage"],
            args=record["arguments"]["args"],
            kwargs=record["arguments"]["kwargs"],
            parent_id=record["parent_stage_run_id"],
            root_id=record["root_stage_run_id"],
            repo_name=record["repo_name"],
            commit_hash=record["commit_hash"],
            attempt=record.get("attempt", 1),
        )

    @classmethod
    def decode(cls, data: str | bytes) -> CallMessage:
        try:
            func, _instance, args, _kwargs = json.loads(data)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"job data is not callplane's JSON job layout: {exc}") from None
        if func != ENTRY_POINT:
            raise DecodeError(f"job function {func!r} is not {ENTRY_POINT!r}; refusing to run it")
        if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict)):
            raise DecodeError("job arguments must be one call message object")
        body = args[0]
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise DecodeError(f"call message has unknown fields: {sorted(unknown)}")
        try:
            message = cls(**body)
        except TypeError as exc:
            raise DecodeError(f"call message is incomplete: {exc}") from None
        if not isinstance(message.id, str) or not isinstance(message.stage, str):
            raise DecodeError("call message id and stage must be strings")
        if not isinstance(message.args, list) or not isinstance(message.kwargs, dict):
            raise DecodeError("call message args must be a list and kwargs an object")
        return message


def check_result(stage: str, value: Any) -> None:
    """Raise TypeError, saying what to return instead, if a stage's result is not JSON."""
    try:
        dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"stage {stage!r} returned a value that is not JSON-serialisable "
            f"({exc}); return lists, dicts, strings, numbers, booleans or None"
        ) from None
