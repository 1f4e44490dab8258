"""Change-stream sequence numbers that are never reused, and a tombstone for ``rm --force``.

``transitions.seq`` becomes ``AUTOINCREMENT``: without it SQLite hands out ``max(seq) + 1``
again after the newest rows were deleted (an ``rm``), and a change-stream reader resuming from a
sequence number would miss the new transitions that reused it. ``jobs.removing`` marks a job
removed with ``force`` whose units were still active: it is hidden from every selection, the
monitor keeps driving the kill, and deletes the rows once every unit is final.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = "seq, job_pk, attempt, old_state, new_state, at, reason, applied"


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("removing", sa.Boolean, nullable=False, server_default=sa.false())
    )
    # partial: never chosen for "removing = 0", which every listing filters on
    op.create_index("ix_jobs_removing", "jobs", ["removing"], sqlite_where=sa.text("removing = 1"))
    # SQLite cannot add AUTOINCREMENT to a table: copy it into a new one (keeping every seq, so
    # sqlite_sequence starts above the highest number ever stored that is still there).
    op.create_table(
        "transitions_new",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "job_pk", sa.Integer, sa.ForeignKey("jobs.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("old_state", sa.String(16)),
        sa.Column("new_state", sa.String(16), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        sqlite_autoincrement=True,
    )
    op.execute(f"INSERT INTO transitions_new ({_COLUMNS}) SELECT {_COLUMNS} FROM transitions")
    op.drop_index("ix_transitions_job", "transitions")
    op.drop_table("transitions")
    op.rename_table("transitions_new", "transitions")
    op.create_index("ix_transitions_job", "transitions", ["job_pk"])


def downgrade() -> None:
    op.drop_index("ix_jobs_removing", "jobs")
    op.drop_column("jobs", "removing")
