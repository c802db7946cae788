"""The audit table's statements, built once with bound parameters (so SQLAlchemy
compiles each once). Every state change is a conditional UPDATE whose WHERE names
the statuses the move is legal from (sdk.wire.TRANSITIONS)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from controlplane.store.engine import utcnow
from controlplane.store.rows import error_value
from controlplane.tables import stage_runs
from sdk.records import Outcome
from sdk.reports import StartReport
from sdk.wire import TRANSITIONS, RunMode, Status, sources_of

INSERT = stage_runs.insert()
# Rows a worker created through its reports: a report recorded twice (or a
# creation that rides with several) writes its row once.
INSERT_IF_NEW = {"postgresql": postgresql.insert(stage_runs).on_conflict_do_nothing(),
                 "sqlite": sqlite.insert(stage_runs).on_conflict_do_nothing()}
_PARENTS = stage_runs.alias("parents")
# A call a worker created under a parent cancelled meanwhile is cancelled too, as
# the cancel would have done had it been recorded (run until nothing changes: a
# cancelled call's in-place children are next).
CANCEL_UNDER_CANCELLED = (
    stage_runs.update()
    .where(
        stage_runs.c.id.in_(sa.bindparam("p_ids", expanding=True)),
        stage_runs.c.status == sa.literal(Status.RUNNING.value),
        stage_runs.c.parent_stage_run_id.in_(
            sa.select(_PARENTS.c.id).where(_PARENTS.c.status == sa.literal(Status.CANCELLED.value))
        ),
    )
    .values(status=Status.CANCELLED.value, error=sa.bindparam("p_error", type_=stage_runs.c.error.type),
            finished_at=sa.bindparam("p_finished_at", type_=stage_runs.c.finished_at.type),
            lease_expires_at=None)
)
# Reads by id: `p_ids` expands to the list given at execution.
ROWS = stage_runs.select().where(stage_runs.c.id.in_(sa.bindparam("p_ids", expanding=True)))
STATUSES = sa.select(stage_runs.c.id, stage_runs.c.status).where(
    stage_runs.c.id.in_(sa.bindparam("p_ids", expanding=True))
)


def _param(name: str, column: str) -> sa.BindParameter:
    return sa.bindparam(name, type_=stage_runs.c[column].type)


def _where(*legal_from: str):
    # Each legal status is its own bound value: an expanding IN list cannot be
    # used in an executemany.
    legal = [sa.literal(status) for status in legal_from]
    return stage_runs.c.id == sa.bindparam("p_id"), stage_runs.c.status.in_(legal)


_ATTEMPT = stage_runs.c.attempt == sa.bindparam("p_attempt")
START = (
    stage_runs.update()
    .where(*_where(*sources_of(Status.RUNNING)), _ATTEMPT)
    .values(
        status=Status.RUNNING.value,
        worker=_param("p_worker", "worker"),
        started_at=_param("p_started_at", "started_at"),
        run_mode=_param("p_run_mode", "run_mode"),
        lease_expires_at=_param("p_lease", "lease_expires_at"),
    )
)
# A running call gives its worker slot back until a time (a durable sleep): pending
# again at the same attempt, with no worker. Its first start stays: that is how
# its next run knows it runs again (see CallRecord.message).
SUSPEND = (
    stage_runs.update()
    .where(stage_runs.c.id == sa.bindparam("p_id"), stage_runs.c.status == Status.RUNNING.value,
           _ATTEMPT, stage_runs.c.worker == sa.bindparam("p_worker"))
    .values(status=Status.PENDING.value, worker=None, run_mode=None, lease_expires_at=None,
            not_before=sa.bindparam("p_wake"))
)
# A suspended chain whose wait ended early (its event came): due now.
WAKE = (
    stage_runs.update()
    .where(stage_runs.c.id.in_(sa.bindparam("p_ids", expanding=True)),
           stage_runs.c.status == Status.PENDING.value, stage_runs.c.not_before > sa.bindparam("p_now"))
    .values(not_before=sa.bindparam("p_now"))
)
# A heartbeat renews the lease of an attempt its worker still holds.
RENEW = (
    stage_runs.update()
    .where(*_where(Status.RUNNING.value), _ATTEMPT,
           stage_runs.c.worker == sa.bindparam("p_worker"))
    .values(lease_expires_at=_param("p_lease", "lease_expires_at"))
)
_OUTCOME = {
    "status": _param("p_status", "status"),
    "result": _param("p_result", "result"),
    "error": _param("p_error", "error"),
    "output": _param("p_output", "output"),
    "finished_at": _param("p_finished_at", "finished_at"),
    "lease_expires_at": None,
}
# A finish over HTTP: of a running call; of its attempt and worker when it names them.
FINISH = (
    stage_runs.update()
    .where(
        *_where(Status.RUNNING.value),
        stage_runs.c.attempt == sa.func.coalesce(sa.bindparam("p_attempt"), stage_runs.c.attempt),
        stage_runs.c.worker == sa.func.coalesce(sa.bindparam("p_worker"), stage_runs.c.worker),
    )
    .values(**_OUTCOME)
)
# A worker's report of its attempt's outcome: the call's current attempt, still
# pending (its start is in flight) or running on that worker.
FINISH_REPORTED = (
    stage_runs.update()
    .where(
        stage_runs.c.id == sa.bindparam("p_id"),
        _ATTEMPT,
        sa.or_(
            stage_runs.c.status.in_([sa.literal(s) for s in sources_of(Status.RUNNING)]),
            sa.and_(
                stage_runs.c.status == sa.literal(Status.RUNNING.value),
                stage_runs.c.worker == sa.bindparam("p_worker"),
            ),
        ),
    )
    .values(
        **_OUTCOME,
        worker=_param("p_worker", "worker"),
        started_at=sa.func.coalesce(stage_runs.c.started_at, _param("p_started_at", "started_at")),
        run_mode=sa.func.coalesce(_param("p_run_mode", "run_mode"), stage_runs.c.run_mode),
    )
)


def start_params(
    call_id: str,
    worker: str,
    started_at: datetime | None,
    run_mode: RunMode | None,
    attempt: int = 1,
    lease_until: datetime | None = None,
) -> dict[str, Any]:
    return {"p_id": call_id, "p_worker": worker, "p_started_at": started_at,
            "p_run_mode": (run_mode or RunMode.DISPATCHED).value, "p_attempt": attempt,
            "p_lease": lease_until}


def reported_start_params(call_id: str, start: StartReport, lease_until: datetime | None) -> dict:
    return start_params(call_id, start.worker, start.started_at, start.run_mode, start.attempt,
                        lease_until)


def outcome_params(call_id: str, outcome: Outcome) -> dict[str, Any]:
    """An outcome's values, for FINISH (add the fence) or FINISH_REPORTED (see reported_params)."""
    if outcome.status not in TRANSITIONS[Status.RUNNING]:
        raise ValueError(f"{outcome.status} is not an outcome of a running call")
    return {
        "p_id": call_id,
        "p_status": outcome.status.value,
        "p_result": outcome.result,
        "p_error": error_value(outcome.error),
        "p_output": outcome.output or None,
        "p_finished_at": outcome.finished_at or utcnow(),
    }


def reported_params(call_id: str, outcome: Outcome) -> dict[str, Any]:
    """A worker's own report: fenced by its attempt and worker, and carrying its start."""
    return {
        **outcome_params(call_id, outcome),
        "p_worker": outcome.worker,
        "p_attempt": outcome.attempt,
        "p_started_at": outcome.started_at,
        # An isolated call's mode is only known once its stage is.
        "p_run_mode": outcome.run_mode.value if outcome.run_mode else None,
    }
