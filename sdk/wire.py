"""The vocabulary every process shares: call statuses and their allowed moves, run
modes, call ids, queue names, and JSON as callplane writes it. The typed records
built from it (a call, an outcome, an error, the job a worker runs) are in
sdk.records.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from enum import Enum
from typing import Any

from sdk.errors import UnrecordableResult


class Status(str, Enum):
    """Where a call is in its life; the audit table stores the value."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    __str__ = str.__str__  # its value, in f-strings and wherever text is wanted
    __hash__ = str.__hash__  # equal to its value, so hashed as its value (sets, dict keys)

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_rerunnable(self) -> bool:
        """Whether the call may run again as its next attempt (by hand, or because
        its parent runs again)."""
        return self in RERUNNABLE_STATUSES


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

    __str__ = str.__str__
    __hash__ = str.__hash__


TERMINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})
#: The ends a call may start over from, as a new attempt that keeps the old one's
#: record; a succeeded call never runs again.
RERUNNABLE_STATUSES = frozenset({Status.FAILED, Status.CANCELLED})

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


#: How deep the JSON of a call's arguments or result may nest. Deeper, parsing or
#: encoding it would exhaust a thread's stack somewhere between the caller, the
#: control plane, its recorder and the databases.
JSON_DEPTH_LIMIT = 100
TOO_DEEP = f"nested more than {JSON_DEPTH_LIMIT} levels deep"


#: What json_problem says of a string with a NUL in it.
HAS_NUL = "a string contains NUL (\\u0000), which callplane does not keep: remove it"


def json_problem(value: Any, text: bool = True, envelope: int = 0) -> str | None:
    """What in parsed JSON callplane cannot keep, if anything: NaN or Infinity,
    nesting past JSON_DEPTH_LIMIT (plus `envelope` levels around the value
    proper; looked at level by level: depth costs no stack), and with `text`, a
    NUL in a string or key (PostgreSQL's text refuses it; a request may not
    carry one, whatever database keeps it)."""
    level = [value]
    for _depth in range(JSON_DEPTH_LIMIT + envelope + 1):
        below: list[Any] = []
        for node in level:
            if isinstance(node, float) and not math.isfinite(node):
                return "NaN and Infinity are not JSON numbers: send a number or null"
            if text and isinstance(node, str) and "\x00" in node:
                return HAS_NUL
            if isinstance(node, dict):
                if text and any("\x00" in key for key in node if isinstance(key, str)):
                    return HAS_NUL
                below.extend(node.values())
            elif isinstance(node, (list, tuple)):
                below.extend(node)
        if not below:
            return None
        level = below
    return TOO_DEEP


def check_result(stage: str, value: Any) -> None:
    """Raise TypeError, saying what to return instead, if a stage's result is not
    JSON; UnrecordableResult (a ValueError) if it nests deeper than callplane keeps."""
    if json_problem(value, text=False) == TOO_DEEP:  # before encoding it, which would recurse as deep
        raise UnrecordableResult(
            f"stage {stage!r} returned a value {TOO_DEEP}; callplane keeps results of up "
            f"to {JSON_DEPTH_LIMIT} levels (return a flatter value)"
        )
    try:
        dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"stage {stage!r} returned a value that is not JSON-serialisable "
            f"({exc}); return lists, dicts, strings, numbers, booleans or None"
        ) from None
