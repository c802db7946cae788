"""Limits and priorities: stage_limits (stages' limits, as workers register them),
and each call's gate (the limit it goes through) and priority.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stage_limits",
        sa.Column("stage", sa.String(200), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("registered_until", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("stage_runs") as batch:
        batch.add_column(sa.Column("gate", sa.String(600), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("stage_runs") as batch:
        batch.drop_column("priority")
        batch.drop_column("gate")
    op.drop_table("stage_limits")
