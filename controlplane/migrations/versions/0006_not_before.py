"""stage_runs.not_before: a delayed call's due time (no worker starts it earlier).

Recovery puts a pending call that Redis lost back where it waits by this time:
on its queue once due, among the delayed calls before.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stage_runs", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stage_runs") as batch:
        batch.drop_column("not_before")
