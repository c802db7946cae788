"""The audit table's definition, shared by the store and the migrations' autogenerate."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(64)
#: The rows that are runs (root calls).
ROOTS = sa.text("parent_stage_run_id IS NULL")

stage_runs = sa.Table(
    "stage_runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("parent_stage_run_id", ID, sa.ForeignKey("stage_runs.id"), index=True),
    sa.Column("root_stage_run_id", ID, nullable=False, index=True),
    sa.Column("workflow_run_id", ID, nullable=True),
    sa.Column("position", sa.Integer, nullable=True),
    # The parent's attempt that made this child's latest attempt: a later attempt
    # of the parent runs a failed child again, an earlier one's retry does not.
    sa.Column("parent_attempt", sa.Integer, nullable=True),
    sa.Column("stage", sa.String(200), nullable=False, index=True),
    sa.Column("arguments", sa.JSON, nullable=False),
    # The arguments as a tree shows them (controlplane.trees.preview), written with
    # the call; NULL in rows written before migration 0012.
    sa.Column("arguments_preview", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("repo_name", sa.String(200), nullable=True),
    sa.Column("commit_hash", sa.String(64), nullable=True),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("run_mode", sa.String(16), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("max_attempts", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    # While running: when the attempt's lease ends unless its worker renews it.
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True, index=True),
    # A delayed call: no worker starts it before then.
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
    # A call of a limited stage: the limit it goes through (sdk.limits).
    sa.Column("gate", sa.String(600), nullable=True),
    # Of the calls a worker may take, higher priorities start first.
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    # A child is its parent's call at a position: a re-run of the parent finds it.
    sa.Index("ux_stage_runs_parent_position", "parent_stage_run_id", "position", unique=True),
    # Calls by status in creation order: the pending ones, oldest first.
    sa.Index("ix_stage_runs_status_created_at", "status", "created_at"),
    # The runs alone, by creation: listed newest first, pruned oldest first.
    sa.Index("ix_stage_runs_roots", "created_at", postgresql_where=ROOTS, sqlite_where=ROOTS),
)

#: Attempts that ended without reporting (their worker or process was lost) or
#: failed and were run again; the call's own row holds its latest attempt.
call_attempts = sa.Table(
    "call_attempts",
    metadata,
    sa.Column("call_id", ID, sa.ForeignKey("stage_runs.id"), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("run_mode", sa.String(16), nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
)

#: Secrets the control planes of one database share, made by its migrations:
#: `job_key` signs every job they queue (sdk.signing).
callplane_secrets = sa.Table(
    "callplane_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

#: Schedules that workers registered from their workflow files (sdk.schedules):
#: the control plane holding the clock makes one root call per fire time. One
#: no worker registered for a while (`registered_until` passed) has lapsed.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("stage", sa.String(200), nullable=False),
    sa.Column("arguments", sa.JSON, nullable=False),
    sa.Column("cron", sa.String(200), nullable=True),
    sa.Column("every_seconds", sa.Float, nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("catch_up", sa.String(8), nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("repo_name", sa.String(200), nullable=True),
    sa.Column("commit_hash", sa.String(64), nullable=True),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_call_id", ID, nullable=True),
    # How late the last fire was made (the clock had no holder, or was busy).
    sa.Column("last_late_seconds", sa.Float, nullable=True),
    sa.Column("registered_until", sa.DateTime(timezone=True), nullable=False),
)

#: Stages' limits as workers registered them from their workflow files
#: (sdk.limits.StageLimit as JSON); one no worker registered for a while lapsed.
stage_limits = sa.Table(
    "stage_limits",
    metadata,
    sa.Column("stage", sa.String(200), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("registered_until", sa.DateTime(timezone=True), nullable=False),
)

#: Events sent to keys (controlplane.events): each goes to the call waiting longest
#: for its key, or is kept for the first that waits, until `keep_until`; a
#: delivered one stays (naming its wait) until then, so a send repeated with the
#: same idempotency key is answered as the first was.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, index=True),
    sa.Column("payload", sa.JSON, nullable=True),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("keep_until", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("delivered_to", ID, nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    # Ids never used twice (SQLite would reuse a deleted row's): a sender tells its
    # own event from the others delivered with it by its id.
    sqlite_autoincrement=True,
)

#: Calls waiting for an event (controlplane.events): the wait's step, by key,
#: and the chain of calls that gave their slot back with it (woken when it comes).
event_waits = sa.Table(
    "event_waits",
    metadata,
    sa.Column("call_id", ID, sa.ForeignKey("stage_runs.id"), primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, index=True),
    sa.Column("chain", sa.JSON, nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)
