"""Indexes that let a cold ``corral ls`` read only what it prints.

``ix_jobs_listing`` covers every column a listing shows (text and ``--json``), led by ``sub``
and ``job_id``: the top-level rows come out of it in id order without touching the table, whose
rows also hold each job's spec (most of its pages). ``ix_jobs_units`` (partial: subjobs only)
covers the per-master state counts. ``ix_jobs_name_length`` and ``ix_jobs_backend_length`` give
the column widths (the longest name and backend in the registry) in a few index steps instead of
a scan. SQLite maintains them in every write, so no writer changes; building them is the
backfill of an existing registry.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LISTING = (
    "sub", "job_id", "removing", "name", "state", "backend", "tags", "subjobs", "created_at",
    "updated_at", "exit_code", "signal", "reason",
)  # fmt: skip


def upgrade() -> None:
    op.create_index("ix_jobs_listing", "jobs", list(LISTING))
    op.create_index("ix_jobs_units", "jobs", ["job_id", "state"], sqlite_where=sa.text("sub >= 0"))
    op.create_index("ix_jobs_name_length", "jobs", [sa.text("length(name)")])
    op.create_index("ix_jobs_backend_length", "jobs", [sa.text("length(backend)")])


def downgrade() -> None:
    for name in ("ix_jobs_backend_length", "ix_jobs_name_length", "ix_jobs_units"):
        op.drop_index(name, "jobs")
    op.drop_index("ix_jobs_listing", "jobs")
