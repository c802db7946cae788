"""A call tree as a list of nodes, parent before children, and as terminal lines.

One read gives every call of a run (stage_runs.root_stage_run_id is indexed) and
one more their earlier attempts; the tree under any call of it is cut from that
list here, so a tree of thousands of calls costs two queries, not one per node.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import msgspec

from sdk.records import Arguments, AttemptRecord, CallRecord, ErrorRecord, json_text
from sdk.waits import STEP_STAGES, WaitingFor
from sdk.wire import RunMode, Status

#: How much of an error message a node carries (the whole error is on the call).
ERROR_SUMMARY_CHARS = 200
#: How much of its arguments a node shows (the whole arguments are on the call).
ARGUMENTS_PREVIEW_CHARS = 80


class AttemptBar(msgspec.Struct, frozen=True):
    """An earlier attempt of a call, as a timeline draws it: its own bar."""

    attempt: int
    status: str
    worker: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TreeNode(msgspec.Struct, frozen=True):
    """A call in a tree: what a tree view shows of it."""

    id: str
    stage: str
    status: Status
    depth: int
    parent_stage_run_id: str | None = None
    position: int | None = None
    attempt: int = 1
    worker: str | None = None
    run_mode: RunMode | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Once it finished.
    duration_ms: float | None = None
    #: "Type: first line of the message".
    error: str | None = None
    #: "(1, 'x', key=2)", shortened.
    arguments: str | None = None
    #: The attempts before this one, first first.
    earlier_attempts: list[AttemptBar] = msgspec.field(default_factory=list)
    #: A delayed call: no worker starts it before then.
    not_before: datetime | None = None
    #: While it waits: what for (its delay, a sleep, an event) and until when.
    waiting_for: WaitingFor | None = None

    @classmethod
    def of(cls, call: CallRecord, depth: int, earlier: list[AttemptBar],
           waiting_for: WaitingFor | None = None) -> TreeNode:
        started, finished = call.started_at, call.finished_at
        return cls(
            id=call.id, stage=call.stage, status=call.status, depth=depth,
            parent_stage_run_id=call.parent_stage_run_id, position=call.position,
            attempt=call.attempt, worker=call.worker, run_mode=call.run_mode,
            created_at=call.created_at, started_at=started, finished_at=finished,
            duration_ms=(round((finished - started).total_seconds() * 1000, 3)
                         if started and finished else None),
            error=summary(call.error), arguments=preview(call.arguments), earlier_attempts=earlier,
            not_before=call.not_before, waiting_for=waiting_for,
        )


def tree_nodes(calls: list[CallRecord], call_id: str,
               attempts: Iterable[AttemptRecord] = ()) -> list[TreeNode]:
    """The calls under `call_id` (itself first), depth-first, children in call order.
    `calls` are the calls of its run, `attempts` their earlier attempts."""
    by_id = {call.id: call for call in calls}
    children: dict[str | None, list[CallRecord]] = {}
    for call in calls:
        children.setdefault(call.parent_stage_run_id, []).append(call)
    earlier: dict[str, list[AttemptBar]] = {}
    for attempt in attempts:
        earlier.setdefault(attempt.call_id, []).append(AttemptBar(
            attempt.attempt, attempt.status, attempt.worker, attempt.started_at, attempt.finished_at))
    nodes: list[TreeNode] = []
    stack = [(by_id[call_id], 0)] if call_id in by_id else []
    now = datetime.now(timezone.utc)
    while stack:
        call, depth = stack.pop()
        waiting_for = WaitingFor.of(call.status, call.not_before, _step(call, children), now)
        nodes.append(TreeNode.of(call, depth, earlier.get(call.id, []), waiting_for))
        below = sorted(children.get(call.id, []), key=lambda c: (c.position is None, c.position or 0))
        stack.extend((child, depth + 1) for child in reversed(below))
    return nodes


def _step(call: CallRecord, children: dict[str | None, list[CallRecord]]) -> CallRecord | None:
    """The running sleep or event wait a suspended call waits in: its own, or that of
    the call it ran in place, suspended with it until the same time (as
    Reads.waiting_step finds it)."""
    if call.status is not Status.PENDING or call.not_before is None:
        return None
    for _ in range(len(children) + 1):
        below = children.get(call.id, ())
        step = next((c for c in below if c.stage in STEP_STAGES and c.status is Status.RUNNING), None)
        if step is not None:
            return step
        chained = next((c for c in below if c.status is Status.PENDING
                        and c.not_before == call.not_before), None)
        if chained is None:
            return None
        call = chained
    return None


def preview(arguments: Arguments) -> str:
    """The arguments as a call writes them, "(1, "x", key=2)", shortened with "…"."""
    values = [json_text(value) for value in arguments.args]
    values += [f"{name}={json_text(value)}" for name, value in arguments.kwargs.items()]
    text = f"({', '.join(values)})"
    return text if len(text) <= ARGUMENTS_PREVIEW_CHARS else text[:ARGUMENTS_PREVIEW_CHARS - 1] + "…"


def summary(error: ErrorRecord | None) -> str | None:
    """"Type: first line of the message", shortened."""
    if error is None:
        return None
    first_line = (error.message.splitlines() or [""])[0]
    return f"{error.type}: {first_line}"[:ERROR_SUMMARY_CHARS]


def waiting(waiting_for: WaitingFor | None) -> str:
    """" sleeping until T", " waiting for event K until T", " due T", or nothing."""
    if waiting_for is None:
        return ""
    when = waiting_for.until.isoformat(timespec="seconds") if waiting_for.until else None
    if waiting_for.kind == "event":
        return f" waiting for event {waiting_for.key}" + (f" until {when}" if when else "")
    return f" {'sleeping until' if waiting_for.kind == 'sleep' else 'due'} {when}"


def render(nodes: list[TreeNode]) -> list[str]:
    """One line per node, indented by depth: stage, status, attempt, worker, time."""
    lines = []
    for node in nodes:
        took = f" {node.duration_ms:.1f} ms" if node.duration_ms is not None else ""
        attempt = f" attempt {node.attempt}" if node.attempt > 1 else ""
        where = f" on {node.worker} ({node.run_mode})" if node.worker else ""
        failure = f"  {node.error}" if node.error else ""
        lines.append(f"{'  ' * node.depth}{node.stage}  [{node.status}]{attempt}{where}"
                     f"{took}{waiting(node.waiting_for)}  id={node.id}{failure}")
    return lines
