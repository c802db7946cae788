"""events and event_waits: events sent to keys (kept until a call waits for their
key), and the calls waiting for one (see controlplane.events); running sleeps
get a worker, as steps now have.

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
        sa.Column("delivered_to", sa.String(64), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "event_waits",
        sa.Column("call_id", sa.String(64), sa.ForeignKey("stage_runs.id"), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False, index=True),
        sa.Column("chain", sa.JSON, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )
    # Sleeps made before steps named their worker: finishing one is fenced by its
    # worker (statements.FINISH), which NULL never matches.
    op.execute("UPDATE stage_runs SET worker = 'callplane' "
               "WHERE stage = 'callplane.sleep' AND worker IS NULL")


def downgrade() -> None:
    op.drop_table("event_waits")
    op.drop_table("events")
