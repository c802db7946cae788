"""Calls by status, oldest first: `GET /api/calls?status=pending` and recovery's
look for lost pending calls read the pending calls in creation order. On the
index of status alone PostgreSQL walked the creation index of every call to
find the few pending ones (0.4 s at a million rows); this index holds them in
order. It replaces the index of status alone, which it serves too.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_stage_runs_status_created_at", "stage_runs", ["status", "created_at"])
    op.drop_index("ix_stage_runs_status", "stage_runs")


def downgrade() -> None:
    op.create_index("ix_stage_runs_status", "stage_runs", ["status"])
    op.drop_index("ix_stage_runs_status_created_at", "stage_runs")
