"""Initial schema: jobs, attempts, transitions, lease.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("sub", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("native_id", sa.String(128)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("signal", sa.Integer),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("job_dir", sa.Text),
        sa.Column("subjobs", sa.Integer, nullable=False),
        sa.Column("kill_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("job_id", "sub", name="uq_jobs_id"),
    )
    op.create_index("ix_jobs_state_backend", "jobs", ["state", "backend"])
    op.create_index("ix_jobs_name", "jobs", ["name"])
    op.create_table(
        "attempts",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "job_pk", sa.Integer, sa.ForeignKey("jobs.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("native_id", sa.String(128)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("signal", sa.Integer),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=False),
    )
    op.create_index("ix_attempts_job", "attempts", ["job_pk"])
    op.create_table(
        "transitions",
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
    )
    op.create_index("ix_transitions_job", "transitions", ["job_pk"])
    op.create_table(
        "lease",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.String(255)),
        sa.Column("version", sa.String(32)),
        sa.Column("acquired_at", sa.Float),
        sa.Column("heartbeat", sa.Float),
        sa.Column("released", sa.Boolean, nullable=False),
    )
    op.execute("INSERT INTO lease (id, epoch, released) VALUES (1, 0, 1)")
