"""schedules: what workers registered from their workflow files, with each one's
next and last fire (see controlplane.schedules).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
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
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_call_id", sa.String(64), nullable=True),
        sa.Column("last_late_seconds", sa.Float, nullable=True),
        sa.Column("registered_until", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedules")
