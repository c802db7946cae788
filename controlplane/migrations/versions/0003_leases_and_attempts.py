"""Leases and attempts: stage_runs.lease_expires_at and parent_attempt, a child
unique per (parent, position), and call_attempts for the attempts of a call that
were lost or failed and ran again.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stage_runs") as batch:
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_stage_runs_lease_expires_at", ["lease_expires_at"])
        batch.add_column(sa.Column("parent_attempt", sa.Integer, nullable=True))
        batch.drop_index("ix_stage_runs_parent_position")
        batch.create_index(
            "ux_stage_runs_parent_position", ["parent_stage_run_id", "position"], unique=True
        )
    op.create_table(
        "call_attempts",
        sa.Column("call_id", sa.String(64), sa.ForeignKey("stage_runs.id"), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("run_mode", sa.String(16), nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("call_attempts")
    with op.batch_alter_table("stage_runs") as batch:
        batch.drop_index("ux_stage_runs_parent_position")
        batch.create_index("ix_stage_runs_parent_position", ["parent_stage_run_id", "position"])
        batch.drop_column("parent_attempt")
        batch.drop_index("ix_stage_runs_lease_expires_at")
        batch.drop_column("lease_expires_at")
