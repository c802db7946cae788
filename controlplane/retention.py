"""Retention: whole finished runs older than CALLPLANE_RETENTION are deleted,
so that `stage_runs` stays the size of the work an operator still looks at.

A run goes whole or not at all: never one that holds a call still pending or
running. Its rows go a hundred per transaction with a pause between, so
creates are never held up behind a prune. Every control plane runs the duty;
one at a time does it, under its lease in Redis (controlplane.duty), and two
overlapping ones would delete each row once (a DELETE of a row already gone
changes nothing). `callplane db prune` does the same by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from controlplane.duty import holder_name, keep_doing
from controlplane.store import utcnow
from controlplane.store.retention import RetentionRows
from sdk.settings import shown_age
from sdk.transport.duties import Duties

log = logging.getLogger(__name__)

DUTY = "retention"
#: How often the holder looks for runs past their retention (a quarter of the
#: retention when that is shorter).
CHECK_SECONDS = 60.0
#: How long the duty stays with a holder that stopped renewing it (it renews
#: between batches).
LEASE_SECONDS = 30.0
#: Calls deleted per transaction (each about 30 ms on a million-row table in
#: PostgreSQL).
BATCH_ROWS = 100
#: Runs taken per round (their rows go in batches).
RUNS_PER_ROUND = 100
#: The pause between batches, in which creates have the table (and the
#: machine's cores) to themselves: at least this, and at least PAUSE_FACTOR
#: times as long as the batch took, so a prune takes at most a seventh of the
#: database's time (still about 400 rows a second, 35 million a day).
PAUSE_SECONDS = 0.1
PAUSE_FACTOR = 6


@dataclass(frozen=True)
class Pruned:
    """What a prune deleted, or would delete (a dry run)."""

    runs: int
    rows: int


class Retention:
    def __init__(self, rows: RetentionRows, keep: timedelta | None,
                 duties: Duties | None = None):
        """`keep`: how long finished runs are kept (None: for ever, and `run`
        returns at once); `duties`: the leases that let one process prune."""
        self._rows = rows
        self._keep = keep
        self._duties = duties
        self.holder = holder_name()

    def prune(self, older_than: timedelta, *, dry_run: bool = False,
              holding: Callable[[], bool] = lambda: True) -> Pruned:
        """Delete every finished run older than `older_than` (or count them, with
        `dry_run`), stopping early once `holding()` says the duty is lost."""
        cutoff = utcnow() - older_than
        if dry_run:
            return Pruned(*self._rows.count_prunable(cutoff))
        runs_gone = rows_gone = 0
        while holding() and (runs := self._rows.prunable(cutoff, RUNS_PER_ROUND)):
            while holding():
                started = time.monotonic()
                rows, roots = self._rows.delete_some(runs, BATCH_ROWS)
                rows_gone, runs_gone = rows_gone + rows, runs_gone + roots
                if rows < BATCH_ROWS:
                    break
                time.sleep(max(PAUSE_SECONDS, PAUSE_FACTOR * (time.monotonic() - started)))
        return Pruned(runs_gone, rows_gone)

    def run(self, stopping: threading.Event) -> None:
        """Prune every CHECK_SECONDS while this process holds the duty."""
        if self._keep is None or self._duties is None:
            return
        every = min(CHECK_SECONDS, self._keep.total_seconds() / 4)
        keep_doing(self._round, every, stopping, "retention", "old runs")

    def _round(self) -> None:
        assert self._keep is not None and self._duties is not None
        duties, keep = self._duties, self._keep

        def holding() -> bool:
            return duties.hold(DUTY, self.holder, LEASE_SECONDS)

        if not holding():
            return
        pruned = self.prune(keep, holding=holding)
        if pruned.rows:
            log.info("retention: %d run(s) finished over %s ago deleted (%d calls)",
                     pruned.runs, shown_age(keep), pruned.rows)
