"""A call tree as a list of nodes, parent before children, and as terminal lines.

One read gives every call of a run (stage_runs.root_stage_run_id is indexed);
the tree under any call of it is cut from that list here, so a tree of
thousands of calls costs one query, not one per node.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from sdk.records import CallRecord, ErrorRecord
from sdk.wire import RunMode, Status

#: How much of an error message a node carries (the whole error is on the call).
ERROR_SUMMARY_CHARS = 200


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

    @classmethod
    def of(cls, call: CallRecord, depth: int) -> TreeNode:
        started, finished = call.started_at, call.finished_at
        return cls(
            id=call.id, stage=call.stage, status=call.status, depth=depth,
            parent_stage_run_id=call.parent_stage_run_id, position=call.position,
            attempt=call.attempt, worker=call.worker, run_mode=call.run_mode,
            created_at=call.created_at, started_at=started, finished_at=finished,
            duration_ms=(round((finished - started).total_seconds() * 1000, 3)
                         if started and finished else None),
            error=summary(call.error),
        )


def tree_nodes(calls: list[CallRecord], call_id: str) -> list[TreeNode]:
    """The calls under `call_id` (itself first), depth-first, children in call order.
    `calls` are the calls of its run."""
    by_id = {call.id: call for call in calls}
    children: dict[str | None, list[CallRecord]] = {}
    for call in calls:
        children.setdefault(call.parent_stage_run_id, []).append(call)
    nodes: list[TreeNode] = []
    stack = [(by_id[call_id], 0)] if call_id in by_id else []
    while stack:
        call, depth = stack.pop()
        nodes.append(TreeNode.of(call, depth))
        below = sorted(children.get(call.id, []), key=lambda c: (c.position is None, c.position or 0))
        stack.extend((child, depth + 1) for child in reversed(below))
    return nodes


def summary(error: ErrorRecord | None) -> str | None:
    """"Type: first line of the message", shortened."""
    if error is None:
        return None
    first_line = (error.message.splitlines() or [""])[0]
    return f"{error.type}: {first_line}"[:ERROR_SUMMARY_CHARS]


def render(nodes: list[TreeNode]) -> list[str]:
    """One line per node, indented by depth: stage, status, attempt, worker, time."""
    lines = []
    for node in nodes:
        took = f" {node.duration_ms:.1f} ms" if node.duration_ms is not None else ""
        attempt = f" attempt {node.attempt}" if node.attempt > 1 else ""
        where = f" on {node.worker} ({node.run_mode})" if node.worker else ""
        failure = f"  {node.error}" if node.error else ""
        lines.append(f"{'  ' * node.depth}{node.stage}  [{node.status}]{attempt}{where}"
                     f"{took}  id={node.id}{failure}")
    return lines
