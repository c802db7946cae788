"""A call's arguments as a tree shows them ("(1, "x", key=2)", shortened),
written with the call: a tree of 10,000 calls read the whole arguments of each
and cut a preview from them, 15 ms of its read. Rows written before this
revision have none; a tree cuts theirs from their arguments as before.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stage_runs", sa.Column("arguments_preview", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stage_runs") as batch:
        batch.drop_column("arguments_preview")
