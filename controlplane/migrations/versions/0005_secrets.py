"""callplane_secrets, holding the key that signs every job the control plane
queues (workers run only jobs it signed); generated here, once per database.

Revision ID: 0005
Revises: 0004
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "callplane_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    op.bulk_insert(table, [{"name": "job_key", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("callplane_secrets")
