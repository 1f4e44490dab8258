"""Backend health (backend_status) and the last fatal monitor error on the lease row.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backend_status",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
        sa.Column("active", sa.Integer, nullable=False),
        sa.Column("interval", sa.Float, nullable=False),
        sa.Column("last_poll", sa.Float),
        sa.Column("polls", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("consecutive_errors", sa.Integer, nullable=False),
        sa.Column("calls", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    # ADD COLUMN in place (SQLite needs no table copy for it); existing leases keep their rows.
    with op.batch_alter_table("lease") as batch:
        batch.add_column(sa.Column("last_error", sa.Text))
        batch.add_column(sa.Column("last_error_at", sa.Float))
        batch.add_column(sa.Column("last_error_pid", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("lease") as batch:
        batch.drop_column("last_error_pid")
        batch.drop_column("last_error_at")
        batch.drop_column("last_error")
    op.drop_table("backend_status")
