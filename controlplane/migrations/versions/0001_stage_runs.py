"""stage_runs: the audit table of every call.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stage_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("parent_stage_run_id", sa.String(64), sa.ForeignKey("stage_runs.id")),
        sa.Column("root_stage_run_id", sa.String(64), nullable=False),
        sa.Column("workflow_run_id", sa.String(64), nullable=True),
        sa.Column("position", sa.Integer, nullable=True),
        sa.Column("stage", sa.String(200), nullable=False),
        sa.Column("arguments", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("repo_name", sa.String(200), nullable=True),
        sa.Column("commit_hash", sa.String(64), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_stage_runs_parent_stage_run_id", "stage_runs", ["parent_stage_run_id"])
    op.create_index("ix_stage_runs_root_stage_run_id", "stage_runs", ["root_stage_run_id"])
    op.create_index("ix_stage_runs_stage", "stage_runs", ["stage"])
    op.create_index("ix_stage_runs_status", "stage_runs", ["status"])
    op.create_index(
        "ix_stage_runs_parent_position", "stage_runs", ["parent_stage_run_id", "position"]
    )


def downgrade() -> None:
    op.drop_table("stage_runs")
