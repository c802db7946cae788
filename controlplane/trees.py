"""A call tree as a list of nodes, parent before children, and as terminal lines.

One read gives every call of a run (stage_runs.root_stage_run_id is indexed);
the tree under any call of it is cut from that list here, so a tree of
thousands of calls costs one query, not one per node.
"""

from __future__ import annotations

from typing import Any

#: What a node keeps of a call's row.
NODE_FIELDS = ("id", "parent_stage_run_id", "position", "stage", "status", "attempt", "worker",
               "run_mode", "created_at", "started_at", "finished_at")
#: How much of an error message a node carries (the whole error is on the call).
ERROR_SUMMARY_CHARS = 200


def tree_nodes(rows: list[dict[str, Any]], call_id: str) -> list[dict[str, Any]]:
    """The calls under `call_id` (itself first), depth-first, children in call order.

    `rows` are the rows of its run; each node has `depth` (0 for `call_id`),
    `duration_ms` once it finished, and `error` as "Type: first line of message".
    """
    by_id = {row["id"]: row for row in rows}
    children: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        children.setdefault(row["parent_stage_run_id"], []).append(row)
    nodes: list[dict[str, Any]] = []
    stack = [(by_id[call_id], 0)] if call_id in by_id else []
    while stack:
        row, depth = stack.pop()
        nodes.append(_node(row, depth))
        below = sorted(children.get(row["id"], []), key=lambda r: (r["position"] is None, r["position"] or 0))
        stack.extend((child, depth + 1) for child in reversed(below))
    return nodes


def _node(row: dict[str, Any], depth: int) -> dict[str, Any]:
    node = {field: row[field] for field in NODE_FIELDS}
    node["depth"] = depth
    started, finished = row["started_at"], row["finished_at"]
    node["duration_ms"] = (
        round((finished - started).total_seconds() * 1000, 3) if started and finished else None
    )
    node["error"] = _summary(row.get("error"))
    return node


def _summary(error: dict[str, Any] | None) -> str | None:
    """"Type: first line of the message", shortened."""
    if not error:
        return None
    first_line = (str(error.get("message") or "").splitlines() or [""])[0]
    return f"{error.get('type', 'Error')}: {first_line}"[:ERROR_SUMMARY_CHARS]


def render(nodes: list[dict[str, Any]]) -> list[str]:
    """One line per node, indented by depth: stage, status, attempt, worker, time."""
    lines = []
    for node in nodes:
        took = f" {node['duration_ms']:.1f} ms" if node["duration_ms"] is not None else ""
        attempt = f" attempt {node['attempt']}" if node["attempt"] and node["attempt"] > 1 else ""
        where = f" on {node['worker']} ({node['run_mode']})" if node["worker"] else ""
        failure = f"  {node['error']}" if node["error"] else ""
        lines.append(f"{'  ' * node['depth']}{node['stage']}  [{node['status']}]{attempt}{where}"
                     f"{took}  id={node['id']}{failure}")
    return lines
