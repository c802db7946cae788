"""events and event_waits: events kept until a call waits for their key, and the
calls waiting for one (see controlplane.events).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False, index=True),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("keep_until", sa.DateTime(timezone=True), nullable=False, index=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "event_waits",
        sa.Column("call_id", sa.String(64), sa.ForeignKey("stage_runs.id"), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False, index=True),
        sa.Column("chain", sa.JSON, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_waits")
    op.drop_table("events")
