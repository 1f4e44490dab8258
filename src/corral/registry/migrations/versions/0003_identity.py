"""The registry's identity (meta.registry_uuid) and a counter for short ids that never reuses one.

Revision ID: 0003
Revises: 0002
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    op.bulk_insert(meta, [{"key": "registry_uuid", "value": uuid.uuid4().hex}])
    # the ids already given out stay taken: the counter starts at the highest one
    highest = op.get_bind().execute(sa.text("SELECT coalesce(max(job_id), 0) FROM jobs")).scalar()
    op.bulk_insert(counters, [{"name": "job_id", "value": int(highest or 0)}])


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_table("meta")
