"""What each attempt really used: ``usage`` (JSON of ``corral.records.Usage``: cpu_seconds,
max_rss_bytes, wall_seconds, host) on the current attempt in ``jobs`` and on each closed one in
``attempts``; NULL while unknown.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("usage", sa.Text))
    op.add_column("attempts", sa.Column("usage", sa.Text))


def downgrade() -> None:
    op.drop_column("attempts", "usage")
    op.drop_column("jobs", "usage")
