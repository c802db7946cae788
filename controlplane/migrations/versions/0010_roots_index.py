"""A partial index on the runs (root calls) by creation: the runs list reads it
newest first, and retention (controlplane.retention) oldest first, without
walking the rows of every child call.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROOTS = sa.text("parent_stage_run_id IS NULL")


def upgrade() -> None:
    op.create_index("ix_stage_runs_roots", "stage_runs", ["created_at"],
                    postgresql_where=ROOTS, sqlite_where=ROOTS)


def downgrade() -> None:
    op.drop_index("ix_stage_runs_roots", "stage_runs")
