"""Reading the nodes of a call tree (Reads.subtree), and keeping them between reads.

A tree's read is Python's work more than the database's: for each call, the
driver's sixteen values, the times' text, the node. A run page follows a live
run by reading its tree every few seconds, and most calls of a big run have not
changed since the last read. PostgreSQL gives each version of a row the id of
the transaction that wrote it (`xmin`), new with every UPDATE: so a tree read
again (its top call kept here) asks for its calls' ids and versions only, takes
each call it has seen at that version from here, and reads whole only the calls
that changed. The table is read every time; what is kept is exactly what a
whole read makes, so an answer is the same either way. SQLite has no row
versions: its trees are always read whole.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import islice
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controlplane.store.sqltime import iso_of, milliseconds_between, utc_text
from controlplane.store.streaming import chunks, id_pages
from controlplane.tables import stage_runs
from controlplane.trees import RawArguments, TreeNode, raw_preview, summary
from sdk.records import Arguments, ErrorRecord
from sdk.waits import STEP_STAGES
from sdk.wire import RunMode, Status

#: The rows of a tree taken at a time (controlplane.store.streaming): small
#: enough that Python starts on them while the database works on the rest.
TREE_CHUNK = 200
#: Ids and versions taken at a time.
VERSIONS_CHUNK = 1_000
#: Nodes kept per server process (about 0.7 KB each): five runs of 10,000 calls.
CAPACITY = 50_000

_c = stage_runs.c
#: What a tree shows of each call (trees.TreeNode): times as text, its
#: duration, and its JSON as text, which msgspec decodes faster than the driver.
TREE_CALL = (_c.id, _c.parent_stage_run_id, _c.position, _c.stage, _c.status, _c.attempt,
             _c.worker, _c.run_mode, utc_text(_c.created_at), utc_text(_c.started_at),
             utc_text(_c.finished_at), utc_text(_c.not_before),
             milliseconds_between(_c.started_at, _c.finished_at),
             sa.cast(_c.error, sa.Text), _c.arguments_preview,
             # The arguments themselves only where a tree needs them: rows without a
             # preview (written before migration 0012), and the steps of waits.
             sa.case((sa.or_(_c.arguments_preview.is_(None), _c.stage.in_(sorted(STEP_STAGES))),
                      sa.cast(_c.arguments, sa.Text))))
_ID, _STAGE, _PREVIEW, _ARGUMENTS = 0, 3, 14, 15
#: A row's version in PostgreSQL: the transaction that wrote it.
_VERSION = sa.cast(sa.literal_column("stage_runs.xmin"), sa.Text)
_STATUS = {status.value: status for status in Status}
_RUN_MODE = {mode.value: mode for mode in RunMode}
_RAW_ARGUMENTS = msgspec.json.Decoder(list[RawArguments])
_STEP_ARGUMENTS = msgspec.json.Decoder(Arguments)
_ERROR = msgspec.json.Decoder(ErrorRecord | None)
#: A node's copy, for a read to place.
_copy = msgspec.structs.replace
#: What a call not kept is kept as: no version matches it.
_NONE_KEPT: tuple[str, TreeNode | None] = ("", None)


def read_nodes(conn: Connection, where: sa.ColumnElement[bool],
               steps: dict[str, Arguments]) -> list[TreeNode]:
    """The nodes of the calls `where` selects, read whole; the arguments of the
    sleeps and event waits among them go into `steps`."""
    query = sa.select(*TREE_CALL).where(where)
    return [node for chunk in chunks(conn, query, TREE_CHUNK) for node in nodes_of(chunk, steps)]


def nodes_of(rows: Sequence[Sequence[Any]], steps: dict[str, Arguments]) -> list[TreeNode]:
    """Rows of TREE_CALL (and any columns after them) as tree nodes. A row written
    without its preview has one cut from its arguments' stored text (read in one
    pass per chunk: a decode per row cost more than the decoding); the steps of
    waits have their arguments decoded into `steps` (they say what the step waits for)."""
    unpreviewed = [row[_ARGUMENTS] for row in rows if row[_PREVIEW] is None]
    cut = iter(_RAW_ARGUMENTS.decode(f"[{','.join(unpreviewed)}]") if unpreviewed else ())
    for row in rows:
        if row[_STAGE] in STEP_STAGES:
            steps[row[_ID]] = _STEP_ARGUMENTS.decode(row[_ARGUMENTS])
    return [TreeNode(call_id, stage, _STATUS[status], 0, parent, position, attempt, worker,
                     _RUN_MODE[run_mode] if run_mode else None, iso_of(created), iso_of(started),
                     iso_of(finished), duration, summary(_ERROR.decode(error)) if error else None,
                     shown if shown is not None else raw_preview(next(cut)), (), iso_of(not_before))
            for (call_id, parent, position, stage, status, attempt, worker, run_mode, created,
                 started, finished, not_before, duration, error, shown, _, *_rest) in rows]


class NodeCache:
    """The nodes of the calls of the trees this process read lately (PostgreSQL
    only), by call id. Shared by the server's threads: reads take no lock,
    changes take one."""

    def __init__(self, capacity: int = CAPACITY):
        self._capacity = capacity
        #: (its row's version, its node as a whole read made it) by call id. A
        #: kept node is never placed itself (tree_of sets a node's depth): each
        #: read gets a copy.
        self._kept: dict[str, tuple[str, TreeNode]] = {}
        #: The arguments of the sleeps and event waits among them (never changed).
        self._steps: dict[str, Arguments] = {}
        self._changing = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def read(self, conn: Connection, top_id: str, where: sa.ColumnElement[bool],
             steps: dict[str, Arguments]) -> list[TreeNode]:
        """The nodes of the calls `where` selects (the tree under `top_id`), as
        read_nodes reads them."""
        if top_id not in self._kept:  # a tree read for the first time: whole
            return self._read_whole(conn, where, steps)
        nodes: list[TreeNode] = []
        changed: list[str] = []
        versions = sa.select(_c.id, _VERSION).where(where)
        for chunk in chunks(conn, versions, VERSIONS_CHUNK):
            for call_id, version in chunk:
                node = self._unchanged(call_id, version, steps)
                if node is None:
                    changed.append(call_id)
                else:
                    nodes.append(node)
        if len(changed) > len(nodes):  # mostly new to this process: read it whole
            return self._read_whole(conn, where, steps)
        for page in id_pages(changed):
            nodes += self._read_whole(conn, _c.id.in_(page), steps)
        return nodes

    def _unchanged(self, call_id: str, version: str, steps: dict[str, Arguments]) -> TreeNode | None:
        """A copy of the call's kept node if its row is still at `version` (a
        step's arguments, kept too, go into `steps`); None if it must be read."""
        kept_version, node = self._kept.get(call_id, _NONE_KEPT)
        if node is None or kept_version != version:
            return None
        if node.stage in STEP_STAGES:
            step = self._steps.get(call_id)
            if step is None:  # let go of since the node was looked up
                return None
            steps[call_id] = step
        return _copy(node)

    def _read_whole(self, conn: Connection, where: sa.ColumnElement[bool],
                    steps: dict[str, Arguments]) -> list[TreeNode]:
        nodes: list[TreeNode] = []
        for chunk in chunks(conn, sa.select(*TREE_CALL, _VERSION).where(where), TREE_CHUNK):
            made = nodes_of(chunk, steps)
            self._keep([(node.id, (row[-1], node)) for row, node in zip(chunk, made)], steps)
            nodes += map(_copy, made)
        return nodes

    def _keep(self, kept: list[tuple[str, tuple[str, TreeNode]]], steps: dict[str, Arguments]) -> None:
        kept = kept[-self._capacity:]
        with self._changing:
            overflow = len(self._kept) + len(kept) - self._capacity
            if overflow > 0:  # the oldest kept first
                for call_id in list(islice(self._kept, overflow)):
                    del self._kept[call_id]
                    self._steps.pop(call_id, None)
            self._steps.update((call_id, steps[call_id]) for call_id, _ in kept if call_id in steps)
            self._kept.update(kept)
