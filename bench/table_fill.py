"""Synthetic runs for `python -m bench.table`, written into PostgreSQL with COPY.

Many small runs (a root and its children) spread over the past SPAN_DAYS, so
that retention has old runs to delete; the newest are still pending; one run of
BIG_RUN_CALLS calls (a root, its children, each child with CHILDREN_EACH calls
of its own) made an hour ago. A million rows take about a minute here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from controlplane.trees import preview
from sdk.records import Arguments, json_text, plain
from sdk.wire import queue_name

#: The calls under each call of the big run's first level (the subtree asked for).
CHILDREN_EACH = 100
#: The big run: its root, BIG_RUN_CHILDREN children, CHILDREN_EACH calls under each.
BIG_RUN_CHILDREN = 99
BIG_RUN_CALLS = 1 + BIG_RUN_CHILDREN * (1 + CHILDREN_EACH)
#: A small run: a root and its children.
SMALL_RUN_CALLS = 10
#: How far back the small runs were made.
SPAN_DAYS = 90
#: The newest small runs are still pending, every call of them.
PENDING_RUNS = 1_000
#: Every so many calls of the big run ran twice (an earlier attempt to show).
RETRIED_EVERY = 50
#: Every so many small runs failed (a child's error).
FAILED_EVERY = 20
REPO, COMMIT = "shop", "5f0c2a9e1b7d"
COLUMNS = ("id", "parent_stage_run_id", "root_stage_run_id", "position", "parent_attempt", "stage",
           "arguments", "arguments_preview", "status", "result", "error", "queue", "repo_name", "commit_hash", "worker",
           "run_mode", "attempt", "max_attempts", "created_at", "started_at", "finished_at")
ATTEMPT_COLUMNS = ("call_id", "attempt", "status", "worker", "run_mode", "error", "started_at",
                   "finished_at")
_ERROR = json.dumps({"type": "CardDeclined", "message": "card declined by issuer\nretry later",
                     "traceback": "Traceback (most recent call last):\n  ...\nCardDeclined"})


@dataclass(frozen=True)
class BigRun:
    """The ids a bench asks for: the big run's root and a call with CHILDREN_EACH children."""

    root: str
    parent_of_many: str


@dataclass(frozen=True)
class Call:
    """One synthetic call: who made it, when, how it went."""

    id: str
    parent: str | None
    root: str
    position: int | None
    stage: str
    status: str
    created: datetime
    took_ms: float = 5.0
    attempt: int = 1

    def row(self, argument: int) -> tuple:
        done = self.status not in ("pending", "running")
        started = self.created + timedelta(milliseconds=1) if self.status != "pending" else None
        finished = started + timedelta(milliseconds=self.took_ms) if done else None
        arguments = Arguments([argument, f"customer-{argument % 977}"],
                              {"amount": round(argument * 0.37, 2)})
        return (
            self.id, self.parent, self.root, self.position, 1 if self.parent else None, self.stage,
            json_text(plain(arguments)), preview(arguments),
            self.status, json.dumps({"ok": True, "n": argument}) if self.status == "succeeded" else None,
            _ERROR if self.status == "failed" else None,
            queue_name(self.stage, REPO, COMMIT), REPO, COMMIT,
            f"host-{argument % 7}.{argument % 3}" if started else None,
            "dispatched" if started else None, self.attempt, 3, self.created, started, finished,
        )


def new_id() -> str:
    return uuid.uuid4().hex


def big_run(now: datetime) -> tuple[list[Call], BigRun]:
    """The run of BIG_RUN_CALLS calls, parents before their children."""
    start = now - timedelta(hours=1)
    root_id = new_id()
    root = Call(root_id, None, root_id, None, "nightly_batch", "succeeded", start, took_ms=60_000)
    calls = [root]
    for i in range(BIG_RUN_CHILDREN):
        child = Call(new_id(), root.id, root.id, i, "process_customer", "succeeded",
                     start + timedelta(milliseconds=1 + i * 600), took_ms=550)
        calls.append(child)
        calls.extend(
            Call(new_id(), child.id, root.id, j, "charge_card",
                 "failed" if (i * CHILDREN_EACH + j) % 997 == 0 else "succeeded",
                 child.created + timedelta(milliseconds=1 + j * 5),
                 attempt=2 if j % RETRIED_EVERY == 0 else 1)
            for j in range(CHILDREN_EACH))
    return calls, BigRun(root.id, calls[1].id)


def small_runs(count: int, now: datetime) -> Iterator[list[Call]]:
    """`count` runs of SMALL_RUN_CALLS calls, oldest first, evenly over SPAN_DAYS."""
    step = timedelta(days=SPAN_DAYS) / max(count, 1)
    for n in range(count):
        created = now - timedelta(days=SPAN_DAYS) + n * step
        pending = n >= count - PENDING_RUNS
        failed = not pending and n % FAILED_EVERY == 0
        root_id = new_id()
        status = "pending" if pending else ("failed" if failed else "succeeded")
        run = [Call(root_id, None, root_id, None, "process_order", status, created, took_ms=80)]
        run += [Call(new_id(), root_id, root_id, i, ("fetch_order", "charge_card", "send_email")[i % 3],
                     "pending" if pending else ("failed" if failed and i == 1 else "succeeded"),
                     created + timedelta(milliseconds=2 + i * 7))
                for i in range(SMALL_RUN_CALLS - 1)]
        yield run


def fill(database_url: str, rows: int, now: datetime) -> BigRun:
    """Write the big run and enough small runs for `rows` rows in all, then VACUUM
    ANALYZE (an old table's statistics and visibility map are up to date)."""
    big, ids = big_run(now)
    runs = small_runs((rows - len(big)) // SMALL_RUN_CALLS, now)
    with psycopg.connect(database_url, autocommit=True) as conn:
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY stage_runs ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for n, call in enumerate(big):
                    copy.write_row(call.row(n))
                for n, run in enumerate(runs):
                    for call in run:
                        copy.write_row(call.row(n))
            with cursor.copy(f"COPY call_attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN") as copy:
                for call in big:
                    if call.attempt > 1:
                        copy.write_row((call.id, 1, "lost", "host-9.0", "dispatched", None,
                                        call.created, call.created + timedelta(seconds=30)))
        conn.execute("VACUUM ANALYZE stage_runs")
        conn.execute("VACUUM ANALYZE call_attempts")
    return ids
