"""The registry's tables (SQLAlchemy Core). Changing them needs a new migration in ``versions/``."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)

SCHEMA_REVISION = "0006"
"""The Alembic head this code expects; a registry at another revision is migrated on open."""

TOP = -1
"""``jobs.sub`` of a top-level job (a plain job or a master); subjobs count from 0."""

LISTING_COLUMNS = (
    "sub", "job_id", "removing", "name", "state", "backend", "tags", "subjobs", "created_at",
    "updated_at", "exit_code", "signal", "reason",
)  # fmt: skip
"""What ``ix_jobs_listing`` holds: every column ``corral ls`` prints (text and ``--json``)."""

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=False),
    Column("sub", Integer, nullable=False, default=TOP),
    Column("name", String(200), nullable=False),
    Column("spec", Text, nullable=False),
    Column("backend", String(64), nullable=False),
    Column("tags", Text, nullable=False, default=""),  # ",a,b," so a tag filter is one LIKE
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("native_id", String(128)),
    Column("exit_code", Integer),
    Column("signal", Integer),
    Column("reason", Text, nullable=False, default=""),
    Column("job_dir", Text),
    Column("subjobs", Integer, nullable=False, default=0),
    Column("kill_requested", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # A tombstone (``rm --force`` of an active job): hidden from every selection; the monitor
    # deletes the rows once the kill is confirmed or every unit is final.
    Column("removing", Boolean, nullable=False, default=False, server_default=false()),
    Column("usage", Text),  # JSON of records.Usage for the current attempt, NULL while unknown
    UniqueConstraint("job_id", "sub", name="uq_jobs_id"),
    Index("ix_jobs_state_backend", "state", "backend"),
    Index("ix_jobs_name", "name"),
    # Partial: only tombstones are in it, so the planner never takes it for "removing = 0"
    # (which every listing filters on; a full index made cold ls sort 100,000 rows).
    Index("ix_jobs_removing", "removing", sqlite_where=text("removing = 1")),
    # What a cold `corral ls` reads (migration 0006): every column it prints, in id order, so
    # a listing never reads the table (whose rows hold the specs); the subjobs' states for the
    # masters' counts; and the longest name and backend, for the column widths.
    Index("ix_jobs_listing", *LISTING_COLUMNS),
    Index("ix_jobs_units", "job_id", "state", sqlite_where=text("sub >= 0")),
    Index("ix_jobs_name_length", func.length(text("name"))),
    Index("ix_jobs_backend_length", func.length(text("backend"))),
)

attempts = Table(
    "attempts",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("job_pk", Integer, ForeignKey("jobs.pk", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("uuid", String(36), nullable=False),
    Column("state", String(16), nullable=False),
    Column("native_id", String(128)),
    Column("exit_code", Integer),
    Column("signal", Integer),
    Column("reason", Text, nullable=False, default=""),
    Column("ended_at", Float, nullable=False),
    Column("usage", Text),  # JSON of records.Usage, NULL if unknown
    Index("ix_attempts_job", "job_pk"),
)

transitions = Table(
    "transitions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("job_pk", Integer, ForeignKey("jobs.pk", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("old_state", String(16)),
    Column("new_state", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("applied", Boolean, nullable=False, default=True),
    Index("ix_transitions_job", "job_pk"),
    sqlite_autoincrement=True,  # a change-stream seq is never handed out twice, even after rm
)

lease = Table(
    "lease",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", Integer, nullable=False),
    Column("pid", Integer),
    Column("host", String(255)),
    Column("version", String(32)),
    Column("acquired_at", Float),
    Column("heartbeat", Float),
    Column("released", Boolean, nullable=False, default=True),
    # The last fatal error of a monitor, kept when the next one starts: a reader compares
    # last_error_at with acquired_at to tell whether it is older than the current monitor.
    Column("last_error", Text),
    Column("last_error_at", Float),
    Column("last_error_pid", Integer),
)

backend_status = Table(
    "backend_status",
    metadata,
    Column("name", String(64), primary_key=True),  # the backend instance, as in jobs.backend
    Column("kind", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # up, down, starting
    Column("reason", Text, nullable=False, default=""),
    Column("since", Float, nullable=False),
    Column("active", Integer, nullable=False, default=0),
    Column("interval", Float, nullable=False, default=0.0),
    Column("last_poll", Float),
    Column("polls", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("consecutive_errors", Integer, nullable=False, default=0),
    Column("calls", Text, nullable=False, default="{}"),  # JSON: command -> calls in a cycle
    Column("updated_at", Float, nullable=False),
)
"""Each backend instance's health, one row per name, as the monitor last wrote it."""

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""Facts about the registry itself: ``registry_uuid`` (32 hex characters), which job dirs,
markers and batch job group names carry so that two registries never adopt each other's work."""

counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Integer, nullable=False),
)
"""Monotonic counters: ``job_id`` is the last short id handed out; ids are never reused, even
after ``rm`` of the newest job."""
