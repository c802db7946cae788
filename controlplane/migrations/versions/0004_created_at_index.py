"""An index on stage_runs.created_at: the runs list is newest first.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_stage_runs_created_at", "stage_runs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_stage_runs_created_at", "stage_runs")
