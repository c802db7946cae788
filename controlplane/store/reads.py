"""Reading the audit tables: calls by id, pages of calls and runs, a run's tree, and
what recovery looks for."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from controlplane.store.engine import translating
from controlplane.store.rows import ExpiredLease, attempt_of, call_of, in_utc, lease_of
from controlplane.store.sqltime import iso_of, utc_text
from controlplane.store.statements import ROWS, STATUSES
from controlplane.store.streaming import id_pages
from controlplane.store.tree_reads import NodeCache, read_nodes
from controlplane.tables import call_attempts, callplane_secrets, stage_runs
from controlplane.trees import AttemptBar, TreeNode
from sdk.records import Arguments, AttemptRecord, CallRecord
from sdk.waits import STEP_STAGES
from sdk.wire import Status

#: The largest OFFSET both databases take (a signed 64-bit integer); a page past
#: the last row is empty whatever its number.
OFFSET_LIMIT = 2**63 - 1
#: How deep a chain of calls run in place is followed down to its waiting step.
MAX_CHAIN = 100
#: The calls of a run read whole (`tree`): all but what may be large (its result
#: and printed output), which a read of the one call shows.
_TREE_COLUMNS = tuple(c.name for c in stage_runs.c if c.name not in ("result", "output", "arguments_preview"))
#: What a tree's timeline shows of an earlier attempt (trees.AttemptBar), by call.
_ATTEMPT_BAR = (call_attempts.c.call_id, call_attempts.c.attempt, call_attempts.c.status,
                call_attempts.c.worker, utc_text(call_attempts.c.started_at),
                utc_text(call_attempts.c.finished_at))
#: A list counts the calls that match up to this many past its page: an exact
#: total when there are fewer, "more" otherwise (counting a million rows on each
#: request took longer than the page).
COUNT_LIMIT = 1_000
#: What recovery needs of a running call to give up its attempt.
_LEASE_COLUMNS = ("id", "attempt", "worker", "queue", "lease_expires_at")

#: A page of calls, and how many match in all (None: more than were counted).
Page = tuple[list[CallRecord], int | None]


class Subtree(msgspec.Struct, frozen=True):
    """A call and every call under it, as a tree shows them (not yet in order), their
    earlier attempts (first first) by call, and the arguments of the sleeps and
    event waits among them (what they wait for)."""

    calls: list[TreeNode]
    attempts: list[tuple[str, AttemptBar]]
    steps: dict[str, Arguments]


class CallQuery(msgspec.Struct, frozen=True):
    """Which calls a list shows (every one given must match)."""

    status: str | None = None
    stage: str | None = None
    parent_stage_run_id: str | None = None


class RunQuery(msgspec.Struct, frozen=True):
    """Which runs (root calls) a list shows: created in [since, until), and the rest equal."""

    status: str | None = None
    stage: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    repo_name: str | None = None
    commit_hash: str | None = None


@translating
class Reads:
    engine: Engine
    #: The nodes of trees read lately, where the database has row versions.
    nodes: NodeCache | None

    def job_key(self) -> str:
        """The key that signs the jobs this database's control planes queue."""
        with self.engine.connect() as conn:
            key = conn.execute(sa.select(callplane_secrets.c.value)
                               .where(callplane_secrets.c.name == "job_key")).scalar()
        if key is None:
            raise LookupError("the database holds no job key: run `callplane db upgrade`")
        return key

    def schema_revision(self) -> str | None:
        """The migration the database's schema is at (None: it has none)."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def get(self, call_id: str) -> CallRecord | None:
        return self.get_many([call_id]).get(call_id)

    def get_many(self, call_ids: Iterable[str]) -> dict[str, CallRecord]:
        """The calls of those of `call_ids` that exist, by id."""
        return self._by_ids(ROWS, call_ids, lambda row: (row.id, call_of(row)))

    def statuses(self, call_ids: Iterable[str]) -> dict[str, Status]:
        """The status of those of `call_ids` that exist, by id (a light read for waiters)."""
        return self._by_ids(STATUSES, call_ids, lambda row: (row.id, Status(row.status)))

    def _by_ids(self, query, call_ids: Iterable[str], entry: Callable[[sa.Row], tuple]) -> dict:
        ids = list(call_ids)
        found = {}
        with self.engine.connect() as conn:
            for page in id_pages(ids):
                found.update(entry(row) for row in conn.execute(query, {"p_ids": page}))
        return found

    def list(self, query: CallQuery, offset: int = 0, limit: int = 50,
             count_limit: int | None = None) -> Page:
        """One page of calls, oldest first, and how many match (see _page)."""
        where = [stage_runs.c[column] == value for column, value in (
            ("status", query.status), ("stage", query.stage),
            ("parent_stage_run_id", query.parent_stage_run_id),
        ) if value]
        return self._page(where, stage_runs.c.created_at, offset, limit, count_limit)

    def runs(self, query: RunQuery, offset: int = 0, limit: int = 50,
             count_limit: int | None = None) -> Page:
        """One page of runs (root calls), newest first, and how many match (see _page)."""
        where = [stage_runs.c.parent_stage_run_id.is_(None)]
        where += [stage_runs.c[column] == value for column, value in (
            ("status", query.status), ("stage", query.stage), ("repo_name", query.repo_name),
            ("commit_hash", query.commit_hash),
        ) if value]
        if query.since:
            where.append(stage_runs.c.created_at >= in_utc(query.since))
        if query.until:
            where.append(stage_runs.c.created_at < in_utc(query.until))
        return self._page(where, stage_runs.c.created_at.desc(), offset, limit, count_limit)

    def _page(self, where: list, order: Any, offset: int, limit: int,
              count_limit: int | None) -> Page:
        """The calls matching `where` in `order` (then by id), one page, and their
        count: exact with no `count_limit`; with one, counted only up to this page's
        end plus `count_limit` rows (None past that), so a page never costs a count
        of the whole table, and a None total still says a next page exists."""
        query = stage_runs.select().where(*where).order_by(order, stage_runs.c.id)
        offset = min(offset, OFFSET_LIMIT)
        matching = sa.select(sa.literal(1)).select_from(stage_runs).where(*where)
        if count_limit is not None:
            matching = matching.limit(min(offset + limit + count_limit + 1, OFFSET_LIMIT))
        count = sa.select(sa.func.count()).select_from(matching.subquery())
        with self.engine.connect() as conn:
            calls = [call_of(row) for row in conn.execute(query.offset(offset).limit(limit))]
            if count_limit is not None and len(calls) < limit and (calls or not offset):
                return calls, offset + len(calls)  # the last page: no count needed
            total = conn.execute(count).scalar_one()
        counted_all = count_limit is None or total <= offset + limit + count_limit
        return calls, total if counted_all else None

    def tree(self, root_id: str) -> list[CallRecord]:
        """Every call of one run, in creation order, without results and printed
        output: one indexed query."""
        query = (
            sa.select(*(stage_runs.c[name] for name in _TREE_COLUMNS))
            .where(stage_runs.c.root_stage_run_id == root_id)
            .order_by(stage_runs.c.created_at, stage_runs.c.id)
        )
        with self.engine.connect() as conn:
            return [call_of(row) for row in conn.execute(query)]

    def subtree(self, call_id: str) -> Subtree | None:
        """The call and every call under it, as a tree shows them (None: no such
        call). A run's root reads its run by root_stage_run_id; any other call reads
        down parent_stage_run_id with a recursive query, so the tree under a call
        costs its own size, not its run's (both columns are indexed)."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(stage_runs.c.parent_stage_run_id)
                                 .where(stage_runs.c.id == call_id)).first()
            if found is None:
                return None
            if found.parent_stage_run_id is None:
                under = stage_runs.c.root_stage_run_id == call_id
            else:
                under = stage_runs.c.id.in_(sa.select(_below(call_id).c.id))
            steps: dict[str, Arguments] = {}
            calls = (read_nodes(conn, under, steps) if self.nodes is None
                     else self.nodes.read(conn, call_id, under, steps))
            attempts = conn.execute(
                sa.select(*_ATTEMPT_BAR).join(stage_runs, stage_runs.c.id == call_attempts.c.call_id)
                .where(under).order_by(call_attempts.c.call_id, call_attempts.c.attempt)).all()
        return Subtree(calls, [(call_id, AttemptBar(attempt, status, worker, iso_of(started), iso_of(finished)))
                               for call_id, attempt, status, worker, started, finished in attempts], steps)

    def child_at(self, parent_id: str, position: int | None) -> CallRecord | None:
        """The child a call made at `position`, if any."""
        query = stage_runs.select().where(
            stage_runs.c.parent_stage_run_id == parent_id, stage_runs.c.position == position
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return call_of(row) if row is not None else None

    def unfinished_children(self, call_id: str, limit: int) -> list[tuple[str, str, Status]]:
        """The (id, stage, status) of a call's pending and running children, in call
        order, `limit` at most."""
        query = (
            sa.select(stage_runs.c.id, stage_runs.c.stage, stage_runs.c.status)
            .where(stage_runs.c.parent_stage_run_id == call_id,
                   stage_runs.c.status.in_([Status.PENDING.value, Status.RUNNING.value]))
            .order_by(stage_runs.c.position).limit(limit)
        )
        with self.engine.connect() as conn:
            return [(row.id, row.stage, Status(row.status)) for row in conn.execute(query)]

    def waiting_step(self, call: CallRecord) -> CallRecord | None:
        """The running sleep or event wait (see controlplane.steps) a suspended call
        waits in: its own, or that of the call it ran in place, which was suspended
        with it until the same time."""
        children = stage_runs.select().where(
            stage_runs.c.parent_stage_run_id == sa.bindparam("p_id"),
            sa.or_(sa.and_(stage_runs.c.stage.in_(STEP_STAGES),
                           stage_runs.c.status == Status.RUNNING.value),
                   sa.and_(stage_runs.c.status == Status.PENDING.value,
                           stage_runs.c.not_before == sa.bindparam("p_wake"))))
        with self.engine.connect() as conn:
            for _ in range(MAX_CHAIN):
                found = [call_of(row) for row in conn.execute(
                    children, {"p_id": call.id, "p_wake": call.not_before})]
                step = next((child for child in found if child.stage in STEP_STAGES), None)
                if step is not None or not found:
                    return step
                call = found[0]
        return None

    def attempts(self, call_id: str) -> list[AttemptRecord]:
        """The earlier attempts of a call (see call_attempts), first first."""
        query = (
            call_attempts.select()
            .where(call_attempts.c.call_id == call_id)
            .order_by(call_attempts.c.attempt)
        )
        with self.engine.connect() as conn:
            return [attempt_of(row) for row in conn.execute(query)]

    # -- what recovery looks for ---------------------------------------------------

    def pending(
        self, created_before: datetime, limit: int, after: tuple[datetime, str] | None = None,
        due_by: datetime | None = None,
    ) -> list[CallRecord]:
        """Pending calls created before `created_before` (with `due_by`, only those due
        by then), oldest first, `limit` at most; `after` is the (created_at, id) of
        the last one of the previous page."""
        query = stage_runs.select().where(
            stage_runs.c.status == Status.PENDING.value, stage_runs.c.created_at < created_before
        )
        if due_by is not None:
            query = query.where(sa.or_(stage_runs.c.not_before.is_(None),
                                       stage_runs.c.not_before <= due_by))
        if after is not None:
            query = query.where(sa.tuple_(stage_runs.c.created_at, stage_runs.c.id) > after)
        query = query.order_by(stage_runs.c.created_at, stage_runs.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [call_of(row) for row in conn.execute(query)]

    def due_delayed(self, now: datetime, limit: int) -> list[str]:
        """Pending calls that waited for a time which has come, those due last first
        (a wait woken early is due from the moment it was woken)."""
        query = (
            sa.select(stage_runs.c.id)
            .where(stage_runs.c.status == Status.PENDING.value, stage_runs.c.not_before <= now)
            .order_by(stage_runs.c.not_before.desc()).limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def expired_leases(self, now: datetime, limit: int) -> list[ExpiredLease]:
        """Running attempts whose lease ended before `now`, the longest-expired first."""
        query = (
            sa.select(*(stage_runs.c[name] for name in _LEASE_COLUMNS))
            .where(stage_runs.c.status == Status.RUNNING.value, stage_runs.c.lease_expires_at < now)
            .order_by(stage_runs.c.lease_expires_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [lease_of(row) for row in conn.execute(query)]


def _below(call_id: str) -> sa.CTE:
    """The ids of a call and every call under it: a recursive query down
    parent_stage_run_id (SQLite and PostgreSQL alike)."""
    top = sa.select(stage_runs.c.id).where(stage_runs.c.id == call_id).cte("below", recursive=True)
    child = stage_runs.alias("child")
    return top.union_all(sa.select(child.c.id).where(child.c.parent_stage_run_id == top.c.id))
