"""A call tree as a list of nodes, parent before children, and as terminal lines.

The API reads a tree's nodes straight from the table (controlplane.store.reads
`subtree`): what a node shows of a call, its times already ISO 8601 text and its
duration computed by the database, since a tree of 10,000 calls must answer in
tens of milliseconds and parsing and writing back 30,000 datetimes alone took
25 ms. tree_of then puts the nodes in order, depth-first, and fills in what
depends on the others (depth, earlier attempts, what a waiting call waits
for); msgspec encodes them (tree_json). Calls read as CallRecords make the same
nodes (tree_nodes), for the CLI's cancel and the demo.
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
_ENCODER = msgspec.json.Encoder()


class AttemptBar(msgspec.Struct, frozen=True, gc=False):
    """An earlier attempt of a call, as a timeline draws it: its own bar."""

    attempt: int
    status: str
    worker: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class Waiting(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """What a pending call waits for (sdk.waits.WaitingFor), its time as text."""

    kind: str
    until: str | None
    key: str | None = None


class TreeNode(msgspec.Struct, gc=False):
    """A call in a tree: what a tree view shows of it (times as ISO 8601 text).
    Made from its row, then placed by tree_of, which sets its depth, earlier
    attempts and wait (a node is never shared)."""

    id: str
    stage: str
    status: Status
    depth: int = 0
    parent_stage_run_id: str | None = None
    position: int | None = None
    attempt: int = 1
    worker: str | None = None
    run_mode: RunMode | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    #: Once it finished.
    duration_ms: float | None = None
    #: "Type: first line of the message".
    error: str | None = None
    #: "(1, 'x', key=2)", shortened.
    arguments: str | None = None
    #: The attempts before this one, first first (a tuple: most calls have none,
    #: and one empty tuple serves them all).
    earlier_attempts: tuple[AttemptBar, ...] = ()
    #: A delayed call: no worker starts it before then.
    not_before: str | None = None
    #: While it waits: what for (its delay, a sleep, an event) and until when.
    waiting_for: Waiting | None = None

    @classmethod
    def of(cls, call: CallRecord) -> TreeNode:
        started, finished = call.started_at, call.finished_at
        return cls(
            call.id, call.stage, call.status, 0, call.parent_stage_run_id, call.position,
            call.attempt, call.worker, call.run_mode, iso(call.created_at), iso(started),
            iso(finished),
            (round((finished - started).total_seconds() * 1000, 3) if started and finished else None),
            summary(call.error), preview(call.arguments), (), iso(call.not_before),
        )


class TreeAnswer(msgspec.Struct, frozen=True):
    """GET /api/call/<id>/tree, as TreeSchema documents it."""

    call_id: str
    calls: list[TreeNode]


def iso(time: datetime | None) -> str | None:
    return time.isoformat() if time is not None else None


def tree_json(call_id: str, nodes: list[TreeNode]) -> bytes:
    return _ENCODER.encode(TreeAnswer(call_id, nodes))


def tree_nodes(calls: list[CallRecord], call_id: str,
               attempts: Iterable[AttemptRecord] = ()) -> list[TreeNode]:
    """The calls under `call_id` (itself first), depth-first, children in call order.
    `calls` are the calls of its run (or more), `attempts` their earlier attempts."""
    return tree_of([TreeNode.of(call) for call in calls], call_id, earlier_of(
        (a.call_id, AttemptBar(a.attempt, a.status, a.worker, iso(a.started_at), iso(a.finished_at)))
        for a in attempts), {call.id: call.arguments for call in calls if call.stage in STEP_STAGES})


def earlier_of(attempts: Iterable[tuple[str, AttemptBar]]) -> dict[str, tuple[AttemptBar, ...]]:
    """Earlier attempts (first first) by call."""
    earlier: dict[str, list[AttemptBar]] = {}
    for call_id, bar in attempts:
        earlier.setdefault(call_id, []).append(bar)
    return {call_id: tuple(bars) for call_id, bars in earlier.items()}


def tree_of(nodes: list[TreeNode], call_id: str, earlier: dict[str, tuple[AttemptBar, ...]],
            steps: dict[str, Arguments]) -> list[TreeNode]:
    """The nodes under `call_id` (itself first) among `nodes`, depth-first, children
    in call order, each given its depth, its earlier attempts and, while it waits,
    what for. `steps` are the arguments of the sleeps and event waits among them."""
    children: dict[str | None, list[TreeNode]] = {}
    top = None
    for node in nodes:
        children.setdefault(node.parent_stage_run_id, []).append(node)
        if node.id == call_id:
            top = node
    ordered: list[TreeNode] = []
    stack = [(top, 0)] if top is not None else []
    now = datetime.now(timezone.utc)
    while stack:
        node, depth = stack.pop()
        node.depth = depth
        node.earlier_attempts = earlier.get(node.id, ())
        if node.status is Status.PENDING and node.not_before is not None:
            node.waiting_for = _waiting(node, children, steps, now)
        ordered.append(node)
        below = children.get(node.id)
        if below:
            below.sort(key=_in_call_order)
            stack.extend((child, depth + 1) for child in reversed(below))
    return ordered


def _in_call_order(node: TreeNode) -> tuple[bool, int, str]:
    return node.position is None, node.position or 0, node.created_at or ""


def _waiting(node: TreeNode, children: dict[str | None, list[TreeNode]],
             steps: dict[str, Arguments], now: datetime) -> Waiting | None:
    """What a pending call waits for, as WaitingFor decides (read with its times
    as datetimes), and its step's time as the tree's text."""
    step = _step(node, children)
    found = WaitingFor.of(node.status, _time(node.not_before),
                          step and CallRecord(step.id, step.stage, step.status,
                                              steps.get(step.id, Arguments()),
                                              not_before=_time(step.not_before)), now)
    return None if found is None else Waiting(found.kind, iso(found.until), found.key)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _step(node: TreeNode, children: dict[str | None, list[TreeNode]]) -> TreeNode | None:
    """The running sleep or event wait a suspended call waits in: its own, or that of
    the call it ran in place, suspended with it until the same time (as
    Reads.waiting_step finds it)."""
    for _ in range(len(children) + 1):
        below = children.get(node.id, ())
        step = next((c for c in below if c.stage in STEP_STAGES and c.status is Status.RUNNING), None)
        if step is not None:
            return step
        chained = next((c for c in below if c.status is Status.PENDING
                        and c.not_before == node.not_before), None)
        if chained is None:
            return None
        node = chained
    return None


def preview(arguments: Arguments) -> str:
    """The arguments as a call writes them, "(1, "x", key=2)", shortened with "…"."""
    values = [_value_text(value) for value in arguments.args]
    values += [f"{name}={_value_text(value)}" for name, value in arguments.kwargs.items()]
    return _shortened(f"({', '.join(values)})")


class RawArguments(msgspec.Struct, gc=False):
    """Arguments as stored, each value left as its JSON text (msgspec.Raw)."""

    args: list[msgspec.Raw] = msgspec.field(default_factory=list)
    kwargs: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)


def raw_preview(arguments: RawArguments) -> str:
    """preview() of stored arguments, from their JSON text, for rows written without
    their preview (before migration 0012): each value's text as stored (a nested
    value keeps the stored spacing, `{"a": 1}`), none decoded and encoded again."""
    values = [bytes(value).decode() for value in arguments.args]
    values += [f"{name}={bytes(value).decode()}" for name, value in arguments.kwargs.items()]
    return _shortened(f"({', '.join(values)})")


def _shortened(text: str) -> str:
    return text if len(text) <= ARGUMENTS_PREVIEW_CHARS else text[:ARGUMENTS_PREVIEW_CHARS - 1] + "…"


def _value_text(value: object) -> str:
    """A value as compact JSON: msgspec's (a tenth of json.dumps's time; text
    other than ASCII shown as it is), the standard library's for what msgspec
    refuses (an integer past 64 bits)."""
    try:
        return _ENCODER.encode(value).decode()
    except (TypeError, OverflowError):
        return json_text(value)


def summary(error: ErrorRecord | None) -> str | None:
    """"Type: first line of the message", shortened."""
    if error is None:
        return None
    first_line = (error.message.splitlines() or [""])[0]
    return f"{error.type}: {first_line}"[:ERROR_SUMMARY_CHARS]


def waiting(waiting_for: WaitingFor | Waiting | None) -> str:
    """" sleeping until T", " waiting for event K until T", " due T", or nothing."""
    if waiting_for is None:
        return ""
    until = _time(waiting_for.until) if isinstance(waiting_for.until, str) else waiting_for.until
    when = until.isoformat(timespec="seconds") if until else None
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
